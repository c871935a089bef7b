"""The HTTP serving kit both servers use: health probes and uvicorn, for the MCP server
(server/http_app.py) and the Slack bot (bots/serving.py).

    routes = [*my_routes, *health_routes(readiness_checks(settings.crmops))]
    await serve_http(app, host="127.0.0.1", port=8000, name="MCP", lifespan="on")

`GET /healthz` answers 200 while the process serves (liveness); `GET /readyz` answers 200
only when every readiness check passes (Redis when `CRMOPS_REDIS_URL` is set, PostgreSQL
when it holds the journal), else 503 naming the check that failed (never why: it needs no
token). It imports Starlette and uvicorn: only a process that serves HTTP imports it.

Every connection is bounded (`HttpLimits`, defaults below): a request's line and headers
must arrive within `header_timeout` seconds of its first byte (or of the connection), its
body within `body_timeout` more, else the connection is closed (408 when nothing was
answered yet); an idle keep-alive connection closes after `keep_alive`; a request that
arrives while `max_connections` are open (its own counted) gets 503 at once; a request
line or header block over 16 KiB (h11's limit) gets 400. uvicorn has no header timeout
of its own, so a slow client (one byte every few seconds) would hold its connection for ever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import h11
import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from tools.storage.shared import ReadinessCheck, check_readiness

log = logging.getLogger("crmops.http")

HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
OPEN_PATHS = frozenset({HEALTH_PATH, READY_PATH})
"""The probes' paths: a load balancer calls them without a token."""
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
SHUTDOWN_GRACE = 25.0
"""Seconds a stopping server waits for requests in flight (Kubernetes kills after 30)."""
HEADER_TIMEOUT = 10.0
"""Seconds a request's line and headers may take to arrive."""
BODY_TIMEOUT = 30.0
"""Seconds a request's body may take to arrive once its headers have (4 MiB at 140 KB/s)."""
KEEP_ALIVE = 5
"""Seconds an idle keep-alive connection stays open (uvicorn's own default)."""
MAX_CONNECTIONS = 256
"""Open connections (an SSE stream holds one) at which a new request is answered 503 at once."""


@dataclass(frozen=True)
class HttpLimits:
    """What one client may hold of a server: `serve_http(app, ..., limits=HttpLimits(...))`."""

    header_timeout: float = HEADER_TIMEOUT
    body_timeout: float = BODY_TIMEOUT
    keep_alive: int = KEEP_ALIVE
    max_connections: int = MAX_CONNECTIONS


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
    limits: HttpLimits = HttpLimits(),
) -> None:
    """Serve `app` with uvicorn until SIGTERM or Ctrl-C; its logs go through `logging`.

    `name` says what is served, in the warning logged when `host` is not a loopback
    address. Stopping, it accepts no new connection and lets the requests in flight
    finish for at most `shutdown_grace` seconds. `limits` bound every connection.
    """
    if host not in LOOPBACK_NAMES:
        log.warning("serving %s on %s:%s, reachable from other machines", name, host, port)
    config = uvicorn_config(
        app, host=host, port=port, lifespan=lifespan, shutdown_grace=shutdown_grace, limits=limits
    )
    await uvicorn.Server(config).serve()


def uvicorn_config(
    app: ASGIApp,
    *,
    host: str,
    port: int,
    lifespan: Literal["on", "off"] = "off",
    shutdown_grace: float = SHUTDOWN_GRACE,
    limits: HttpLimits = HttpLimits(),
    **options: Any,
) -> uvicorn.Config:
    """The uvicorn configuration `serve_http` runs (`options` go to `uvicorn.Config` too)."""
    return _LimitedConfig(
        app,
        limits=limits,
        host=host,
        port=port,
        lifespan=lifespan,
        log_config=None,
        timeout_graceful_shutdown=max(1, round(shutdown_grace)),
        http=_TimedH11Protocol,
        timeout_keep_alive=limits.keep_alive,
        limit_concurrency=limits.max_connections,
        **options,
    )


class _LimitedConfig(uvicorn.Config):
    """uvicorn's configuration carrying our limits to each connection's protocol."""

    def __init__(self, app: ASGIApp, *, limits: HttpLimits, **options: Any) -> None:
        super().__init__(app, **options)
        self.limits = limits


_TOO_SLOW = b"the request came too slowly"
_TIMEOUT_ANSWER = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_TOO_SLOW), _TOO_SLOW)
)


class _TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a read deadline on each request's headers and body.

    The deadline is armed when a connection opens and when the first byte of a further
    request arrives, moved when the headers are in, and lifted once the whole request is.
    """

    def __init__(self, config: uvicorn.Config, **state: Any) -> None:
        super().__init__(config, **state)
        self._limits = config.limits if isinstance(config, _LimitedConfig) else HttpLimits()
        self._deadline: asyncio.TimerHandle | None = None
        self._reading: object = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch(h11.IDLE)

    def data_received(self, data: bytes) -> None:
        if self._deadline is None and self.conn.their_state is h11.IDLE:
            self._watch(h11.IDLE)
        super().data_received(data)
        self._watch(self.conn.their_state)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lift()
        super().connection_lost(exc)

    def _watch(self, state: object) -> None:
        """Arm, move or lift the deadline for what is being read now: headers or body."""
        if state is self._reading and self._deadline is not None:
            return
        self._lift()
        if state is h11.IDLE:
            seconds = self._limits.header_timeout
        elif state is h11.SEND_BODY:
            seconds = self._limits.body_timeout
        else:
            return
        self._reading = state
        self._deadline = self.loop.call_later(seconds, self._too_slow)

    def _lift(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = None
        self._reading = None

    def _too_slow(self) -> None:
        reading_headers = self._reading is h11.IDLE
        self._deadline = None
        self._reading = None
        if self.transport.is_closing():
            return
        log.info("closed a connection from %s: its request came too slowly", self.client)
        # Headers still coming: nothing answered this request yet (`cycle` is the last one's).
        if reading_headers or self.cycle is None or not self.cycle.response_started:
            self.transport.write(_TIMEOUT_ANSWER)
        self.transport.close()
