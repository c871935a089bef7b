"""Who may reach the MCP server over HTTP: the static bearer token, OAuth access tokens, scopes.

    app = BearerTokenMiddleware(app, token=bearer_token(settings.crmops.mcp_token),
                                open_paths={"/healthz"})                     # one-person setup
    resource = ProtectedResource.of(oauth_config)                             # OAuth
    app = BearerTokenMiddleware(app, token=None, verifier=JwtVerifier(oauth_config),
                                resource=resource, mcp_path="/mcp", on_refused=hook)

Every HTTP request except those to `open_paths` and `/.well-known/...` must carry
`Authorization: Bearer <token>`: the static token (`CRMOPS_MCP_TOKEN`, compared in constant
time, every scope), or, with a `verifier`, a JWT access token it accepts (`server.oauth`).
Both may be configured: a bearer equal to the static token is the static caller, anything
else must be a valid JWT. The SDK's `AuthenticatedUser` is left in the ASGI scope and in its
auth context, where `server.identity.request_principal` (and the SDK's request-state
binding) find it.

Refusals follow RFC 6750 and the MCP authorization spec: 401 with `WWW-Authenticate: Bearer
realm="crmops", resource_metadata="<url>"` for a request without a token (plus
`error="invalid_token"` for a token that was sent and refused); 403 `insufficient_scope`
naming the scope for a `tools/call` of a tool the token's scopes do not cover (the body of
a POST to `mcp_path` is read for that, bounded as the transport bounds it); 503 when the
issuer's keys cannot be fetched. Each refusal logs one line, never the token. A refused
call of a writing tool is passed to `on_refused` (`audit_refusals(services)` records it in
the audit log).

`/.well-known/...` is never behind the token: with OAuth the protected-resource metadata
(RFC 9728) is served there (`ProtectedResource.routes()`), and every other such path, or
all of them without OAuth, is a quiet 404 (OAuth-aware clients probe them first).
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mcp.server.auth.handlers.metadata import ProtectedResourceMetadataHandler
from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.routes import build_resource_metadata_url, cors_middleware
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE, RequestBodyLimitMiddleware
from mcp.shared.auth import ProtectedResourceMetadata
from pydantic import AnyHttpUrl, SecretStr
from starlette.authentication import AuthCredentials
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.identity import SCOPES, principal_of_token, static_access_token, tool_scope
from server.oauth import JwtVerifier, KeysUnavailableError, OAuthConfig, TokenRefusedError
from tools.errors import ConfigurationError
from tools.identity import Principal
from tools.policy import record_refusal
from tools.table import tool_row

if TYPE_CHECKING:
    from tools.services import Services

log = logging.getLogger("crmops.http")

MIN_TOKEN_LENGTH = 32
"""Characters a bearer token needs: `secrets.token_urlsafe(24)` makes 32, (32) makes 43."""
_MAKE_ONE = "make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
WELL_KNOWN = "/.well-known/"
PROTECTED_RESOURCE_PATH = "/.well-known/oauth-protected-resource"
RETRY_AFTER_SECONDS = 5

RefusalHook = Callable[[Principal, str, Mapping[str, Any], str], Awaitable[None]]
"""`(principal, tool name, the call's arguments, reason)`: a refused call of a writing tool."""


def bearer_token(token: SecretStr | None) -> SecretStr:
    """`token` stripped of surrounding spaces (no client can send them: HTTP drops them);
    `ConfigurationError` naming CRMOPS_MCP_TOKEN when it is unset or too short to guess."""
    value = token.get_secret_value().strip() if token is not None else ""
    if not value:
        raise ConfigurationError(
            vendor="crmops",
            missing=["CRMOPS_MCP_TOKEN"],
            detail="the HTTP transport refuses to start without a bearer token: set "
            f"CRMOPS_MCP_TOKEN ({_MAKE_ONE}), or CRMOPS_OAUTH_ISSUER and CRMOPS_OAUTH_AUDIENCE "
            "to accept the access tokens of an authorization server",
        )
    if len(value) < MIN_TOKEN_LENGTH:
        raise ConfigurationError(
            vendor="crmops",
            detail=f"CRMOPS_MCP_TOKEN is too short: a bearer token needs at least "
            f"{MIN_TOKEN_LENGTH} characters so that nobody can guess it, this one has "
            f"{len(value)} ({_MAKE_ONE})",
        )
    return SecretStr(value)


@dataclass(frozen=True)
class ProtectedResource:
    """This server as an OAuth protected resource (RFC 9728): what its metadata says."""

    resource: str
    authorization_server: str
    scopes: tuple[str, ...] = SCOPES

    @classmethod
    def of(cls, config: OAuthConfig) -> ProtectedResource:
        """The resource `CRMOPS_OAUTH_AUDIENCE` names, whose tokens `CRMOPS_OAUTH_ISSUER` issues."""
        return cls(config.audience, config.issuer)

    @property
    def metadata_url(self) -> str:
        """Where clients find the metadata: the well-known path inserted before the
        resource's path (`https://h/.well-known/oauth-protected-resource/mcp`)."""
        return str(build_resource_metadata_url(AnyHttpUrl(self.resource)))

    def metadata(self) -> ProtectedResourceMetadata:
        """The RFC 9728 document (the issuer kept exactly as configured: clients compare it)."""
        return ProtectedResourceMetadata.model_validate(
            {
                "resource": self.resource,
                "authorization_servers": [self.authorization_server],
                "scopes_supported": list(self.scopes),
                "bearer_methods_supported": ["header"],
                "resource_name": "crmops",
            }
        )

    def routes(self, mcp_path: str) -> list[Route]:
        """The metadata at `/.well-known/oauth-protected-resource`, at its path form for the
        resource's path, and for `mcp_path` (when a proxy serves `/mcp` under another path)."""
        endpoint = cors_middleware(
            ProtectedResourceMetadataHandler(self.metadata()).handle, ["GET", "OPTIONS"]
        )
        resource_path = urlsplit(self.resource).path.rstrip("/")
        paths = dict.fromkeys(
            [
                PROTECTED_RESOURCE_PATH,
                PROTECTED_RESOURCE_PATH + resource_path,
                PROTECTED_RESOURCE_PATH + mcp_path,
            ]
        )
        return [Route(path, endpoint=endpoint, methods=["GET", "OPTIONS"]) for path in paths]


