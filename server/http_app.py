"""The MCP server over streamable HTTP: `/mcp` behind a bearer token, `/healthz` open.

    app = build_http_app(server, token=settings.crmops.mcp_token, host="127.0.0.1")
    await serve_http(app, host="127.0.0.1", port=8000)

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
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from server.http_auth import BearerTokenMiddleware
from tools.errors import ConfigurationError

log = logging.getLogger("crmops.http")

MCP_PATH = "/mcp"
HEALTH_PATH = "/healthz"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def build_http_app(
    server: MCPServer[Any],
    *,
    token: SecretStr | None,
    host: str,
    allowed_hosts: Sequence[str] = (),
) -> ASGIApp:
    """The ASGI app serving `server`; `ConfigurationError` without a token."""
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
    return BearerTokenMiddleware(app, token=token, open_paths={HEALTH_PATH})


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


async def serve_http(app: ASGIApp, *, host: str, port: int) -> None:
    """Serve `app` with uvicorn until interrupted; its logs go through `logging` (stderr)."""
    if host not in LOOPBACK_NAMES:
        log.warning("serving MCP on %s:%s, reachable from other machines", host, port)
    config = uvicorn.Config(app, host=host, port=port, lifespan="on", log_config=None)
    await uvicorn.Server(config).serve()
