"""Tickets from modals over real HTTP: the "Create ticket" message shortcut, "New ticket",
`/crm ticket` alone and "Import customers", each payload signed as Slack signs it, against
the fake Slack Web API and the Bangwo8 simulator."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bots.app import build_app
from bots.fake_slack import FakeSlack
from bots.serving import EVENTS_PATH, build_http_app
from bots.settings import AccessSettings, SlackSettings
from bots.ticket_modal import TicketSource, permalink, plain_text, read_submission, ticket_modal
from tests.bots.conftest import (
    CHANNEL,
    READER,
    TEAM,
    WRITER,
    SlackEndpoint,
    _serve_in_loop,
    audit_entries,
)
from tests.bots.test_http import _text
from tests.bots.waiting import wait_until
from tests.sandbox_fixtures import Sandbox
from tools.services import Services
from tools.storage.store import Store

MESSAGE_TS = "1764640000.000100"
CUSTOMER_MESSAGE = (
    "无法登录\n"
    "客户说登录页报错 502,截图见 <https://img.example.com/502.png|截图>。\n"
    "联系人 <@U0CUSTOMER> &amp; 同事"
)
PERMALINK = f"https://crmops-sandbox.slack.com/archives/{CHANNEL}/p1764640000000100"


def _user(user: str) -> dict[str, str]:
    return {"id": user, "username": user.lower(), "team_id": TEAM}


async def _message_shortcut(
    endpoint: SlackEndpoint, *, user: str = WRITER, text: str = CUSTOMER_MESSAGE
) -> dict[str, Any]:
    """Run "Create ticket" on a customer's message; the modal it opened (as the fake holds it)."""
    opened = len(endpoint.fake.calls_to("views.open"))
    response = await endpoint.interaction(
        {
            "type": "message_action",
            "callback_id": "create_ticket",
            "team": {"id": TEAM, "domain": "crmops-sandbox"},
            "user": _user(user),
            "channel": {"id": CHANNEL, "name": "sales"},
            "message_ts": MESSAGE_TS,
            "message": {"type": "message", "user": "U0CUSTOMER", "ts": MESSAGE_TS, "text": text},
            "response_url": endpoint.fake.hook_url("shortcut"),
        }
    )
    assert response.status_code == 200
    return await _opened_view(endpoint.fake, opened)


async def _global_shortcut(
    endpoint: SlackEndpoint, callback_id: str, *, user: str = WRITER
) -> dict[str, Any]:
    opened = len(endpoint.fake.calls_to("views.open"))
    response = await endpoint.interaction(
        {"type": "shortcut", "callback_id": callback_id, "user": _user(user)}
    )
    assert response.status_code == 200
    return await _opened_view(endpoint.fake, opened)


async def _opened_view(fake: FakeSlack, before: int) -> dict[str, Any]:
    """The modal of the views.open after the first `before`, as opened, with its id."""
    await wait_until(lambda: len(fake.views) > before)
    view = fake.calls_to("views.open")[before].data["view"]
    opened = json.loads(view) if isinstance(view, str) else dict(view)
    return {"id": list(fake.views)[before], **opened}


def _initial(view: dict[str, Any]) -> dict[str, str]:
    return {
        block["block_id"]: block["element"].get("initial_value", "")
        for block in view["blocks"]
        if block["type"] == "input"
    }


def _submission(view: dict[str, Any], *, user: str = WRITER, **changed: str) -> dict[str, Any]:
    """The `view_submission` Slack sends for `view` with its inputs as prefilled, but
    `changed` (block id → what the user typed)."""
    values = _initial(view) | changed
    return {
        "type": "view_submission",
        "user": _user(user),
        "view": {
            "id": view.get("id", "V0MODAL"),
            "type": "modal",
            "callback_id": view["callback_id"],
            "private_metadata": view["private_metadata"],
            "hash": "1764640000.abc",
            "state": {
                "values": {
                    block: {"value": {"type": "plain_text_input", "value": value or None}}
                    for block, value in values.items()
                }
            },
        },
    }


def _updates(fake: FakeSlack) -> list[str]:
    """The texts of every `views.update` the bot made, oldest first."""
    texts = []
    for call in fake.calls_to("views.update"):
        view = call.data["view"]
        view = json.loads(view) if isinstance(view, str) else view
        texts.append(
            "\n".join(block["text"]["text"] for block in view["blocks"] if "text" in block)
        )
    return texts


# --- the message shortcut ----------------------------------------------------------------


