"""Hostile requests to `/slack/events`, over real HTTP to the bot served on loopback.

Anyone who can reach the endpoint can send these; each must be refused cheaply — the size
limit before reading, the signature before parsing — without a 500, without the body in a
log, and without making `/healthz` wait. The bot is served in a thread of this process, so
its memory is this process's: the peak (VmHWM, reset through /proc/self/clear_refs) shows
what one request cost it.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import hmac
import json
import re
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from pydantic import SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bots.app import build_app
from bots.serving import EVENTS_PATH, MAX_JSON_DEPTH, MAX_REQUEST_BYTES, build_http_app
from bots.settings import SlackSettings
from tests.sandbox_fixtures import unconfigured_settings
from tools.sandbox.simulation import serve
from tools.services import Services

SIGNING_SECRET = "hostile-signing-CANARY-7d41"
MiB = 1024 * 1024
CHUNK = 64 * 1024
HOSTILE = b"HOSTILE%41"
"""The attack's filler: findable in a log, and slow to unquote for a parser that tries."""
RSS_GROWTH_ALLOWED = 8 * MiB
REFUSED = "refused a Slack request"


@dataclass
class _Counting:
    """An ASGI pass-through that counts the body bytes the app took from the server."""

    app: ASGIApp
    received: int = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counted() -> Message:
            message = await receive()
            self.received += len(message.get("body", b""))
            return message

        await self.app(scope, counted, send)


@dataclass
class Bot:
    url: str
    counter: _Counting
    http: httpx.AsyncClient
    logs: pytest.LogCaptureFixture

    @property
    def events(self) -> str:
        return self.url + EVENTS_PATH

    async def refused(self, content: AsyncIterator[bytes], headers: dict[str, str]) -> int:
        """POST a body the bot refuses while it is still being sent; the status it answered.

        The bot closes on a client still sending, and the reset can beat its answer to the
        client: then the status is read back from the bot's log record of the refusal.
        """
        try:
            response = await self.http.post(self.events, content=content, headers=headers)
        except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError):
            response = None
        logged = [r.getMessage() for r in self.logs.records if r.name == "crmops.slack"]
        refusals = [int(line.split()[4]) for line in logged if line.startswith(REFUSED)]
        if response is not None:
            return response.status_code
        assert len(refusals) == 1, logged
        return refusals[0]


@pytest.fixture(scope="module")
def _served() -> Iterator[tuple[str, _Counting]]:
    """The Slack bot over HTTP in a thread of its own (its event loop is not the tests'),
    started once for the module: every request here is refused before it reaches a tool."""
    slack = SlackSettings(
        bot_token=SecretStr("xoxb-CANARY-1"), signing_secret=SecretStr(SIGNING_SECRET)
    )
    services = Services(unconfigured_settings())
    counter = _Counting(build_http_app(build_app(slack, services), settings=slack))
    with serve(counter) as served:
        yield served.url, counter


@pytest.fixture
async def bot(
    _served: tuple[str, _Counting], caplog: pytest.LogCaptureFixture
) -> AsyncIterator[Bot]:
    url, counter = _served
    counter.received = 0
    async with httpx.AsyncClient(timeout=20) as http:
        yield Bot(url=url, counter=counter, http=http, logs=caplog)


def _signature(raw: Iterable[bytes], timestamp: str) -> str:
    mac = hmac.new(SIGNING_SECRET.encode(), f"v0:{timestamp}:".encode(), hashlib.sha256)
    for chunk in raw:
        mac.update(chunk)
    return f"v0={mac.hexdigest()}"


def _signed(raw: bytes, content_type: str = "application/json") -> dict[str, str]:
    ts = str(int(time.time()))
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": _signature([raw], ts),
        "Content-Type": content_type,
    }


