"""Serving the Slack app: over HTTP (`POST /slack/events`) or over Socket Mode.

    http_app = build_http_app(bolt_app, settings=slack_settings, checks=readiness_checks(...))
    await serve_http(http_app, host="127.0.0.1", port=3000, name="Slack")

    handler = socket_mode_handler(bolt_app, slack_settings)
    await handler.connect_async()  ...  await handler.close_async()

`GET /healthz` and `GET /readyz` and `serve_http` are the serving kit's (`tools.serving`),
shared with the MCP server.

HTTP mode: `SlackRequestGate` stands in front of bolt. Anyone can reach `/slack/events`,
so a request is refused as cheaply as it can be, and bolt only ever sees what Slack signed:

| refusal | when                                                                     |
|---------|--------------------------------------------------------------------------|
| 415     | a `Content-Encoding` (Slack never compresses), before reading the body  |
| 413     | over `MAX_REQUEST_BYTES`: by `Content-Length`, or as the bytes arrive    |
| 401     | no `X-Slack-Signature`, a timestamp that is not a number or more than 5 |
|         | minutes off (before reading), or a signature that does not match        |
| 400     | a body that is not UTF-8, or a JSON payload that is not an object, nests |
|         | deeper than `MAX_JSON_DEPTH` or does not parse                           |

The signature is `v0=` HMAC-SHA256 of `v0:{timestamp}:{body}` with the signing secret,
checked by slack_sdk's `SignatureVerifier` (the one bolt uses). A refusal is logged (its
status and reason, never the body), says why in one line, and closes the connection. Bolt
checks the signature again, so its "Invalid request signature detected (… body: …)" log
line has nothing left to log.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from itertools import accumulate
from urllib.parse import parse_qsl

from pydantic import SecretStr
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.starlette.async_handler import to_starlette_response
from slack_bolt.async_app import AsyncApp, AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bots import auth
from bots.settings import SlackSettings
from tools.observability.http import metrics_routes
from tools.serving import health_routes, serve_http
from tools.storage.shared import ReadinessCheck

log = logging.getLogger("crmops.slack")

EVENTS_PATH = "/slack/events"
MAX_REQUEST_BYTES = 1024 * 1024
"""Bytes a request to `/slack/events` may carry. Slack's largest payloads (a modal's view
with 100 blocks of input, a 40,000-character message event) are a few hundred KiB."""
MAX_JSON_DEPTH = 64
"""Levels of nesting a Slack JSON payload may have; Slack's own reach about 15."""
SIGNATURE_WINDOW = 300
"""Seconds a signed request is valid: Slack's (and bolt's) 5 minutes."""

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_JSON_STRING = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]++")
_NESTING = {"[": 1, "{": 1, "]": -1, "}": -1}


