"""Serving the Slack app: over HTTP (`POST /slack/events`) or over Socket Mode.

    http_app = build_http_app(bolt_app, checks=readiness_checks(settings.crmops))
    await serve_http(http_app, host="127.0.0.1", port=3000)

    handler = socket_mode_handler(bolt_app, slack_settings)
    await handler.connect_async()  ...  await handler.close_async()

`GET /healthz` answers 200 while the process serves; `GET /readyz` 200 only when every
readiness check passes (Redis when `CRMOPS_REDIS_URL` is set), else 503.

HTTP mode: bolt checks `X-Slack-Signature` (HMAC-SHA256 of `v0:{timestamp}:{body}` with
the signing secret) and refuses a timestamp more than 5 minutes off with 401.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import uvicorn
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bots import auth
from bots.settings import SlackSettings
from tools.storage.shared import ReadinessCheck, readyz_endpoint

log = logging.getLogger("crmops.slack")

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def build_http_app(bolt_app: AsyncApp, *, checks: Sequence[ReadinessCheck] = ()) -> Starlette:
    """`POST /slack/events` for every Slack request (commands, buttons, modals, events);
    `/healthz`, and `/readyz` running `checks` (`tools.storage.shared.readiness_checks`)."""
    handler = AsyncSlackRequestHandler(bolt_app)

    async def events(request: Request) -> Response:
        return await handler.handle(request)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route(EVENTS_PATH, events, methods=["POST"]),
            Route(HEALTH_PATH, healthz, methods=["GET"]),
            Route(READY_PATH, readyz_endpoint(checks), methods=["GET"]),
        ]
    )


async def serve_http(app: Starlette, *, host: str, port: int) -> None:
    """Serve until interrupted; uvicorn's logs go through `logging`."""
    if host not in LOOPBACK_NAMES:
        log.info("serving Slack requests on %s:%s%s", host, port, EVENTS_PATH)
    config = uvicorn.Config(app, host=host, port=port, lifespan="off", log_config=None)
    await uvicorn.Server(config).serve()


def socket_mode_handler(bolt_app: AsyncApp, settings: SlackSettings) -> AsyncSocketModeHandler:
    """A Socket Mode connection for `bolt_app`, opened with `SLACK_APP_TOKEN`.

    It asks `apps.connections.open` at `SLACK_API_URL` for the WebSocket URL, then acks
    each envelope with bolt's answer (the ack's message, if any, as its payload).
    """
    return AsyncSocketModeHandler(bolt_app, app_token=auth.app_token(settings))
