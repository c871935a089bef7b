"""The MCP server over streamable HTTP: `/mcp` behind a bearer token; `/healthz` and
`/readyz` open, for load balancers and orchestrators.

    app = build_http_app(server, token=settings.crmops.mcp_token, host="127.0.0.1",
                         checks=readiness_checks(settings.crmops))
    await serve_http(app, host="127.0.0.1", port=8000, name="MCP", lifespan="on")

`/healthz` and `/readyz` are the serving kit's (`tools.serving`): `/readyz` answers 200 only
when every readiness check passes, else 503 with which one failed, so a load balancer sends
no traffic to a replica that cannot do its work. `serve_http` is `tools.serving.serve_http`.

DNS-rebinding protection is on: the MCP transport answers only requests whose `Host` (and
`Origin`, when sent) names the bound host, the loopback names when bound to loopback, or
an `allowed_hosts` entry (for a server reached by a DNS name or behind a proxy).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import SecretStr
from sse_starlette.sse import AppStatus
from starlette.types import ASGIApp

from server.http_auth import BearerTokenMiddleware
from tools.errors import ConfigurationError
from tools.serving import LOOPBACK_NAMES, OPEN_PATHS, health_routes, serve_http
from tools.storage.shared import ReadinessCheck

MCP_PATH = "/mcp"


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

    # A tool call's answer is an SSE stream (mcp's streamable HTTP, through sse-starlette),
    # which by default is cut the moment uvicorn is told to exit: the call in flight would
    # lose its answer. Keep streams open; uvicorn's grace period bounds the wait instead.
    AppStatus.disable_automatic_graceful_drain()  # type: ignore[no-untyped-call]
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        transport_security=transport_security(host, allowed_hosts),
        host=host,
    )
    app.router.routes.extend(health_routes(checks))
    return BearerTokenMiddleware(app, token=token, open_paths=set(OPEN_PATHS))


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


__all__ = ["MCP_PATH", "build_http_app", "serve_http", "transport_security"]
