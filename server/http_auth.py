"""Bearer-token authentication for the MCP server over HTTP.

    app = BearerTokenMiddleware(app, token=settings.crmops.mcp_token, open_paths={"/healthz"})

Every HTTP request except those to `open_paths` must carry `Authorization: Bearer <token>`;
anything else gets 401 before it reaches the MCP transport. The comparison is constant-time.
`bearer_token(settings.crmops.mcp_token)` is the token as the server uses it: stripped of
surrounding spaces, and at least `MIN_TOKEN_LENGTH` characters, else `ConfigurationError`.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Collection

from pydantic import SecretStr
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from tools.errors import ConfigurationError

log = logging.getLogger("crmops.http")

MIN_TOKEN_LENGTH = 32
"""Characters a bearer token needs: `secrets.token_urlsafe(24)` makes 32, (32) makes 43."""
_MAKE_ONE = "make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def bearer_token(token: SecretStr | None) -> SecretStr:
    """`token` stripped of surrounding spaces (no client can send them: HTTP drops them);
    `ConfigurationError` naming CRMOPS_MCP_TOKEN when it is unset or too short to guess."""
    value = token.get_secret_value().strip() if token is not None else ""
    if not value:
        raise ConfigurationError(
            vendor="crmops",
            missing=["CRMOPS_MCP_TOKEN"],
            detail=f"the HTTP transport refuses to start without a bearer token ({_MAKE_ONE})",
        )
    if len(value) < MIN_TOKEN_LENGTH:
        raise ConfigurationError(
            vendor="crmops",
            detail=f"CRMOPS_MCP_TOKEN is too short: a bearer token needs at least "
            f"{MIN_TOKEN_LENGTH} characters so that nobody can guess it, this one has "
            f"{len(value)} ({_MAKE_ONE})",
        )
    return SecretStr(value)


class BearerTokenMiddleware:
    """ASGI middleware refusing HTTP requests without the expected bearer token."""

    def __init__(self, app: ASGIApp, *, token: SecretStr, open_paths: Collection[str] = ()) -> None:
        expected = token.get_secret_value()
        if not expected:
            raise ValueError("the bearer token must not be empty")
        self.app = app
        self.open_paths = frozenset(open_paths)
        self._expected = expected.encode("utf-8")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(open_paths={sorted(self.open_paths)})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        if self._authorized(Headers(scope=scope).get("authorization", "")):
            await self.app(scope, receive, send)
            return
        log.warning("refused an unauthenticated request to %s", scope["path"])
        await _unauthorized()(scope, receive, send)

    def _authorized(self, header: str) -> bool:
        scheme, _, credentials = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(credentials.strip().encode("utf-8"), self._expected)


def _unauthorized() -> JSONResponse:
    return JSONResponse(
        {
            "error": "unauthorized",
            "error_description": "send the header Authorization: Bearer <CRMOPS_MCP_TOKEN>",
        },
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer realm="crmops"'},
    )
