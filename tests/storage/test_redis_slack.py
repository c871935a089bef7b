"""Two Slack bot replicas sharing one Redis: a confirmation asked for on one is taken on the
other, once; a delivery Slack repeats is handled once, whichever replica it reaches. Real
signed requests over HTTP, a fake Slack and the simulators, as tests/bots/ does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from pydantic import SecretStr

from bots.app import build_app
from bots.confirmations import (
    Confirmation,
    ConfirmationRefusedError,
    RedisConfirmationStore,
)
from bots.dedupe import RedisDeliveries
from bots.fake_slack import FakeSlack
from bots.serving import EVENTS_PATH, build_http_app
from bots.settings import AccessSettings, SlackSettings
from tests.bots.conftest import (
    CHANNEL,
    WRITER,
    SlackEndpoint,
    _serve_in_loop,
    access,
    fake_slack,
    slack_settings,
)
from tests.bots.waiting import wait_until
from tests.sandbox_fixtures import Sandbox, sandbox
from tools.services import Services
from tools.settings import CrmopsSettings, Settings
from tools.storage.redis import RedisBackend
from tools.transport import RetryPolicy

__all__ = ["access", "fake_slack", "sandbox", "slack_settings"]


@pytest.fixture
def settings(sandbox: Sandbox, redis_url: str) -> Settings:
    return sandbox.settings(CrmopsSettings(redis_url=SecretStr(redis_url)))


@pytest.fixture
async def replicas(
    settings: Settings,
    slack_settings: SlackSettings,
    access: AccessSettings,
    fake_slack: FakeSlack,
    no_wait_retry: RetryPolicy,
) -> AsyncIterator[tuple[SlackEndpoint, SlackEndpoint]]:
    """Two bots, each with its own `Services` (own Redis connections), served over HTTP."""
    endpoints: list[SlackEndpoint] = []
    running = []
    async with httpx.AsyncClient(timeout=10) as http:
        try:
            for _ in range(2):
                services = Services(settings, retry=no_wait_retry)
                bolt_app = build_app(slack_settings, services, access=access)
                http_app = build_http_app(bolt_app, settings=slack_settings)
                server, task, url = await _serve_in_loop(http_app)
                running.append((server, task, services))
                endpoints.append(SlackEndpoint(url=url + EVENTS_PATH, fake=fake_slack, http=http))
            yield endpoints[0], endpoints[1]
        finally:
            # Last started, first stopped: each uvicorn server restores the signal handlers
            # it found, and a stale one left installed would cut later tests' SSE streams.
            for server, task, services in reversed(running):
                server.should_exit = True
                await asyncio.wait_for(task, 10)
                await services.aclose()


def _confirmation_id(message: dict[str, Any]) -> str:
    actions = next(block for block in message["blocks"] if block["type"] == "actions")
    return str(actions["elements"][0]["value"])


def _text(post: dict[str, Any]) -> str:
    blocks = post.get("blocks", [])
    return str(post.get("text", "")) + " ".join(
        str(block.get("text", {}).get("text", "")) for block in blocks
    )


async def test_a_confirmation_asked_on_one_replica_is_taken_on_the_other_once(
    replicas: tuple[SlackEndpoint, SlackEndpoint], sandbox: Sandbox
) -> None:
    first, second = replicas
    ask = (await first.command('ticket "无法登录" "客户说登录页报错 502"')).json()
    confirmation = _confirmation_id(ask)

    await second.press("crm_confirm", confirmation, hook="on-second")
    await wait_until(lambda: len(second.fake.hook_posts["on-second"]) >= 3, within=10)
    await first.press("crm_confirm", confirmation, hook="again-on-first")
    await wait_until(lambda: bool(first.fake.hook_posts["again-on-first"]))

    assert len(sandbox.bangwo8.tickets) == 1
    assert "already confirmed" in _text(first.fake.hook_posts["again-on-first"][0])


async def test_a_repeated_delivery_is_handled_once_across_replicas(
    replicas: tuple[SlackEndpoint, SlackEndpoint], sandbox: Sandbox
) -> None:
    body = urlencode(
        {
            "command": "/crm",
            "text": "staff",
            "team_id": "T0CRMOPS",
            "user_id": WRITER,
            "channel_id": CHANNEL,
            "response_url": replicas[0].fake.hook_url("dup"),
            "trigger_id": "trigger-repeated-across-replicas",
        }
    )
    answers = [await replica.post(body) for replica in replicas]  # Slack's retry: the other

    assert [answer.status_code for answer in answers] == [200, 200]
    await wait_until(lambda: bool(replicas[0].fake.hook_posts["dup"]))
    await asyncio.sleep(0.3)  # time for a second handling to show, were there one
    assert sandbox.xiaolanben.counters["requests"] == 1
    assert len(replicas[0].fake.hook_posts["dup"]) == 1


# --- the stores themselves --------------------------------------------------------------


@pytest.fixture
async def backends(redis_url: str) -> AsyncIterator[tuple[RedisBackend, RedisBackend]]:
    first, second = RedisBackend(SecretStr(redis_url)), RedisBackend(SecretStr(redis_url))
    async with first, second:
        yield first, second


def _pending(ttl: float = 300, *, user: str = WRITER) -> Confirmation:
    return Confirmation.new(
        command="ticket",
        user_id=user,
        team_id="T1",
        channel_id="C1",
        response_url="https://hooks.example/1",
        payload={"subject": "退款", "n": 1},
        ttl=ttl,
    )


async def test_concurrent_takes_on_two_replicas_let_exactly_one_win(
    backends: tuple[RedisBackend, RedisBackend],
) -> None:
    stores = [RedisConfirmationStore(backend) for backend in backends]
    pending = _pending()
    await stores[0].put(pending)

    async def take(store: RedisConfirmationStore) -> Confirmation | str:
        try:
            return await store.take(pending.id, user_id=WRITER)
        except ConfirmationRefusedError as exc:
            return exc.reason

    outcomes = await asyncio.gather(*(take(stores[n % 2]) for n in range(20)))

    won = [outcome for outcome in outcomes if isinstance(outcome, Confirmation)]
    assert won == [pending]
    assert sorted(set(map(str, outcomes)) - {str(pending)}) == ["used"]


async def test_refusals_say_why(backends: tuple[RedisBackend, RedisBackend]) -> None:
    now = [1_000_000.0]
    store = RedisConfirmationStore(backends[0], clock=lambda: now[0])
    other = RedisConfirmationStore(backends[1], clock=lambda: now[0])
    mine = Confirmation.new(
        command="ticket",
        user_id=WRITER,
        team_id="T1",
        channel_id="C1",
        response_url="",
        payload={},
        ttl=300,
        clock=lambda: now[0],
    )
    await store.put(mine)

    with pytest.raises(ConfirmationRefusedError) as caught:
        await other.take(mine.id, user_id="U0OTHER")
    assert (caught.value.reason, str(caught.value)) == (
        "not_yours",
        f"Only <@{WRITER}> can confirm or cancel this.",
    )
    with pytest.raises(ConfirmationRefusedError) as caught:
        await other.take("no-such-id", user_id=WRITER)
    assert caught.value.reason == "unknown"

    now[0] += 301
    with pytest.raises(ConfirmationRefusedError) as caught:
        await other.take(mine.id, user_id=WRITER)
    assert caught.value.reason == "expired"


async def test_replace_changes_a_pending_confirmation_only(
    backends: tuple[RedisBackend, RedisBackend],
) -> None:
    store = RedisConfirmationStore(backends[0])
    pending = _pending()
    await store.put(pending)
    changed = pending.model_copy(update={"payload": {"subject": "改了"}})
    await store.replace(changed)
    assert (await store.take(pending.id, user_id=WRITER)).payload == {"subject": "改了"}
    await store.replace(changed)  # taken: replacing must not bring it back
    with pytest.raises(ConfirmationRefusedError) as caught:
        await store.take(pending.id, user_id=WRITER)
    assert caught.value.reason == "used"


async def test_a_delivery_id_is_first_once_across_replicas_and_expires(
    backends: tuple[RedisBackend, RedisBackend],
) -> None:
    first, second = (RedisDeliveries(backend, ttl=1) for backend in backends)
    answers = await asyncio.gather(*(d.first_time("event_id:Ev1") for d in [first, second] * 5))
    assert sorted(answers) == [False] * 9 + [True]
    began = time.monotonic()
    while not await second.first_time("event_id:Ev1"):
        assert time.monotonic() - began < 5, "the delivery id never expired"
        await asyncio.sleep(0.1)