class BearerTokenMiddleware:
    """ASGI middleware authenticating every request (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: SecretStr | None,
        verifier: JwtVerifier | None = None,
        resource: ProtectedResource | None = None,
        open_paths: Collection[str] = (),
        mcp_path: str | None = None,
        on_refused: RefusalHook | None = None,
    ) -> None:
        expected = token.get_secret_value() if token is not None else ""
        if token is not None and not expected:
            raise ValueError("the bearer token must not be empty")
        if not expected and verifier is None:
            raise ValueError("a bearer token or a token verifier is needed")
        self.app = app
        self.open_paths = frozenset(open_paths)
        self.verifier = verifier
        self.resource = resource
        self.mcp_path = mcp_path
        self.on_refused = on_refused
        self._expected = expected.encode("utf-8") if expected else None
        self._scoped = RequestBodyLimitMiddleware(self._check_scope, DEFAULT_MAX_REQUEST_BODY_SIZE)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(open_paths={sorted(self.open_paths)}, "
            f"verifier={self.verifier!r})"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path in self.open_paths or path.startswith(WELL_KNOWN):
            await self.app(scope, receive, send)
            return
        access = await self._authenticate(Headers(scope=scope).get("authorization"))
        if isinstance(access, Refusal):
            log.warning("refused a request to %s: %s", path, access.reason)
            await access.response(self.resource)(scope, receive, send)
            return
        user = AuthenticatedUser(access)
        scope["user"] = user
        scope["auth"] = AuthCredentials(access.scopes)
        reset = auth_context_var.set(user)
        try:
            if (
                _scoped(access)
                and scope["type"] == "http"
                and scope["method"] == "POST"
                and path == self.mcp_path
            ):
                await self._scoped(scope, receive, send)
            else:
                await self.app(scope, receive, send)
        finally:
            auth_context_var.reset(reset)

    async def _authenticate(self, header: str | None) -> AccessToken | Refusal:
        """The access token the `Authorization` header carries, or why there is none."""
        scheme, _, credentials = (header or "").strip().partition(" ")
        credentials = credentials.strip()
        if scheme.lower() != "bearer" or not credentials:
            return Refusal(401, "no bearer token")
        if self._expected is not None and hmac.compare_digest(
            credentials.encode("utf-8"), self._expected
        ):
            return static_access_token()
        if self.verifier is None:
            return Refusal(401, "not the bearer token", error="invalid_token")
        try:
            return await self.verifier.verify(credentials)
        except TokenRefusedError as exc:
            return Refusal(401, exc.reason, error="invalid_token")
        except KeysUnavailableError as exc:
            return Refusal(503, f"cannot check tokens now: {exc}")

    async def _check_scope(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse (403) a `tools/call` of a tool the token's scopes do not cover."""
        messages = await _read_body(receive)
        body = b"".join(
            message.get("body", b"") for message in messages if message["type"] == "http.request"
        )
        user = scope["user"]
        principal = principal_of_token(user.access_token)
        for name, arguments in _tool_calls(body):
            needed = tool_scope(name)
            if principal.may_use_scope(needed):
                continue
            reason = f"the token lacks the scope {needed} that {name} needs"
            log.warning("refused a call of %s by %s: %s", name, principal.subject, reason)
            if self.on_refused is not None and tool_row(name).writes:
                await self.on_refused(principal, name, arguments, reason)
            refusal = Refusal(403, reason, error="insufficient_scope", scope=needed)
            await refusal.response(self.resource)(scope, _replay(messages, receive), send)
            return
        await self.app(scope, _replay(messages, receive), send)


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused, and the answer that says so (RFC 6750 §3)."""

    status: int
    reason: str
    error: str | None = None
    scope: str | None = None

    def response(self, resource: ProtectedResource | None) -> JSONResponse:
        """The 401/403/503 answer, its `WWW-Authenticate` pointing at the resource metadata."""
        if self.status == 503:
            return JSONResponse(
                {"error": "temporarily_unavailable", "error_description": self.reason},
                status_code=503,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        parameters = {"realm": "crmops"}
        if self.error is not None:
            parameters |= {"error": self.error, "error_description": self.reason}
        if self.scope is not None:
            parameters["scope"] = self.scope
        if resource is not None:
            parameters["resource_metadata"] = resource.metadata_url
        challenge = "Bearer " + ", ".join(
            f'{key}="{_quotable(value)}"' for key, value in parameters.items()
        )
        body = {
            "error": self.error or "unauthorized",
            "error_description": self._description(resource),
        }
        return JSONResponse(body, status_code=self.status, headers={"WWW-Authenticate": challenge})

    def _description(self, resource: ProtectedResource | None) -> str:
        if self.error is not None:
            return self.reason
        if resource is None:
            return "send the header Authorization: Bearer <CRMOPS_MCP_TOKEN>"
        issuer = resource.authorization_server
        return f"send an access token from {issuer} (Authorization: Bearer <token>)"


def _scoped(access: AccessToken) -> bool:
    """Whether the token's scopes limit what it may call (the static token's do not)."""
    return principal_of_token(access).scopes is not None


def _quotable(value: str) -> str:
    """`value` fit for a quoted-string: no quote or backslash can end it early."""
    return value.replace("\\", "").replace('"', "'")


async def _read_body(receive: Receive) -> list[Message]:
    """The request's messages up to the end of its body (bounded by the body-limit middleware)."""
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            return messages