def _filler(total: int) -> Iterator[bytes]:
    """`total` bytes of `HOSTILE`, in pieces of `CHUNK`: one piece in memory at a time."""
    piece = (HOSTILE * (CHUNK // len(HOSTILE) + 1))[:CHUNK]
    for start in range(0, total, CHUNK):
        yield piece[: total - start]


async def _stream(
    chunks: Iterable[bytes], sent: list[int], pause: float = 0
) -> AsyncIterator[bytes]:
    for chunk in chunks:
        sent[0] += len(chunk)
        yield chunk
        if pause:
            await asyncio.sleep(pause)


def _memory(field: str) -> int:
    """A memory figure of this process from /proc/self/status, in bytes."""
    found = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    assert found, field
    return int(found[1]) * 1024


def _reset_peak() -> int:
    """Reset this process's peak RSS to its current RSS (Linux clear_refs 5); that RSS."""
    Path("/proc/self/clear_refs").write_text("5")
    return _memory("VmRSS")


def _peak_growth(since: int) -> int:
    return _memory("VmHWM") - since


def _unsigned(kind: str) -> dict[str, str]:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if kind == "forged signature":
        headers["X-Slack-Request-Timestamp"] = str(int(time.time()))
        headers["X-Slack-Signature"] = "v0=" + "0" * 64
    return headers


@pytest.mark.parametrize("declared", [False, True], ids=["chunked", "content-length"])
@pytest.mark.parametrize("kind", ["no signature", "forged signature"])
async def test_an_unsigned_64_mib_post_is_refused_having_read_at_most_the_limit(
    bot: Bot, kind: str, declared: bool, caplog: pytest.LogCaptureFixture
) -> None:
    size = 64 * MiB
    sent = [0]
    headers = _unsigned(kind) | ({"Content-Length": str(size)} if declared else {})
    before = _reset_peak()
    status = await bot.refused(_stream(_filler(size), sent), headers)
    growth = _peak_growth(before)

    assert bot.counter.received <= MAX_REQUEST_BYTES + MiB
    assert growth < RSS_GROWTH_ALLOWED, f"the bot's peak RSS grew {growth / MiB:.0f} MiB"
    assert "HOSTILE" not in caplog.text
    assert status in {401, 413}
    assert sent[0] < size


async def test_a_signed_40_mb_json_is_refused_by_size_before_parsing(bot: Bot) -> None:
    head, tail = b'{"type": "event_callback", "event": {"text": "', b'"}}'
    parts = [head, *_filler(40 * MiB), tail]  # one 64 KiB piece, many times over
    ts = str(int(time.time()))
    headers = {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": _signature(parts, ts),
        "Content-Type": "application/json",
    }
    status = await bot.refused(_stream(parts, [0]), headers)
    assert bot.counter.received <= MAX_REQUEST_BYTES + MiB
    assert status == 413


def _deep(levels: int) -> str:
    return '{"type": "event_callback", "event": ' + '{"a": [' * levels + "]}" * levels + "}"


@pytest.mark.parametrize("form", [False, True], ids=["events api json", "interaction payload"])
async def test_deeply_nested_signed_json_is_a_400(bot: Bot, form: bool) -> None:
    text = _deep(500)  # 1,000 levels: an object and a list each time
    raw = f"payload={quote(text)}".encode() if form else text.encode()
    kind = "application/x-www-form-urlencoded" if form else "application/json"
    assert len(raw) < MAX_REQUEST_BYTES
    response = await bot.http.post(bot.events, content=raw, headers=_signed(raw, kind))
    assert response.status_code == 400
    assert f"over {MAX_JSON_DEPTH}" in response.text


@pytest.mark.parametrize("timestamp", ["abc", "１７００００００００", "-5", "1.5", "", "9" * 40])
async def test_a_timestamp_that_is_not_a_number_is_a_401(bot: Bot, timestamp: str) -> None:
    raw = b"command=%2Fcrm&text=help"
    headers = {
        b"X-Slack-Request-Timestamp": timestamp.encode(),  # bytes: full-width digits too
        b"X-Slack-Signature": _signature([raw], timestamp).encode(),
        b"Content-Type": b"application/x-www-form-urlencoded",
    }
    response = await bot.http.post(bot.events, content=raw, headers=headers)
    assert response.status_code == 401


async def test_a_gzip_body_is_refused_as_an_encoding_slack_never_sends(bot: Bot) -> None:
    raw = gzip.compress(json.dumps({"type": "url_verification", "challenge": "x"}).encode())
    encoded = await bot.http.post(
        bot.events, content=raw, headers={**_signed(raw), "Content-Encoding": "gzip"}
    )
    assert encoded.status_code == 415
    unannounced = await bot.http.post(bot.events, content=raw, headers=_signed(raw))
    assert unannounced.status_code == 400
    assert "not UTF-8" in unannounced.text


async def test_a_body_that_is_not_utf8_is_a_400(bot: Bot) -> None:
    raw = b"command=%2Fcrm&text=\xff\xfe\xc3"
    response = await bot.http.post(
        bot.events, content=raw, headers=_signed(raw, "application/x-www-form-urlencoded")
    )
    assert response.status_code == 400


async def test_a_signed_request_within_the_limits_still_reaches_the_bot(bot: Bot) -> None:
    raw = json.dumps({"type": "url_verification", "challenge": "still-here"}).encode()
    response = await bot.http.post(bot.events, content=raw, headers=_signed(raw))
    assert response.status_code == 200
    assert "still-here" in response.text


async def test_healthz_answers_while_a_slow_64_mib_upload_is_refused(bot: Bot) -> None:
    sent = [0]
    started = time.monotonic()
    slow = _stream(_filler(64 * MiB), sent, pause=0.002)
    upload = asyncio.create_task(bot.refused(slow, _unsigned("forged signature")))
    latencies: list[float] = []
    async with httpx.AsyncClient(timeout=20) as probe:
        while not upload.done() or not latencies:
            asked = time.monotonic()
            health = await probe.get(bot.url + "/healthz")
            latencies.append(time.monotonic() - asked)
            assert health.status_code == 200
            await asyncio.sleep(0.02)
    status = await upload
    assert max(latencies) < 1.0, f"/healthz took {max(latencies):.2f} s"
    assert status == 413
    assert time.monotonic() - started < 10
    assert sent[0] < 64 * MiB
