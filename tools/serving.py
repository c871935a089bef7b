"""The HTTP serving kit both servers use: health probes and uvicorn, for the MCP server
(server/http_app.py) and the Slack bot (bots/serving.py).

    routes = [*my_routes, *health_routes(readiness_checks(settings.crmops))]
    await serve_http(app, host="127.0.0.1", port=8000, name="MCP", lifespan="on")

`GET /healthz` answers 200 while the process serves (liveness); `GET /readyz` answers 200
only when every readiness check passes (Redis when `CRMOPS_REDIS_URL` is set, PostgreSQL
when it holds the journal), else 503 naming the check that failed (never why: it needs no
token). It imports Starlette and uvicorn: only a process that serves HTTP imports it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from tools.storage.shared import ReadinessCheck, check_readiness

log = logging.getLogger("crmops.http")

HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
OPEN_PATHS = frozenset({HEALTH_PATH, READY_PATH})
"""The probes' paths: a load balancer calls them without a token."""
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
SHUTDOWN_GRACE = 25.0
"""Seconds a stopping server waits for requests in flight (Kubernetes kills after 30)."""


def health_routes(checks: Sequence[ReadinessCheck] = ()) -> list[Route]:
    """`GET /healthz` and `GET /readyz` (running `checks`), to mount on a Starlette app."""
    return [
        Route(HEALTH_PATH, _healthz, methods=["GET"]),
        Route(READY_PATH, readyz_endpoint(checks), methods=["GET"]),
    ]


async def _healthz(_: Request) -> Response:
    """For load balancers and probes: says nothing but that the process runs."""
    return JSONResponse({"status": "ok"})


def readyz_endpoint(checks: Sequence[ReadinessCheck]) -> Callable[[Request], Awaitable[Response]]:
    """`GET /readyz`: 200 `{"status": "ready", "checks": {name: "ok"}}`, else 503.

    The answer says which check failed, never why (that goes to the log): it needs no token.
    """
    frozen = tuple(checks)

    async def readyz(_: Request) -> Response:
        results = await check_readiness(frozen)
        ready = all(results.values())
        body = {
            "status": "ready" if ready else "not ready",
            "checks": {name: "ok" if ok else "failed" for name, ok in results.items()},
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    return readyz


async def serve_http(
    app: ASGIApp,
    *,
    host: str,
    port: int,
    name: str,
    lifespan: Literal["on", "off"] = "off",
    shutdown_grace: float = SHUTDOWN_GRACE,
) -> None:
    """Serve `app` with uvicorn until SIGTERM or Ctrl-C; its logs go through `logging`.

    `name` says what is served, in the warning logged when `host` is not a loopback
    address. Stopping, it accepts no new connection and lets the requests in flight
    finish for at most `shutdown_grace` seconds.
    """
    if host not in LOOPBACK_NAMES:
        log.warning("serving %s on %s:%s, reachable from other machines", name, host, port)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan=lifespan,
        log_config=None,
        timeout_graceful_shutdown=max(1, round(shutdown_grace)),
    )
    await uvicorn.Server(config).serve()