class RequestRefusedError(Exception):
    """Why the gate refuses a request: the HTTP status and a line for the caller."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class SlackRequestGate:
    """Reads, checks and hands on one Slack request; `await gate.admit(request)` returns the
    body as text, or raises `RequestRefusedError` having read at most `max_bytes` of it.

        gate = SlackRequestGate(signing_secret, max_bytes=MAX_REQUEST_BYTES)
    """

    def __init__(self, signing_secret: str, *, max_bytes: int = MAX_REQUEST_BYTES) -> None:
        self._verifier = SignatureVerifier(signing_secret)
        self.max_bytes = max_bytes

    async def admit(self, request: Request) -> str:
        """The body bolt may parse: signed by Slack, within the limits, UTF-8, not too deep."""
        timestamp, signature = self._check_headers(request)
        raw = await self._read(request)
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise RequestRefusedError(400, "the body is not UTF-8") from None
        if not self._verifier.is_valid(body, timestamp, signature):
            raise RequestRefusedError(401, "invalid request signature")
        for text in _json_texts(body, request):
            _check_json(text)
        return body

    def _check_headers(self, request: Request) -> tuple[str, str]:
        headers = request.headers
        if headers.get("content-encoding", "identity").strip().lower() != "identity":
            raise RequestRefusedError(415, "Slack requests are not compressed")
        length = headers.get("content-length", "0")
        if not length.isascii() or not length.isdigit() or int(length) > self.max_bytes:
            raise RequestRefusedError(413, f"a Slack request is at most {self.max_bytes} bytes")
        timestamp = headers.get("x-slack-request-timestamp", "")
        signature = headers.get("x-slack-signature", "")
        if not signature or not _TIMESTAMP.fullmatch(timestamp):
            raise RequestRefusedError(401, "missing or malformed Slack signature headers")
        if abs(self._verifier.clock.now() - int(timestamp)) > SIGNATURE_WINDOW:
            raise RequestRefusedError(401, "the request timestamp is more than 5 minutes off")
        return timestamp, signature

    async def _read(self, request: Request) -> bytes:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.max_bytes:
                raise RequestRefusedError(413, f"a Slack request is at most {self.max_bytes} bytes")
        return bytes(body)


def json_depth(text: str) -> int:
    """How deep the JSON `text` nests (0 for a scalar), without parsing it: strings are cut
    out, then brackets counted, in time linear in the text and with no recursion."""
    brackets = _NOT_A_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(accumulate(map(_NESTING.__getitem__, brackets)), default=0)


def _check_json(text: str) -> None:
    if not text.lstrip().startswith("{"):
        raise RequestRefusedError(400, "a Slack payload is a JSON object")
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise RequestRefusedError(400, f"JSON nested {depth} deep: over {MAX_JSON_DEPTH}")


def _json_texts(body: str, request: Request) -> list[str]:
    # What bolt parses as JSON: the body itself, or an interaction's `payload` field.
    if request.headers.get("content-type", "").startswith("application/json") or (
        body.startswith("{")
    ):
        return [body]
    if "payload" not in body:
        return []
    return [value for name, value in parse_qsl(body) if name == "payload"]


def build_http_app(
    bolt_app: AsyncApp,
    *,
    settings: SlackSettings,
    checks: Sequence[ReadinessCheck] = (),
    metrics_token: SecretStr | None = None,
) -> Starlette:
    """`POST /slack/events` for every Slack request (commands, buttons, modals, events),
    behind a `SlackRequestGate` with `settings`' signing secret; `/healthz`, and `/readyz`
    running `checks` (`tools.storage.shared.readiness_checks`); `GET /metrics` behind
    `metrics_token` (`CRMOPS_METRICS_TOKEN`; unset: not served)."""
    gate = SlackRequestGate(auth.signing_secret(settings))

    async def events(request: Request) -> Response:
        try:
            body = await gate.admit(request)
            bolt_request = _bolt_request(request, body)
        except RequestRefusedError as refused:
            log.info("refused a Slack request: %s %s", refused.status, refused)
            # Close: the rest of a refused body is not worth receiving. (A client still
            # sending may see the connection reset before it reads this answer.)
            return PlainTextResponse(
                f"{refused}\n", status_code=refused.status, headers={"Connection": "close"}
            )
        return to_starlette_response(await bolt_app.async_dispatch(bolt_request))

    routes = [Route(EVENTS_PATH, events, methods=["POST"]), *health_routes(checks)]
    return Starlette(routes=[*routes, *metrics_routes(metrics_token)])


def _bolt_request(request: Request, body: str) -> AsyncBoltRequest:
    try:
        # What bolt's Starlette adapter builds, from the text the gate already decoded.
        return AsyncBoltRequest(
            body=body,
            query=request.query_params,  # type: ignore[arg-type]
            headers=request.headers,  # type: ignore[arg-type]
        )
    except (ValueError, RecursionError):
        raise RequestRefusedError(400, "the payload is not valid JSON") from None


def socket_mode_handler(bolt_app: AsyncApp, settings: SlackSettings) -> AsyncSocketModeHandler:
    """A Socket Mode connection for `bolt_app`, opened with `SLACK_APP_TOKEN`.

    It asks `apps.connections.open` at `SLACK_API_URL` for the WebSocket URL, then acks
    each envelope with bolt's answer (the ack's message, if any, as its payload).
    """
    return AsyncSocketModeHandler(bolt_app, app_token=auth.app_token(settings))


__all__ = [
    "EVENTS_PATH",
    "MAX_JSON_DEPTH",
    "MAX_REQUEST_BYTES",
    "RequestRefusedError",
    "SlackRequestGate",
    "build_http_app",
    "json_depth",
    "serve_http",
    "socket_mode_handler",
]
