"""A ticket modal submitted twice, each time to another replica: one ticket between them.

The replicas share a private `redis-server` (`CRMOPS_REDIS_URL`), as replicas behind a load
balancer do; nothing else of theirs is shared but the audit log's database.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from bots.app import build_app
from bots.fake_slack import FakeSlack
from bots.serving import EVENTS_PATH, build_http_app
from bots.settings import AccessSettings, SlackSettings
from tests.bots.conftest import CHANNEL, TEAM, WRITER, SlackEndpoint, _serve_in_loop
from tests.bots.waiting import wait_until
from tests.sandbox_fixtures import Sandbox
from tests.storage.redis_server import redis_server, redis_url
from tools.services import Services
from tools.settings import CrmopsSettings, Settings
from tools.storage.store import Store
from tools.transport import RetryPolicy

__all__ = ["redis_server", "redis_url"]

MESSAGE_TS = "1764640000.000300"


@pytest.fixture
async def replicas(
    *,
    settings: Settings,
    redis_url: str,
    no_wait_retry: RetryPolicy,
    store: Store,
    slack_settings: SlackSettings,
    access: AccessSettings,
    fake_slack: FakeSlack,
    sandbox: Sandbox,
    tmp_path: Path,
) -> AsyncIterator[list[SlackEndpoint]]:
    """Two bots, each with its own clients and memory, sharing one Redis."""
    shared = settings.model_copy(
        update={"crmops": CrmopsSettings(redis_url=SecretStr(redis_url), db=tmp_path / "db")}
    )
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
        endpoints = []
        for _ in range(2):
            services = await stack.enter_async_context(
                Services(shared, retry=no_wait_retry, store=store)
            )
            bolt_app = build_app(slack_settings, services, access=access)
            server, task, url = await _serve_in_loop(
                build_http_app(bolt_app, settings=slack_settings)
            )
            stack.push_async_callback(_stop, server, task)
            endpoints.append(SlackEndpoint(url=url + EVENTS_PATH, fake=fake_slack, http=http))
        yield endpoints


async def _stop(server: Any, task: asyncio.Task[None]) -> None:
    server.should_exit = True
    await asyncio.wait_for(task, 10)


async def test_a_double_submit_to_two_replicas_creates_one_ticket(
    replicas: list[SlackEndpoint], fake_slack: FakeSlack, sandbox: Sandbox
) -> None:
    first, second = replicas
    await first.interaction(
        {
            "type": "message_action",
            "callback_id": "create_ticket",
            "team": {"id": TEAM, "domain": "crmops-sandbox"},
            "user": {"id": WRITER, "team_id": TEAM},
            "channel": {"id": CHANNEL},
            "message": {"ts": MESSAGE_TS, "text": "退款\n客户要求退款"},
            "response_url": fake_slack.hook_url("shortcut"),
        }
    )
    await wait_until(lambda: bool(fake_slack.views))
    ((view_id, view),) = fake_slack.views.items()
    values = {
        block["block_id"]: {"value": {"type": "plain_text_input", "value": initial}}
        for block in view["blocks"]
        if block["type"] == "input" and (initial := block["element"].get("initial_value"))
    }
    submission = {
        "type": "view_submission",
        "user": {"id": WRITER, "team_id": TEAM},
        "view": {
            "id": view_id,
            "type": "modal",
            "callback_id": view["callback_id"],
            "private_metadata": view["private_metadata"],
            "state": {"values": values},
        },
    }
    answers = await asyncio.gather(first.interaction(submission), second.interaction(submission))
    assert [json.loads(each.text)["response_action"] for each in answers] == ["update"] * 2
    await wait_until(lambda: bool(fake_slack.calls_to("chat.postMessage")), within=10)
    await asyncio.sleep(0.3)  # time for a second create, were one on its way

    assert len(sandbox.bangwo8.create_request_ids) == 1
    assert len(sandbox.bangwo8.tickets) == 1
    assert len(fake_slack.calls_to("chat.postMessage")) == 1
