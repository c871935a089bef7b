"""The Slack app served over real HTTP on loopback, with a fake Slack and the simulators."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
from pydantic import SecretStr
from starlette.types import ASGIApp

from bots.app import build_app
from bots.fake_slack import FakeSlack
from bots.serving import EVENTS_PATH, build_http_app
from bots.settings import AccessSettings, SlackSettings
from tests.sandbox_fixtures import Sandbox, sandbox, settings
from tools.sandbox.simulation import serve
from tools.services import Services
from tools.settings import Settings
from tools.storage.audit import AuditEntry
from tools.storage.store import Store, sqlite_store
from tools.transport import RetryPolicy

__all__ = ["sandbox", "settings"]

BOT_TOKEN = "xoxb-sandbox-CANARY-4b1d2f7c9e"
APP_TOKEN = "xapp-1-sandbox-CANARY-8c3e5a"
SIGNING_SECRET = "sandbox-signing-CANARY-5e0f2a"
SLACK_SECRETS = (BOT_TOKEN, APP_TOKEN, SIGNING_SECRET)
WRITER = "U0WRITER"
READER = "U0READER"
CHANNEL = "C0SALES"
TEAM = "T0CRMOPS"


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    fake = FakeSlack(bot_token=BOT_TOKEN, app_token=APP_TOKEN, team_id=TEAM)
    with serve(fake.app) as served:
        fake.url = served.url
        yield fake


@pytest.fixture
def slack_settings(fake_slack: FakeSlack) -> SlackSettings:
    return SlackSettings(
        bot_token=SecretStr(BOT_TOKEN),
        signing_secret=SecretStr(SIGNING_SECRET),
        app_token=SecretStr(APP_TOKEN),
        api_url=fake_slack.api_url,
    )


@pytest.fixture
def access() -> AccessSettings:
    return AccessSettings(write_users=frozenset({WRITER}))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """The journal and audit log, in a SQLite file of this test."""
    async with sqlite_store(tmp_path / "crmops.db") as store:
        yield store


async def audit_entries(store: Store) -> list[AuditEntry]:
    """The audit log, oldest first."""
    return list(reversed(await store.audit.recent()))


def sign(
    body: str, *, secret: str = SIGNING_SECRET, timestamp: int | None = None
) -> dict[str, str]:
    """The headers Slack sends: `X-Slack-Signature` = v0=HMAC-SHA256(`v0:{ts}:{body}`)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


@dataclass
class SlackEndpoint:
    """`POST /slack/events` of a running bot, and the fake Slack behind it."""

    url: str
    fake: FakeSlack
    http: httpx.AsyncClient
    _triggers: int = 0
    hooks: list[str] = field(default_factory=list)

    def _trigger(self) -> str:
        self._triggers += 1
        return f"trigger-{self._triggers}-{time.monotonic_ns()}"

    async def post(self, body: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.http.post(self.url, content=body, headers=headers or sign(body))

    async def command(
        self, text: str, *, user: str = WRITER, channel: str = CHANNEL, hook: str = "cmd"
    ) -> httpx.Response:
        body = urlencode(
            {
                "token": "deprecated-verification-token",
                "team_id": TEAM,
                "team_domain": "crmops-sandbox",
                "channel_id": channel,
                "channel_name": "sales",
                "user_id": user,
                "user_name": user.lower(),
                "command": "/crm",
                "text": text,
                "api_app_id": "A0CRMOPS",
                "response_url": self.fake.hook_url(hook),
                "trigger_id": self._trigger(),
            }
        )
        return await self.post(body)

    async def interaction(self, payload: dict[str, Any]) -> httpx.Response:
        base = {
            "team": {"id": TEAM, "domain": "crmops-sandbox"},
            "api_app_id": "A0CRMOPS",
            "token": "deprecated-verification-token",
            "trigger_id": self._trigger(),
        }
        return await self.post(urlencode({"payload": json.dumps({**base, **payload})}))

    async def press(
        self, action_id: str, value: str, *, user: str = WRITER, hook: str = "action"
    ) -> httpx.Response:
        return await self.interaction(
            {
                "type": "block_actions",
                "user": {"id": user, "username": user.lower(), "team_id": TEAM},
                "channel": {"id": CHANNEL, "name": "sales"},
                "container": {"type": "message", "is_ephemeral": True},
                "response_url": self.fake.hook_url(hook),
                "actions": [
                    {
                        "type": "button",
                        "action_id": action_id,
                        "block_id": "b1",
                        "value": value,
                        "action_ts": f"{time.time():.6f}",
                    }
                ],
            }
        )


async def _serve_in_loop(app: ASGIApp) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # Nagle off
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the Slack endpoint did not start"
        assert not task.done(), "the Slack endpoint stopped"
        await asyncio.sleep(0.01)
    return server, task, f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
async def services(
    settings: Settings, no_wait_retry: RetryPolicy, store: Store
) -> AsyncIterator[Services]:
    """The clients of the simulators, journaling and auditing into `store`."""
    async with Services(settings, retry=no_wait_retry, store=store) as services:
        yield services


@pytest.fixture
async def endpoint(
    *,
    services: Services,
    slack_settings: SlackSettings,
    access: AccessSettings,
    fake_slack: FakeSlack,
    sandbox: Sandbox,
    tmp_path: Path,
) -> AsyncIterator[SlackEndpoint]:
    """The bot served over HTTP in this test's event loop (so it shares `services`)."""
    bolt_app = build_app(
        slack_settings,
        services,
        access=access,
        workdir=tmp_path / "slack-files",
        progress_interval=0,
    )
    http_app = build_http_app(bolt_app, settings=slack_settings)
    server, task, url = await _serve_in_loop(http_app)
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            yield SlackEndpoint(url=url + EVENTS_PATH, fake=fake_slack, http=http)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