async def test_a_message_becomes_a_ticket_answered_in_its_thread(
    endpoint: SlackEndpoint, fake_slack: FakeSlack, sandbox: Sandbox, store: Store
) -> None:
    view = await _message_shortcut(endpoint)
    assert view["callback_id"] == "crm_ticket"
    initial = _initial(view)
    assert initial["subject"] == "无法登录"
    assert initial["message"] == (
        "无法登录\n客户说登录页报错 502,截图见 截图 (https://img.example.com/502.png)。\n"
        "联系人 @U0CUSTOMER & 同事"
    )
    assert initial["descript"] == f"From Slack: {PERMALINK}"
    assert PERMALINK in json.dumps(view["blocks"])
    assert sandbox.bangwo8.tickets == {}

    submitted = await endpoint.interaction(
        _submission(
            view,
            priorityLevel="2",
            ticketType="3",
            servicerUserId="30001",
            ccUserIdList="30002, 30003",
            custom_fields="订单号 = A-1001\n数量 = 3",
        )
    )
    assert submitted.json()["response_action"] == "update"
    await wait_until(lambda: bool(fake_slack.calls_to("chat.postMessage")))

    ((ticket_id, stored),) = sandbox.bangwo8.tickets.items()
    assert stored["subject"] == "无法登录"
    assert stored["ticketReply"]["replyMsg"] == initial["message"]
    assert stored["descript"] == f"From Slack: {PERMALINK}"
    assert (stored["priorityLevel"], stored["ticketType"]) == (2, 3)
    assert (stored["servicerUserId"], stored["ccUserIdList"]) == (30001, [30002, 30003])
    assert stored["custom_fields"] == [
        {"key": "订单号", "value": "A-1001"},
        {"key": "数量", "value": 3},
    ]
    (reply,) = fake_slack.calls_to("chat.postMessage")
    assert (reply.data["channel"], reply.data["thread_ts"]) == (CHANNEL, MESSAGE_TS)
    assert f"#{ticket_id}" in reply.data["text"]
    await wait_until(lambda: any(f"#{ticket_id}" in text for text in _updates(fake_slack)))

    (entry,) = await audit_entries(store)
    assert (entry.actor.surface, entry.actor.name) == ("slack", f"{TEAM}/{CHANNEL}/{WRITER}")
    assert (entry.operation, entry.outcome, entry.target) == (
        "create_ticket",
        "ok",
        f"ticket {ticket_id}",
    )


async def test_a_reply_in_a_thread_is_answered_in_that_thread(
    endpoint: SlackEndpoint, fake_slack: FakeSlack, sandbox: Sandbox
) -> None:
    parent = "1764630000.000200"
    response = await endpoint.interaction(
        {
            "type": "message_action",
            "callback_id": "create_ticket",
            "team": {"id": TEAM, "domain": "crmops-sandbox"},
            "user": _user(WRITER),
            "channel": {"id": CHANNEL, "name": "sales"},
            "message": {"ts": MESSAGE_TS, "thread_ts": parent, "text": "退款\n请退款"},
            "response_url": fake_slack.hook_url("shortcut"),
        }
    )
    assert response.status_code == 200
    view = await _opened_view(fake_slack, 0)
    assert _initial(view)["descript"].endswith(
        f"p1764640000000100?thread_ts={parent}&cid={CHANNEL}"
    )
    await endpoint.interaction(_submission(view))
    await wait_until(lambda: bool(fake_slack.calls_to("chat.postMessage")))
    assert fake_slack.calls_to("chat.postMessage")[0].data["thread_ts"] == parent
    assert len(sandbox.bangwo8.tickets) == 1


async def test_a_double_submit_creates_one_ticket(
    endpoint: SlackEndpoint, fake_slack: FakeSlack, sandbox: Sandbox, store: Store
) -> None:
    view = await _message_shortcut(endpoint)
    first, second = await asyncio.gather(
        endpoint.interaction(_submission(view)), endpoint.interaction(_submission(view))
    )
    assert (first.status_code, second.status_code) == (200, 200)
    await wait_until(lambda: bool(fake_slack.calls_to("chat.postMessage")))
    await asyncio.sleep(0.3)  # time for a second create, were one on its way

    assert len(sandbox.bangwo8.tickets) == 1
    assert len(sandbox.bangwo8.create_request_ids) == 1  # ours, not the vendor's, dedupe
    assert len(fake_slack.calls_to("chat.postMessage")) == 1
    assert len(await audit_entries(store)) == 1

    # The same modal submitted again later still creates nothing new.
    await endpoint.interaction(_submission(view))
    await asyncio.sleep(0.3)
    assert len(sandbox.bangwo8.create_request_ids) == 1


