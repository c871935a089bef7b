"""The MCP server over streamable HTTP: `/mcp` behind a bearer token; `/healthz` and
`/readyz` open, for load balancers and orchestrators.

    app = build_http_app(server, token=settings.crmops.mcp_token, host="127.0.0.1",
                         checks=readiness_checks(settings.crmops))
    await serve_http(app, host="127.0.0.1", port=8000)

`/healthz` answers 200 while the process serves (liveness); `/readyz` answers 200 only when
every readiness check passes (Redis when `CRMOPS_REDIS_URL` is set), else 503 with which
one failed, so a load balancer sends no traffic to a replica that cannot do its work.

DNS-rebinding protection is on: the MCP transport answers only requests whose `Host` (and
`Origin`, when sent) names the bound host, the loopback names when bound to loopback, or
an `allowed_hosts` entry (for a server reached by a DNS name or behind a proxy).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import SecretStr
from sse_starlette.sse import AppStatus
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from server.http_auth import BearerTokenMiddleware
from tools.errors import ConfigurationError
from tools.storage.shared import ReadinessCheck, readyz_endpoint

log = logging.getLogger("crmops.http")

MCP_PATH = "/mcp"
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
SHUTDOWN_GRACE = 25.0
"""Seconds a stopping server waits for tool calls in flight (Kubernetes kills after 30)."""
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def build_http_app(
    server: MCPServer[Any],
    *,
    token: SecretStr | None,
    host: str,
    allowed_hosts: Sequence[str] = (),
    checks: Sequence[ReadinessCheck] = (),
) -> ASGIApp:
    """The ASGI app serving `server`; `ConfigurationError` without a token.

    `checks` are what `/readyz` probes (`tools.storage.shared.readiness_checks(settings)`).
    """
    if token is None or not token.get_secret_value():
        raise ConfigurationError(
            vendor="crmops",
            missing=["CRMOPS_MCP_TOKEN"],
            detail="the HTTP transport refuses to start without a bearer token "
            "(make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')",
        )

    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        transport_security=transport_security(host, allowed_hosts),
        host=host,
    )
    app.router.routes.append(Route(HEALTH_PATH, _healthz, methods=["GET"]))
    app.router.routes.append(Route(READY_PATH, readyz_endpoint(checks), methods=["GET"]))
    return BearerTokenMiddleware(app, token=token, open_paths={HEALTH_PATH, READY_PATH})


async def _healthz(_: Request) -> Response:
    """For load balancers and probes: no token needed, says nothing but that it runs."""
    return JSONResponse({"status": "ok"})


def transport_security(host: str, allowed_hosts: Iterable[str] = ()) -> TransportSecuritySettings:
    """DNS-rebinding protection allowing `host` (any port), loopback names, `allowed_hosts`."""
    names = {host, *allowed_hosts}
    if host in LOOPBACK_NAMES:
        names.update(LOOPBACK_NAMES)
    hosts = sorted(_bracketed(name) for name in names)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[form for name in hosts for form in (name, f"{name}:*")],
        allowed_origins=[
            form
            for name in hosts
            for scheme in ("http", "https")
            for form in (f"{scheme}://{name}", f"{scheme}://{name}:*")
        ],
    )


def _bracketed(name: str) -> str:
    """An IPv6 address as it appears in a Host header: `[::1]`."""
    return f"[{name}]" if ":" in name and not name.startswith("[") else name


async def serve_http(
    app: ASGIApp, *, host: str, port: int, shutdown_grace: float = SHUTDOWN_GRACE
) -> None:
    """Serve `app` with uvicorn until interrupted; its logs go through `logging` (stderr).

    On SIGTERM or Ctrl-C it stops accepting connections and lets the tool calls in flight
    finish, for at most `shutdown_grace` seconds, before it cancels what is left and
    closes the vendor clients.
    """
    if host not in LOOPBACK_NAMES:
        log.warning("serving MCP on %s:%s, reachable from other machines", host, port)
    # A tool call's answer is an SSE stream (mcp's streamable HTTP, through sse-starlette),
    # which by default is cut the moment uvicorn is told to exit: the call in flight would
    # lose its answer. Keep streams open; uvicorn's grace period bounds the wait instead.
    AppStatus.disable_automatic_graceful_drain()  # type: ignore[no-untyped-call]
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        log_config=None,
        timeout_graceful_shutdown=max(1, round(shutdown_grace)),
    )
    await uvicorn.Server(config).serve()
