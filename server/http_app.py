"""The MCP server over streamable HTTP: `/mcp` behind a bearer token; `/healthz` and
`/readyz` open, for load balancers and orchestrators.

    app = build_http_app(server, token=settings.crmops.mcp_token, host="127.0.0.1",
                         checks=readiness_checks(settings.crmops),
                         sessions=SessionLimits.of(settings.crmops))
    await serve_http(app, host="127.0.0.1", port=8000, name="MCP", lifespan="on")

The bearer is the static `CRMOPS_MCP_TOKEN` and/or, with `oauth=OAuthConfig.of(settings.crmops)`,
a JWT access token of the issuer, its scopes deciding which tools a caller sees and calls;
the RFC 9728 metadata is served under `/.well-known/oauth-protected-resource` (see
`server.http_auth` and `server.oauth`).

`/healthz` and `/readyz` are the serving kit's (`tools.serving`): `/readyz` answers 200 only
when every readiness check passes, else 503 with which one failed, so a load balancer sends
no traffic to a replica that cannot do its work. `serve_http` is `tools.serving.serve_http`.

DNS-rebinding protection is on: the MCP transport answers only requests whose `Host` (and
`Origin`, when sent) names the bound host, the loopback names when bound to loopback, or
an `allowed_hosts` entry (for a server reached by a DNS name or behind a proxy), with a
port of digits or none (`localhost:8800.evil.com` gets 421).

Stateless by default (`sessions=None`): no request depends on an earlier one, so every
request may reach any replica, whatever protocol the client speaks. A 2026-07-28 client has
no session anyway (a confirmation's state rides the call itself, sealed: `server.confirm`);
a client of 2025-11-25 or older gets none either, so it cannot be sent a server-to-client
request (an `elicitation/create` to confirm a write), while progress notifications still
arrive on the call's own SSE stream.

With `sessions=SessionLimits(...)` (`CRMOPS_MCP_SESSIONS=sticky`) those older clients keep a
session in this process, so they can be asked to confirm; a load balancer must then send all
of a session's requests to the replica that opened it. Sessions are bounded: one client
address holds at most `per_client` open (past that it gets 429 and the others are
unaffected), all clients together `max_sessions` (503), and a session with no request in
flight for `idle` seconds ends. Behind a proxy on loopback, uvicorn takes the client's
address from `X-Forwarded-For`.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import SecretStr
from sse_starlette.sse import AppStatus
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.http_auth import BearerTokenMiddleware, ProtectedResource, RefusalHook, bearer_token
from server.oauth import JwtVerifier, OAuthConfig
from tools.observability.http import METRICS_PATH, metrics_routes
from tools.serving import LOOPBACK_NAMES, OPEN_PATHS, health_routes, serve_http
from tools.settings import CrmopsSettings
from tools.storage.shared import ReadinessCheck

MCP_PATH = "/mcp"
SESSION_HEADER = "mcp-session-id"


@dataclass(frozen=True)
class SessionLimits:
    """How many MCP sessions stay open, and how long an idle one lives."""

    max_sessions: int = 1000
    per_client: int = 32
    idle: float = 300.0

    @classmethod
    def of(cls, settings: CrmopsSettings) -> SessionLimits | None:
        """None (stateless) unless `CRMOPS_MCP_SESSIONS=sticky`; then the limits
        `CRMOPS_MCP_MAX_SESSIONS`, `CRMOPS_MCP_SESSIONS_PER_CLIENT` and
        `CRMOPS_MCP_SESSION_IDLE` set."""
        if settings.mcp_sessions != "sticky":
            return None
        return cls(
            max_sessions=settings.mcp_max_sessions,
            per_client=settings.mcp_sessions_per_client,
            idle=settings.mcp_session_idle,
        )


def build_http_app(
    server: MCPServer[Any],
    *,
    token: SecretStr | None,
    host: str,
    allowed_hosts: Sequence[str] = (),
    checks: Sequence[ReadinessCheck] = (),
    sessions: SessionLimits | None = None,
    oauth: OAuthConfig | None = None,
    verifier: JwtVerifier | None = None,
    on_refused: RefusalHook | None = None,
    metrics_token: SecretStr | None = None,
) -> ASGIApp:
    """The ASGI app serving `server`; `ConfigurationError` without a token or a short one.

    `checks` are what `/readyz` probes (`tools.storage.shared.readiness_checks(settings)`).
    `sessions`: None serves every request on its own (any replica may take any request);
    limits keep sessions for clients of protocol 2025-11-25 and older (sticky replicas).
    `oauth` (`OAuthConfig.of(settings.crmops)`) also accepts that issuer's access tokens
    (checked by `verifier`, default `JwtVerifier(oauth)`), and then `token` may be None;
    `on_refused` hears of each write refused for a missing scope (`server.http_auth`).
    `metrics_token` (`CRMOPS_METRICS_TOKEN`) serves `GET /metrics` behind it
    (`tools.observability.http`).
    """
    if oauth is None or token is not None:
        token = bearer_token(token)
    # A tool call's answer is an SSE stream (mcp's streamable HTTP, through sse-starlette),
    # which by default is cut the moment uvicorn is told to exit: the call in flight would
    # lose its answer. Keep streams open; uvicorn's grace period bounds the wait instead.
    AppStatus.disable_automatic_graceful_drain()  # type: ignore[no-untyped-call]
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        transport_security=transport_security(host, allowed_hosts),
        host=host,
        stateless_http=sessions is None,
        session_idle_timeout=sessions.idle if sessions is not None else None,
        max_sessions=sessions.max_sessions if sessions is not None else None,
    )
    app.router.routes.extend(health_routes(checks))
    app.router.routes.extend(metrics_routes(metrics_token))  # its own token (or no route)
    resource = ProtectedResource.of(oauth) if oauth is not None else None
    if resource is not None:
        app.router.routes.extend(resource.routes(MCP_PATH))
    served: ASGIApp = app
    if sessions is not None:
        per_client, idle = sessions.per_client, sessions.idle
        served = SessionQuota(app, path=MCP_PATH, per_client=per_client, idle=idle)
    return BearerTokenMiddleware(
        NumericPortGuard(served),
        token=token,
        verifier=verifier or (JwtVerifier(oauth) if oauth is not None else None),
        resource=resource,
        open_paths={*OPEN_PATHS, METRICS_PATH},
        mcp_path=MCP_PATH,
        on_refused=on_refused,
    )


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


# A host (a name, an IPv4 address or a bracketed IPv6 address), then at most a port of digits.
_AUTHORITY = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^:\[\]/@\s]+)(:[0-9]{1,5})?")
_ORIGIN = re.compile(r"https?://(?P<authority>[^/]*)")


class NumericPortGuard:
    """ASGI middleware refusing a `Host` (421) or `Origin` (403) whose port is not digits.

    mcp's DNS-rebinding check reads an allowed `name:*` as "starts with `name:`"
    (python-sdk#3463), so `localhost:8800.evil.com` would pass as `localhost:*`: with the
    port held to digits here, that prefix match is the exact name it is meant to be.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            if not _is_authority(headers.get("host")):
                await PlainTextResponse("Invalid Host header", 421)(scope, receive, send)
                return
            if not _is_origin(headers.get("origin")):
                await PlainTextResponse("Invalid Origin header", 403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _is_authority(host: str | None) -> bool:
    # No Host at all (an HTTP/1.0 probe of /healthz) is mcp's to refuse on /mcp.
    return host is None or _AUTHORITY.fullmatch(host) is not None


def _is_origin(origin: str | None) -> bool:
    if origin is None:
        return True
    parts = _ORIGIN.fullmatch(origin)
    return parts is not None and _is_authority(parts["authority"])


@dataclass
class _Session:
    """What `SessionQuota` knows of one open session."""

    client: str
    in_flight: int = 0
    last_done: float = field(default_factory=time.monotonic)


class SessionQuota:
    """ASGI middleware holding each client address to `per_client` open MCP sessions.

    It learns a session from the `Mcp-Session-Id` the transport answers an opening request
    with, and forgets it on a 404 or a DELETE, or, as mcp does, once it has had no request
    in flight for `idle` seconds. A client at its limit gets 429 for a further session.
    """

    def __init__(self, app: ASGIApp, *, path: str, per_client: int, idle: float) -> None:
        self.app = app
        self.path = path
        self.per_client = per_client
        self.idle = idle
        self._sessions: dict[str, _Session] = {}
        self._opening: Counter[str] = Counter()
        """Opening requests under way, per client: they count before their session exists."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        session_id = Headers(scope=scope).get(SESSION_HEADER)
        if session_id is None:
            await self._open(scope, receive, send)
            return
        session = self._sessions.get(session_id)
        if session is None:  # mcp answers for an unknown session: 404
            await self.app(scope, receive, send)
            return
        await self._use(session_id, session, scope, receive, send)

    async def _open(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = _client_of(scope)
        self._expire()
        held = sum(1 for session in self._sessions.values() if session.client == client)
        if held + self._opening[client] >= self.per_client:
            await self._refusal(held + self._opening[client])(scope, receive, send)
            return
        answer = _Answer(send)
        self._opening[client] += 1
        try:
            await self.app(scope, receive, answer.send)
        finally:
            self._opening -= Counter({client: 1})
        if answer.session_id is not None and answer.status < 400:
            self._sessions[answer.session_id] = _Session(client)

    async def _use(
        self, session_id: str, session: _Session, scope: Scope, receive: Receive, send: Send
    ) -> None:
        answer = _Answer(send)
        session.in_flight += 1
        try:
            await self.app(scope, receive, answer.send)
        finally:
            session.in_flight -= 1
            session.last_done = time.monotonic()
        if answer.status == 404 or (scope["method"] == "DELETE" and answer.status < 300):
            self._sessions.pop(session_id, None)

    def _expire(self) -> None:
        """Forget the sessions mcp has ended for idleness (its clock starts before ours)."""
        oldest = time.monotonic() - self.idle
        for session_id, session in list(self._sessions.items()):
            if not session.in_flight and session.last_done <= oldest:
                del self._sessions[session_id]

    def _refusal(self, held: int) -> JSONResponse:
        message = (
            f"this client holds {held} open MCP sessions, the most allowed "
            "(CRMOPS_MCP_SESSIONS_PER_CLIENT): end one with an HTTP DELETE of /mcp carrying "
            f"its Mcp-Session-Id, or wait for an idle one to end ({self.idle:g} s)"
        )
        return JSONResponse(
            {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": message}},
            status_code=429,
            headers={"Retry-After": str(max(1, round(self.idle)))},
        )


class _Answer:
    """Wraps `send`, noting the status and the session id a response starts with."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status = 0
        self.session_id: str | None = None

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.session_id = Headers(raw=message.get("headers", [])).get(SESSION_HEADER)
        await self._send(message)


def _client_of(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


__all__ = [
    "MCP_PATH",
    "SessionLimits",
    "build_http_app",
    "serve_http",
    "transport_security",
]