async def test_field_errors_are_shown_under_their_fields(
    endpoint: SlackEndpoint, fake_slack: FakeSlack, sandbox: Sandbox, store: Store
) -> None:
    view = await _message_shortcut(endpoint)
    response = await endpoint.interaction(
        _submission(
            view,
            subject="   ",
            priorityLevel="紧急" * 40,
            ccUserIdList="30002 0",
            custom_fields="订单号 = A-1001\n没有等号",
            descript="=HYPERLINK()",
        )
    )
    answer = response.json()
    assert answer["response_action"] == "errors"
    errors = answer["errors"]
    assert set(errors) == {"subject", "priorityLevel", "ccUserIdList", "custom_fields", "descript"}
    assert "must not be blank" in errors["subject"]
    assert "is not a code" in errors["priorityLevel"]
    assert errors["ccUserIdList"].startswith("id 2: 0 is below 1")
    assert errors["custom_fields"].startswith("line 2: write `key = value`")
    assert "spreadsheet formula" in errors["descript"]

    await asyncio.sleep(0.2)
    assert sandbox.bangwo8.tickets == {}
    assert sandbox.bangwo8.counters["requests"] == 0
    assert fake_slack.calls_to("views.update") == []
    assert await audit_entries(store) == []


async def test_the_submission_is_acked_before_bangwo8_answers(
    endpoint: SlackEndpoint, fake_slack: FakeSlack, sandbox: Sandbox
) -> None:
    view = await _message_shortcut(endpoint)
    sandbox.bangwo8.faults.latency = 1.5
    started = time.monotonic()
    response = await endpoint.interaction(_submission(view))
    assert time.monotonic() - started < 1.0
    assert response.json()["response_action"] == "update"
    assert sandbox.bangwo8.tickets == {}
    await wait_until(lambda: bool(fake_slack.calls_to("chat.postMessage")), within=10)
    assert len(sandbox.bangwo8.tickets) == 1


async def test_a_bangwo8_failure_shows_the_form_again_and_a_retry_makes_one_ticket(
    endpoint: SlackEndpoint, fake_slack: FakeSlack, sandbox: Sandbox, store: Store
) -> None:
    view = await _message_shortcut(endpoint)
    sandbox.bangwo8.faults.fail_next = 10
    sandbox.bangwo8.faults.fail_status = 500
    await endpoint.interaction(_submission(view, priorityLevel="2"))
    await wait_until(lambda: bool(_updates(fake_slack)), within=10)
    text = _updates(fake_slack)[-1]
    assert "Could not create the ticket" in text
    assert "bangwo8" in text
    assert "try again" in text
    assert fake_slack.calls_to("chat.postMessage") == []
    (entry,) = await audit_entries(store)
    assert entry.outcome in ("failed", "unknown")

    again = {"id": view["id"], **fake_slack.views[view["id"]]}
    assert again["callback_id"] == "crm_ticket"
    assert _initial(again)["priorityLevel"] == "2"  # as typed
    sandbox.bangwo8.faults.fail_next = 0
    await asyncio.gather(
        endpoint.interaction(_submission(again)), endpoint.interaction(_submission(again))
    )
    await wait_until(lambda: bool(fake_slack.calls_to("chat.postMessage")), within=10)
    await asyncio.sleep(0.3)
    assert len(sandbox.bangwo8.tickets) == 1
    assert len(set(sandbox.bangwo8.create_request_ids)) == 1  # every attempt, one request id
    assert len(fake_slack.calls_to("chat.postMessage")) == 1


# --- access ------------------------------------------------------------------------------


async def test_a_user_without_write_access_is_refused_and_nothing_is_created(
    endpoint: SlackEndpoint, fake_slack: FakeSlack, sandbox: Sandbox, store: Store
) -> None:
    view = await _message_shortcut(endpoint, user=READER)
    await wait_until(lambda: bool(fake_slack.calls_to("views.update")))
    assert "not allowed" in _updates(fake_slack)[0]
    assert fake_slack.views[view["id"]]["blocks"][0]["text"]["text"].startswith(":no_entry:")

    # A submission anyway (the modal kept open, or a forged one) is refused after the ack.
    response = await endpoint.interaction(_submission(view, user=READER))
    assert response.json()["response_action"] == "update"
    await wait_until(lambda: len(fake_slack.calls_to("views.update")) >= 2)
    assert "not allowed" in _updates(fake_slack)[1]
    assert sandbox.bangwo8.counters["requests"] == 0
    assert fake_slack.calls_to("chat.postMessage") == []
    entries = await audit_entries(store)
    assert {(e.operation, e.outcome) for e in entries} == {("create_ticket", "failed")}
    assert all(e.actor.name.endswith(READER) and "not allowed" in (e.error or "") for e in entries)


