"""`/crm` over real HTTP: signed requests in, answers and Web API calls out."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

import pytest

from bots.commands import SUBCOMMANDS, TOOL_SUBCOMMANDS, ToolSubcommand, no_words
from tests.bots.conftest import (
    CHANNEL,
    READER,
    SIGNING_SECRET,
    SLACK_SECRETS,
    WRITER,
    SlackEndpoint,
    audit_entries,
    sign,
)
from tests.bots.waiting import wait_until
from tests.sandbox_fixtures import SECRETS, Sandbox
from tools.storage.store import Store
from tools.table import LIST_TICKETS
from tools.tickets import list_tickets


def _text(message: dict[str, Any]) -> str:
    """Everything a person reads in a message: its text and every block's text."""
    parts = [str(message.get("text", ""))]
    for block in message.get("blocks", []):
        if "text" in block:
            parts.append(block["text"]["text"])
        for element in block.get("elements", []):
            text = element.get("text")
            parts.append(text["text"] if isinstance(text, dict) else str(text or ""))
    return "\n".join(parts)


def _no_secret_in(*texts: str) -> None:
    for text in texts:
        for secret in (*SECRETS, *SLACK_SECRETS):
            assert secret not in text


# --- signature ----------------------------------------------------------------------------


async def test_a_bad_signature_is_refused(endpoint: SlackEndpoint) -> None:
    body = urlencode({"command": "/crm", "text": "help", "user_id": WRITER})
    forged = sign(body, secret="not-the-secret")
    response = await endpoint.post(body, forged)
    assert response.status_code == 401


async def test_a_stale_timestamp_is_refused(endpoint: SlackEndpoint) -> None:
    body = urlencode({"command": "/crm", "text": "help", "user_id": WRITER})
    stale = sign(body, timestamp=int(time.time()) - 301)
    response = await endpoint.post(body, stale)
    assert response.status_code == 401


async def test_a_changed_body_is_refused(endpoint: SlackEndpoint) -> None:
    body = urlencode({"command": "/crm", "text": "help", "user_id": WRITER})
    headers = sign(body)
    response = await endpoint.post(body.replace("help", "staff"), headers)
    assert response.status_code == 401
    assert SIGNING_SECRET not in response.text


# --- fast answers in the ack ---------------------------------------------------------------


async def test_help_lists_every_subcommand_in_the_ack(endpoint: SlackEndpoint) -> None:
    response = await endpoint.command("help")
    assert response.status_code == 200
    text = _text(response.json())
    for name in ("error", "staff", "customer", "tickets", "ticket", "import"):
        assert f"/crm {name}" in text


async def test_error_is_answered_in_the_ack(endpoint: SlackEndpoint) -> None:
    response = await endpoint.command("error 502 socialepoch")
    text = _text(response.json())
    assert "socialepoch 502" in text
    assert "Meaning:" in text
    assert endpoint.fake.hook_posts["cmd"] == []


async def test_a_malformed_command_shows_its_usage(endpoint: SlackEndpoint) -> None:
    response = await endpoint.command('ticket "only a subject"')
    text = _text(response.json())
    assert "Usage:" in text
    assert "/crm ticket" in text


# --- reads answered through response_url ---------------------------------------------------


async def test_staff_is_listed_after_the_ack(endpoint: SlackEndpoint, sandbox: Sandbox) -> None:
    sandbox.xiaolanben.add_staff("王小明", "13912340001", "销售一部")
    sandbox.xiaolanben.add_staff("李雷", "13912340002", "销售二部")
    response = await endpoint.command("staff 王", user=READER)
    assert response.status_code == 200
    await wait_until(lambda: bool(endpoint.fake.hook_posts["cmd"]))
    text = _text(endpoint.fake.hook_posts["cmd"][0])
    assert "王小明" in text
    assert "李雷" not in text


async def test_the_ack_does_not_wait_for_the_vendor(
    endpoint: SlackEndpoint, sandbox: Sandbox
) -> None:
    sandbox.xiaolanben.add_staff("王小明", "13912340001", "销售一部")
    sandbox.xiaolanben.faults.latency = 1.5
    started = time.monotonic()
    response = await endpoint.command("staff")
    acked_after = time.monotonic() - started
    assert response.status_code == 200
    assert acked_after < 1.0
    assert endpoint.fake.hook_posts["cmd"] == []
    await wait_until(lambda: bool(endpoint.fake.hook_posts["cmd"]), within=10)
    assert "王小明" in _text(endpoint.fake.hook_posts["cmd"][0])


async def test_customer_is_shown_by_whatsapp_number(
    endpoint: SlackEndpoint, sandbox: Sandbox
) -> None:
    sandbox.socialepoch.seed()
    number, record = next(iter(sandbox.socialepoch.customers.items()))
    await endpoint.command(f"customer +{number}")
    await wait_until(lambda: bool(endpoint.fake.hook_posts["cmd"]))
    text = _text(endpoint.fake.hook_posts["cmd"][0])
    assert number in text
    assert str(record.get("friendName")) in text


