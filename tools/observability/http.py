"""`GET /metrics` for both HTTP servers, behind `CRMOPS_METRICS_TOKEN`::

    routes = [*my_routes, *metrics_routes(settings.crmops.metrics_token)]

Unset, no route is served (404). Set, a scrape must carry `Authorization: Bearer <token>`
(compared in constant time), else 401; the token needs at least `MIN_TOKEN_LENGTH`
characters, else `metrics_routes` raises `ConfigurationError` and the server does not start.
Each replica serves its own figures; Prometheus sums them. It imports Starlette: only a
process that serves HTTP imports it.
"""

from __future__ import annotations

import hmac
import logging

from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tools.errors import ConfigurationError

log = logging.getLogger("crmops.http")

METRICS_PATH = "/metrics"
MIN_TOKEN_LENGTH = 32
"""Characters the metrics token needs (as `CRMOPS_MCP_TOKEN`): nobody can guess it."""
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_MAKE_ONE = "make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def metrics_token(token: SecretStr | None) -> SecretStr | None:
    """`token` stripped of surrounding spaces, None when unset or blank; `ConfigurationError`
    when it is shorter than `MIN_TOKEN_LENGTH`."""
    value = token.get_secret_value().strip() if token is not None else ""
    if not value:
        return None
    if len(value) < MIN_TOKEN_LENGTH:
        raise ConfigurationError(
            vendor="crmops",
            detail=f"CRMOPS_METRICS_TOKEN is too short: it needs at least {MIN_TOKEN_LENGTH} "
            f"characters so that nobody can guess it, this one has {len(value)} ({_MAKE_ONE})",
        )
    return SecretStr(value)


def metrics_routes(token: SecretStr | None) -> list[Route]:
    """`[GET /metrics]` requiring `token` as a bearer token, or `[]` when it is unset."""
    checked = metrics_token(token)
    if checked is None:
        return []
    expected = checked.get_secret_value().encode("utf-8")

    async def serve_metrics(request: Request) -> Response:
        if not _authorized(request.headers.get("authorization", ""), expected):
            log.warning("refused a scrape of %s without the metrics token", METRICS_PATH)
            return PlainTextResponse(
                "401: GET /metrics needs Authorization: Bearer $CRMOPS_METRICS_TOKEN\n",
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="crmops metrics"'},
            )
        from tools.observability.metrics import exposition  # noqa: PLC0415 - start-up cost

        return Response(exposition(), media_type=CONTENT_TYPE)

    return [Route(METRICS_PATH, serve_metrics, methods=["GET"])]


def _authorized(header: str, expected: bytes) -> bool:
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credentials.strip().encode("utf-8"), expected)