async def test_the_submitter_is_the_signed_user_not_the_modal_opener(
    endpoint: SlackEndpoint, fake_slack: FakeSlack, sandbox: Sandbox
) -> None:
    """The metadata names who opened the modal; the signed payload names who submits."""
    view = await _message_shortcut(endpoint)
    await endpoint.interaction(_submission(view, user=READER))
    await wait_until(lambda: bool(_updates(fake_slack)))
    assert "not allowed" in _updates(fake_slack)[-1]
    assert sandbox.bangwo8.tickets == {}


# --- the same modal from /crm ticket and the global shortcuts ------------------------------


async def test_crm_ticket_alone_opens_the_modal(
    endpoint: SlackEndpoint, fake_slack: FakeSlack, sandbox: Sandbox
) -> None:
    response = await endpoint.command("ticket")
    assert response.status_code == 200
    view = await _opened_view(fake_slack, 0)
    assert view["callback_id"] == "crm_ticket"
    assert _initial(view)["subject"] == ""
    await endpoint.interaction(_submission(view, subject="退款", message="客户要求退款"))
    posts = fake_slack.hook_posts["cmd"]
    await wait_until(lambda: bool(posts))
    ((ticket_id, stored),) = sandbox.bangwo8.tickets.items()
    assert (stored["subject"], stored["ticketReply"]["replyMsg"]) == ("退款", "客户要求退款")
    assert posts[0]["response_type"] == "in_channel"
    assert f"#{ticket_id}" in _text(posts[0])


async def test_crm_ticket_alone_is_refused_without_write_access(
    endpoint: SlackEndpoint, fake_slack: FakeSlack
) -> None:
    response = await endpoint.command("ticket", user=READER)
    assert "not allowed to run `/crm ticket`" in _text(response.json())
    assert fake_slack.calls_to("views.open") == []


async def test_the_new_ticket_shortcut_opens_an_empty_modal(
    endpoint: SlackEndpoint, fake_slack: FakeSlack, sandbox: Sandbox
) -> None:
    view = await _global_shortcut(endpoint, "new_ticket")
    assert view["callback_id"] == "crm_ticket"
    assert set(_initial(view).values()) == {""}
    await endpoint.interaction(_submission(view, subject="发票", message="请开发票"))
    await wait_until(lambda: bool(sandbox.bangwo8.tickets))
    (ticket_id,) = sandbox.bangwo8.tickets
    await wait_until(lambda: any(f"#{ticket_id}" in text for text in _updates(fake_slack)))
    assert fake_slack.calls_to("chat.postMessage") == []


async def test_the_import_shortcut_opens_the_import_modal_asking_where_to_post(
    endpoint: SlackEndpoint, fake_slack: FakeSlack
) -> None:
    view = await _global_shortcut(endpoint, "import_customers")
    assert view["callback_id"] == "crm_import"
    (post_in,) = [block for block in view["blocks"] if block.get("block_id") == "post_in"]
    assert post_in["element"]["response_url_enabled"] is True

    csv = "客户名称,企业名称,联系人,手机号\n蓝本客户,蓝本客户有限公司,王芳,13800130001\n"
    file = fake_slack.add_file("customers.csv", csv.encode(), "text/csv")
    response = await endpoint.interaction(
        {
            "type": "view_submission",
            "user": _user(WRITER),
            "view": {
                "id": view["id"],
                "type": "modal",
                "callback_id": "crm_import",
                "private_metadata": view["private_metadata"],
                "state": {
                    "values": {
                        "vendor": {"vendor_select": {"selected_option": {"value": "xiaolanben"}}},
                        "file": {"file_input": {"files": [file]}},
                        "post_in": {"post_in_select": {"selected_conversation": CHANNEL}},
                    }
                },
            },
            "response_urls": [
                {
                    "block_id": "post_in",
                    "action_id": "post_in_select",
                    "channel_id": CHANNEL,
                    "response_url": fake_slack.hook_url("picked"),
                }
            ],
        }
    )
    assert response.status_code == 200
    await wait_until(lambda: bool(fake_slack.hook_posts["picked"]), within=10)
    assert "1 valid row(s), 0 rejected of 1" in _text(fake_slack.hook_posts["picked"][0])


