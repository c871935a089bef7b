"""`/crm tickets [since]` a page at a time with More, and `/crm audit` for admins only."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bots.browse import MORE_TICKETS_ACTION
from bots.settings import AccessSettings
from tests.bots.conftest import READER, WRITER, SlackEndpoint
from tests.bots.test_http import _confirmation_id, _text
from tests.bots.waiting import wait_until
from tests.sandbox_fixtures import Sandbox

ADMIN = "U0ADMIN"


@pytest.fixture
def access() -> AccessSettings:
    return AccessSettings(write_users=frozenset({WRITER, ADMIN}), admin_users=frozenset({ADMIN}))


def _more(message: dict[str, Any]) -> str | None:
    for block in message["blocks"]:
        for element in block.get("elements", []):
            if element.get("action_id") == MORE_TICKETS_ACTION:
                return str(element["value"])
    return None


async def _answer(endpoint: SlackEndpoint, text: str, hook: str, user: str = READER) -> Any:
    response = await endpoint.command(text, user=user, hook=hook)
    assert response.status_code == 200
    await wait_until(lambda: bool(endpoint.fake.hook_posts[hook]), within=10)
    return endpoint.fake.hook_posts[hook][0]


async def test_more_pages_through_the_newest_tickets(
    endpoint: SlackEndpoint, sandbox: Sandbox
) -> None:
    sandbox.bangwo8.seed()
    first = await _answer(endpoint, "tickets", "page1")
    text = _text(first)
    assert "The 10 newest of 12 Bangwo8 tickets" in text
    assert "page 1" in text
    assert "产品咨询" not in text
    more = _more(first)
    assert more is not None

    pressed = await endpoint.press(MORE_TICKETS_ACTION, more, user=READER, hook="page2")
    assert pressed.status_code == 200
    await wait_until(lambda: bool(endpoint.fake.hook_posts["page2"]), within=10)
    second = endpoint.fake.hook_posts["page2"][0]
    assert second["replace_original"] is True
    text = _text(second)
    assert "page 2" in text
    assert "产品咨询" in text
    assert "发票开具申请" in text
    assert "合同续签咨询" not in text
    assert _more(second) is None  # the last page


async def test_tickets_since_a_time_ago(endpoint: SlackEndpoint, sandbox: Sandbox) -> None:
    sandbox.bangwo8.seed()
    answer = await _answer(endpoint, "tickets 7d", "week")
    text = _text(answer)
    # Created 6, 5, 4, 3, 2, 1 and 0.2 days ago: seven, one page.
    assert "The 7 newest of 7 Bangwo8 tickets" in text
    assert "created since 20" in text
    assert "退款进度查询" not in text  # 8 days ago
    assert _more(answer) is None


async def test_tickets_since_pages_keep_the_start(
    endpoint: SlackEndpoint, sandbox: Sandbox
) -> None:
    for _ in range(2):
        sandbox.bangwo8.seed()
    answer = await _answer(endpoint, "tickets 7d", "since")
    more = _more(answer)
    assert more is not None
    assert json.loads(more)["page"] == 2
    await endpoint.press(MORE_TICKETS_ACTION, more, user=READER, hook="since2")
    await wait_until(lambda: bool(endpoint.fake.hook_posts["since2"]), within=10)
    text = _text(endpoint.fake.hook_posts["since2"][0])
    assert "of 14 Bangwo8 tickets" in text  # still only the last 7 days, twice over
    assert "page 2" in text


async def test_a_time_that_is_not_one_is_explained(endpoint: SlackEndpoint) -> None:
    response = await endpoint.command("tickets yesterday-ish", user=READER)
    text = _text(response.json())
    assert "`yesterday-ish` is not a time" in text
    assert "Usage: `/crm tickets" in text


async def test_a_forged_more_button_is_refused_plainly(
    endpoint: SlackEndpoint, sandbox: Sandbox
) -> None:
    await endpoint.press(MORE_TICKETS_ACTION, "{not json", user=READER, hook="forged")
    await wait_until(lambda: bool(endpoint.fake.hook_posts["forged"]), within=10)
    assert "not one of ours" in _text(endpoint.fake.hook_posts["forged"][0])
    assert sandbox.bangwo8.counters["requests"] == 0


# --- /crm audit ---------------------------------------------------------------------------


async def test_audit_is_for_admins_only(endpoint: SlackEndpoint) -> None:
    for user in (READER, WRITER):
        response = await endpoint.command("audit", user=user, hook=f"audit-{user}")
        assert "`/crm audit` is for admins" in _text(response.json())
        assert "CRMOPS_SLACK_ADMIN_USERS" in _text(response.json())
    assert endpoint.fake.hook_posts[f"audit-{READER}"] == []


async def test_an_admin_sees_the_latest_writes(endpoint: SlackEndpoint, sandbox: Sandbox) -> None:
    ask = (await endpoint.command('ticket "审计" "谁做了什么"', user=WRITER)).json()
    await endpoint.press("crm_confirm", _confirmation_id(ask), hook="made")
    await wait_until(lambda: len(sandbox.bangwo8.tickets) == 1, within=10)
    await wait_until(lambda: len(endpoint.fake.hook_posts["made"]) >= 3, within=10)
    await endpoint.command('ticket "不许" "没有权限"', user=READER, hook="refused")
    (ticket_id,) = sandbox.bangwo8.tickets

    answer = await _answer(endpoint, "audit", "audit", user=ADMIN)
    text = _text(answer)
    assert "The 2 latest writes" in text
    lines = text.splitlines()
    refused = next(line for line in lines if f"<@{READER}>" in line)
    made = next(line for line in lines if f"<@{WRITER}>" in line)
    assert "(slack) · create_ticket" in refused
    assert "*failed*: refused:" in refused
    assert f"create_ticket bangwo8 ticket {ticket_id} · *ok*" in made
    assert text.index(refused) < text.index(made)  # newest first
