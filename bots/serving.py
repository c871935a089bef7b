"""Serving the Slack app: over HTTP (`POST /slack/events`) or over Socket Mode.

    http_app = build_http_app(bolt_app, checks=readiness_checks(settings.crmops))
    await serve_http(http_app, host="127.0.0.1", port=3000, name="Slack")

    handler = socket_mode_handler(bolt_app, slack_settings)
    await handler.connect_async()  ...  await handler.close_async()

`GET /healthz` and `GET /readyz` and `serve_http` are the serving kit's (`tools.serving`),
shared with the MCP server.

HTTP mode: bolt checks `X-Slack-Signature` (HMAC-SHA256 of `v0:{timestamp}:{body}` with
the signing secret) and refuses a timestamp more than 5 minutes off with 401.
"""

from __future__ import annotations

from collections.abc import Sequence

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bots import auth
from bots.settings import SlackSettings
from tools.serving import health_routes, serve_http
from tools.storage.shared import ReadinessCheck

EVENTS_PATH = "/slack/events"


def build_http_app(bolt_app: AsyncApp, *, checks: Sequence[ReadinessCheck] = ()) -> Starlette:
    """`POST /slack/events` for every Slack request (commands, buttons, modals, events);
    `/healthz`, and `/readyz` running `checks` (`tools.storage.shared.readiness_checks`)."""
    handler = AsyncSlackRequestHandler(bolt_app)

    async def events(request: Request) -> Response:
        return await handler.handle(request)

    return Starlette(routes=[Route(EVENTS_PATH, events, methods=["POST"]), *health_routes(checks)])


def socket_mode_handler(bolt_app: AsyncApp, settings: SlackSettings) -> AsyncSocketModeHandler:
    """A Socket Mode connection for `bolt_app`, opened with `SLACK_APP_TOKEN`.

    It asks `apps.connections.open` at `SLACK_API_URL` for the WebSocket URL, then acks
    each envelope with bolt's answer (the ack's message, if any, as its payload).
    """
    return AsyncSocketModeHandler(bolt_app, app_token=auth.app_token(settings))


__all__ = ["EVENTS_PATH", "build_http_app", "serve_http", "socket_mode_handler"]