async def test_the_import_shortcut_is_refused_without_write_access(
    endpoint: SlackEndpoint, fake_slack: FakeSlack, sandbox: Sandbox
) -> None:
    view = await _global_shortcut(endpoint, "import_customers", user=READER)
    file = fake_slack.add_file("customers.csv", b"a,b\n1,2\n", "text/csv")
    await endpoint.interaction(
        {
            "type": "view_submission",
            "user": _user(READER),
            "view": {
                "id": view["id"],
                "type": "modal",
                "callback_id": "crm_import",
                "private_metadata": view["private_metadata"],
                "state": {
                    "values": {
                        "vendor": {"vendor_select": {"selected_option": {"value": "xiaolanben"}}},
                        "file": {"file_input": {"files": [file]}},
                    }
                },
            },
            "response_urls": [{"channel_id": CHANNEL, "response_url": fake_slack.hook_url("r")}],
        }
    )
    await wait_until(lambda: bool(fake_slack.hook_posts["r"]))
    assert "not allowed to run `/crm import`" in _text(fake_slack.hook_posts["r"][0])
    assert fake_slack.calls_to("files.download") == []


# --- the modal's parts ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mrkdwn", "plain"),
    [
        ("<https://a.example.com|链接>", "链接 (https://a.example.com)"),
        ("<https://a.example.com>", "https://a.example.com"),
        ("<mailto:li@example.com|li@example.com>", "li@example.com"),
        ("<@U0CUSTOMER> <@U1|li> <#C1|sales> <!here>", "@U0CUSTOMER @li #sales @here"),
        ("<!subteam^S1|@support> 1 &lt; 2 &amp;&amp; 3 &gt; 2", "@support 1 < 2 && 3 > 2"),
    ],
)
def test_a_message_is_read_as_a_person_reads_it(mrkdwn: str, plain: str) -> None:
    assert plain_text(mrkdwn) == plain


def test_the_permalink_is_made_without_a_call() -> None:
    assert permalink("acme", "C1", "1.000200", "1.000200") == (
        "https://acme.slack.com/archives/C1/p1000200"
    )
    assert permalink("", "C1", "1.2", "") == ""


def test_a_long_message_is_cut_to_what_slack_takes_and_the_subject_to_255() -> None:
    text = "主题" * 200 + "\n" + "内容" * 2000
    view = ticket_modal(TicketSource(kind="message", text=text, permalink="https://x/p1"))
    initial = _initial(view)
    assert len(initial["subject"]) == 255
    assert len(initial["message"]) == 3000
    assert "cut to 3,000 characters" in _text(view)
    assert len(view["private_metadata"]) < 3000
    assert read_submission(_submission(view)["view"]).errors == {}


# --- a slow access check -------------------------------------------------------------------


@pytest.fixture
async def group_endpoint(
    *,
    services: Services,
    slack_settings: SlackSettings,
    fake_slack: FakeSlack,
    sandbox: Sandbox,
) -> AsyncIterator[SlackEndpoint]:
    """The bot where writers are the members of a user group, read with the Web API."""
    fake_slack.usergroups["S0SUPPORT"] = [WRITER]
    access = AccessSettings(write_usergroups=frozenset({"S0SUPPORT"}))
    bolt_app = build_app(slack_settings, services, access=access)
    server, task, url = await _serve_in_loop(build_http_app(bolt_app, settings=slack_settings))
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            yield SlackEndpoint(url=url + EVENTS_PATH, fake=fake_slack, http=http)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def test_the_modal_opens_before_a_slow_access_check_ends(
    group_endpoint: SlackEndpoint, fake_slack: FakeSlack, sandbox: Sandbox
) -> None:
    fake_slack.delays["usergroups.users.list"] = 2.5
    started = time.monotonic()
    view = await _message_shortcut(group_endpoint)
    assert time.monotonic() - started < 1.0  # acked, and the modal opened, within the trigger
    await wait_until(lambda: bool(fake_slack.calls_to("usergroups.users.list")))

    await group_endpoint.interaction(_submission(view))
    await wait_until(lambda: bool(fake_slack.calls_to("chat.postMessage")), within=10)
    assert len(sandbox.bangwo8.tickets) == 1
    assert not any("not allowed" in text for text in _updates(fake_slack))


async def test_a_channel_without_the_app_still_gets_the_ticket_and_says_why_no_reply(
    endpoint: SlackEndpoint, fake_slack: FakeSlack, sandbox: Sandbox
) -> None:
    fake_slack.not_in_channels.add(CHANNEL)
    view = await _message_shortcut(endpoint)
    await endpoint.interaction(_submission(view))
    await wait_until(lambda: bool(_updates(fake_slack)), within=10)
    (ticket_id,) = sandbox.bangwo8.tickets
    text = _updates(fake_slack)[-1]
    assert f"#{ticket_id}" in text
    assert "not_in_channel" in text
    assert "invite the app to the channel" in text