async def test_tickets_lists_the_newest_bangwo8_tickets(
    endpoint: SlackEndpoint, sandbox: Sandbox
) -> None:
    sandbox.bangwo8.seed()
    ids = {stored["subject"]: ticket_id for ticket_id, stored in sandbox.bangwo8.tickets.items()}
    response = await endpoint.command("tickets", user=READER)
    assert response.status_code == 200
    await wait_until(lambda: bool(endpoint.fake.hook_posts["cmd"]))
    text = _text(endpoint.fake.hook_posts["cmd"][0])
    assert "The 10 newest of 12 Bangwo8 tickets" in text
    newest, second = f"`#{ids['合同续签咨询']}` *合同续签咨询*", f"#{ids['微信渠道消息延迟']}"
    assert f"{newest}  status 1 · created 20" in text
    assert text.index(newest) < text.index(second)
    # The two oldest of the twelve are past the first ten.
    assert "产品咨询" not in text
    assert "发票开具申请" not in text


async def test_a_read_row_without_a_renderer_is_shown_by_the_generic_one(
    endpoint: SlackEndpoint, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    row = ToolSubcommand(
        "alltickets",
        "/crm alltickets",
        "up to 100 Bangwo8 tickets",
        "/crm alltickets",
        tool=LIST_TICKETS,
        run=list_tickets,
        doing="list every ticket",
        arguments=no_words(limit=100),
    )
    monkeypatch.setitem(SUBCOMMANDS, row.name, row)
    monkeypatch.setitem(TOOL_SUBCOMMANDS, row.name, row)
    for _ in range(3):
        sandbox.bangwo8.seed()
    assert "/crm alltickets" in _text((await endpoint.command("help", hook="help")).json())
    await endpoint.command("alltickets", user=READER)
    await wait_until(lambda: bool(endpoint.fake.hook_posts["cmd"]))
    answer = endpoint.fake.hook_posts["cmd"][0]
    assert answer["text"] == "List Bangwo8 tickets: count 36, page 1, more available no"
    text = _text(answer)
    assert "*List Bangwo8 tickets*\n*count:* 36\n*page:* 1\n*more available:* no" in text
    first = min(sandbox.bangwo8.tickets)
    assert f"*tickets* (36)\nid {first} · subject 产品咨询 · description 你好" in text
    assert text.endswith("… and 16 more")
    assert len(answer["blocks"]) <= 50
    assert all(len(block["text"]["text"]) <= 3000 for block in answer["blocks"])


async def test_a_vendor_error_is_shown_with_its_meaning(
    endpoint: SlackEndpoint, sandbox: Sandbox
) -> None:
    sandbox.xiaolanben.faults.fail_next = 10
    sandbox.xiaolanben.faults.fail_status = 500
    await endpoint.command("staff")
    await wait_until(lambda: bool(endpoint.fake.hook_posts["cmd"]), within=10)
    text = _text(endpoint.fake.hook_posts["cmd"][0])
    assert "Could not list the staff" in text
    assert "xiaolanben" in text
    assert "Meaning:" in text
    _no_secret_in(text)


async def test_bad_input_is_explained(endpoint: SlackEndpoint) -> None:
    await endpoint.command("customer 12")
    await wait_until(lambda: bool(endpoint.fake.hook_posts["cmd"]))
    text = _text(endpoint.fake.hook_posts["cmd"][0])
    assert "invalid WhatsApp number" in text


# --- ticket: confirm, single use, owner only, audited ------------------------------------


def _confirmation_id(message: dict[str, Any]) -> str:
    actions = next(block for block in message["blocks"] if block["type"] == "actions")
    return str(actions["elements"][0]["value"])


async def test_a_ticket_is_created_after_confirming(
    endpoint: SlackEndpoint, sandbox: Sandbox, store: Store
) -> None:
    response = await endpoint.command('ticket "无法登录" "客户说登录页报错 502" --priority 2')
    ask = response.json()
    assert "Create this Bangwo8 ticket?" in _text(ask)
    assert sandbox.bangwo8.tickets == {}

    pressed = await endpoint.press("crm_confirm", _confirmation_id(ask))
    assert pressed.status_code == 200
    posts = endpoint.fake.hook_posts.setdefault("action", [])
    await wait_until(lambda: len(posts) >= 3)
    ((ticket_id, stored),) = sandbox.bangwo8.tickets.items()
    assert (stored["subject"], stored["priorityLevel"]) == ("无法登录", 2)
    in_channel = [post for post in posts if post.get("response_type") == "in_channel"]
    assert len(in_channel) == 1
    assert f"#{ticket_id}" in _text(in_channel[0])
    (entry,) = await audit_entries(store)
    assert (entry.actor.surface, entry.actor.name) == ("slack", f"T0CRMOPS/{CHANNEL}/{WRITER}")
    assert (entry.vendor, entry.operation, entry.outcome) == ("bangwo8", "create_ticket", "ok")
    assert entry.target == f"ticket {ticket_id}"
    assert (entry.sent["subject"], entry.sent["priorityLevel"]) == ("无法登录", 2)


async def test_a_confirmation_works_once(endpoint: SlackEndpoint, sandbox: Sandbox) -> None:
    ask = (await endpoint.command('ticket "退款" "请退款"')).json()
    confirmation = _confirmation_id(ask)
    await endpoint.press("crm_confirm", confirmation, hook="first")
    await endpoint.press("crm_confirm", confirmation, hook="second")
    await wait_until(lambda: bool(endpoint.fake.hook_posts["second"]))
    await wait_until(lambda: len(endpoint.fake.hook_posts["first"]) >= 3)
    assert len(sandbox.bangwo8.tickets) == 1
    assert "already confirmed" in _text(endpoint.fake.hook_posts["second"][0])


async def test_only_the_requester_may_confirm(endpoint: SlackEndpoint, sandbox: Sandbox) -> None:
    ask = (await endpoint.command('ticket "退款" "请退款"')).json()
    confirmation = _confirmation_id(ask)
    await endpoint.press("crm_confirm", confirmation, user="U0INTRUDER", hook="intruder")
    await wait_until(lambda: bool(endpoint.fake.hook_posts["intruder"]))
    assert f"Only <@{WRITER}>" in _text(endpoint.fake.hook_posts["intruder"][0])
    assert sandbox.bangwo8.tickets == {}
    await endpoint.press("crm_confirm", confirmation, hook="owner")
    await wait_until(lambda: len(endpoint.fake.hook_posts["owner"]) >= 3)
    assert len(sandbox.bangwo8.tickets) == 1


async def test_cancel_creates_nothing(
    endpoint: SlackEndpoint, sandbox: Sandbox, store: Store
) -> None:
    ask = (await endpoint.command('ticket "退款" "请退款"')).json()
    await endpoint.press("crm_cancel", _confirmation_id(ask))
    await wait_until(lambda: bool(endpoint.fake.hook_posts.get("action")))
    assert "Cancelled" in _text(endpoint.fake.hook_posts["action"][0])
    assert sandbox.bangwo8.tickets == {}
    assert await audit_entries(store) == []


async def test_a_ticket_bangwo8_would_refuse_is_refused_before_confirming(
    endpoint: SlackEndpoint,
) -> None:
    ask = (await endpoint.command('ticket "   " "内容"')).json()
    assert "subject" in _text(ask)
    assert not any(block["type"] == "actions" for block in ask["blocks"])


# --- access control, dedupe --------------------------------------------------------------


async def test_writes_are_refused_to_users_not_allowed(
    endpoint: SlackEndpoint, sandbox: Sandbox, store: Store
) -> None:
    response = await endpoint.command('ticket "退款" "请退款"', user=READER)
    text = _text(response.json())
    assert "not allowed to run `/crm ticket`" in text
    (entry,) = await audit_entries(store)
    assert entry.actor.name.endswith(READER)
    assert (entry.operation, entry.outcome) == ("create_ticket", "failed")
    assert "not allowed" in (entry.error or "")
    assert sandbox.bangwo8.counters["requests"] == 0


async def test_a_repeated_delivery_is_handled_once(
    endpoint: SlackEndpoint, sandbox: Sandbox
) -> None:
    body = urlencode(
        {
            "command": "/crm",
            "text": "staff",
            "team_id": "T0CRMOPS",
            "user_id": WRITER,
            "channel_id": CHANNEL,
            "response_url": endpoint.fake.hook_url("dup"),
            "trigger_id": "trigger-repeated",
        }
    )
    first = await endpoint.post(body)
    again = await endpoint.post(body)
    assert (first.status_code, again.status_code) == (200, 200)
    await wait_until(lambda: bool(endpoint.fake.hook_posts["dup"]))
    assert sandbox.xiaolanben.counters["requests"] == 1


async def test_a_stored_name_cannot_ping_the_channel(
    endpoint: SlackEndpoint, sandbox: Sandbox
) -> None:
    """Slack reads `<!channel>` in a message's fallback text as well as in its blocks."""
    sandbox.socialepoch.seed()
    number, record = next(iter(sandbox.socialepoch.customers.items()))
    record["friendName"] = "<!channel> 客户"
    await endpoint.command(f"customer +{number}")
    await wait_until(lambda: bool(endpoint.fake.hook_posts["cmd"]))
    posted = endpoint.fake.hook_posts["cmd"][0]
    assert "&lt;!channel&gt; 客户" in posted["text"]
    assert "<!channel>" not in json.dumps(posted, ensure_ascii=False)


async def test_an_unknown_subcommand_is_not_echoed_as_markup(endpoint: SlackEndpoint) -> None:
    response = await endpoint.command("<!channel> hello")
    assert response.status_code == 200
    assert "Unknown subcommand `&lt;!channel&gt;`" in response.json()["text"]
    assert "<!channel>" not in response.text