def _replay(messages: Iterable[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


def _tool_calls(body: bytes) -> list[tuple[str, Mapping[str, Any]]]:
    """The `(tool name, arguments)` of each JSON-RPC `tools/call` of a known tool in `body`
    (one message or a batch); anything unparsable is the transport's to answer."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return []
    calls: list[tuple[str, Mapping[str, Any]]] = []
    for message in parsed if isinstance(parsed, list) else [parsed]:
        if not isinstance(message, dict) or message.get("method") != "tools/call":
            continue
        params = message.get("params")
        name = params.get("name") if isinstance(params, dict) else None
        if not isinstance(name, str) or not _known_tool(name):
            continue
        arguments = params.get("arguments") if isinstance(params, dict) else None
        calls.append((name, arguments if isinstance(arguments, dict) else {}))
    return calls


def _known_tool(name: str) -> bool:
    try:
        tool_row(name)
    except KeyError:
        return False
    return True


def audit_refusals(services: Services) -> RefusalHook:
    """The `on_refused` hook recording each refused write in `services`' audit log, as the
    Slack bot records its refusals (`tools.policy.record_refusal`)."""

    async def record(
        principal: Principal, tool: str, arguments: Mapping[str, Any], reason: str
    ) -> None:
        vendor = arguments.get("vendor")
        await record_refusal(
            services, principal, tool, reason, vendor=vendor if isinstance(vendor, str) else ""
        )

    return record
