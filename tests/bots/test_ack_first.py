"""Ack first: a slow access check never holds the ack; `/crm help` lists what one may run.

The access rules name a user group, so every check asks the fake Slack's
`usergroups.users.list`, delayed here by 2.5 s: Slack would have given up on an ack that
waited for it (3 s in all, the network included).
"""

from __future__ import annotations

import re
import time

import pytest

from bots.app import ACK_BUDGET, WORKING
from bots.fake_slack import FakeSlack
from bots.settings import AccessSettings
from tests.bots.conftest import READER, WRITER, SlackEndpoint
from tests.bots.test_http import _text
from tests.bots.waiting import wait_until
from tests.sandbox_fixtures import Sandbox

SUPPORT = "S0SUPPORT"
WRITERS = "S0WRITERS"
SLOW = 2.5
ADMIN = "U0ADMIN"
STRANGER = "U0STRANGER"


@pytest.fixture
def access() -> AccessSettings:
    """Reads for the support group, writes for the writers group; ADMIN an admin."""
    return AccessSettings(
        read_users=frozenset(),
        read_usergroups=frozenset({SUPPORT}),
        write_usergroups=frozenset({WRITERS}),
        admin_users=frozenset({ADMIN}),
    )


@pytest.fixture
def slow_groups(fake_slack: FakeSlack) -> FakeSlack:
    fake_slack.usergroups[SUPPORT] = [READER, WRITER, ADMIN]
    fake_slack.usergroups[WRITERS] = [WRITER, ADMIN]
    fake_slack.delays["usergroups.users.list"] = SLOW
    return fake_slack


async def _timed(endpoint: SlackEndpoint, text: str, **options: str) -> tuple[float, str]:
    started = time.monotonic()
    response = await endpoint.command(text, **options)
    assert response.status_code == 200
    return time.monotonic() - started, _text(response.json()) if response.content else ""


async def test_a_slow_access_check_is_acked_at_once_and_answered_by_response_url(
    endpoint: SlackEndpoint, slow_groups: FakeSlack, sandbox: Sandbox
) -> None:
    sandbox.xiaolanben.add_staff("王小明", "13912340001", "销售一部")
    seconds, acked = await _timed(endpoint, "staff", user=READER)
    assert seconds < 1.0
    assert WORKING in acked
    assert slow_groups.hook_posts["cmd"] == []
    await wait_until(lambda: bool(slow_groups.hook_posts["cmd"]), within=10)
    assert "王小明" in _text(slow_groups.hook_posts["cmd"][0])
    assert slow_groups.calls_to("usergroups.users.list")


async def test_a_slow_refusal_arrives_by_response_url(
    endpoint: SlackEndpoint, slow_groups: FakeSlack, sandbox: Sandbox
) -> None:
    seconds, acked = await _timed(endpoint, "staff", user=STRANGER)
    assert seconds < 1.0
    assert WORKING in acked
    await wait_until(lambda: bool(slow_groups.hook_posts["cmd"]), within=10)
    assert "not allowed to run `/crm staff`" in _text(slow_groups.hook_posts["cmd"][0])
    assert sandbox.xiaolanben.counters["requests"] == 0


async def test_a_write_ask_after_a_slow_check_still_confirms(
    endpoint: SlackEndpoint, slow_groups: FakeSlack, sandbox: Sandbox
) -> None:
    """The Confirm / Cancel ask goes to response_url; its button still creates the ticket."""
    seconds, _ = await _timed(endpoint, 'ticket "慢" "检查很慢"', user=WRITER)
    assert seconds < 1.0
    await wait_until(lambda: bool(slow_groups.hook_posts["cmd"]), within=10)
    ask = slow_groups.hook_posts["cmd"][0]
    assert "Create this Bangwo8 ticket?" in _text(ask)
    actions = next(block for block in ask["blocks"] if block["type"] == "actions")
    await endpoint.press("crm_confirm", actions["elements"][0]["value"], hook="ok")
    await wait_until(lambda: len(sandbox.bangwo8.tickets) == 1, within=10)


async def test_the_import_modal_opens_within_the_trigger_despite_a_slow_check(
    endpoint: SlackEndpoint, slow_groups: FakeSlack
) -> None:
    """The trigger id lasts 3 s: the modal opens at once, the check is made on submit."""
    started = time.monotonic()
    response = await endpoint.command("import xiaolanben", user=WRITER)
    assert response.status_code == 200
    await wait_until(lambda: bool(slow_groups.calls_to("views.open")), within=3)
    assert time.monotonic() - started < 1.5


async def test_a_fast_answer_is_still_given_in_the_ack(
    endpoint: SlackEndpoint, fake_slack: FakeSlack
) -> None:
    """A cached (or instant) check answers in the ack itself: no second message."""
    fake_slack.usergroups[SUPPORT] = [READER]
    await endpoint.command("help", user=READER, hook="warm")  # fills the group cache
    seconds, acked = await _timed(endpoint, "error 502 socialepoch", user=READER)
    assert seconds < ACK_BUDGET + 0.5
    assert "socialepoch 502" in acked
    assert fake_slack.hook_posts["cmd"] == []


# --- /crm help lists what the caller may run ------------------------------------------------


async def _help_for(endpoint: SlackEndpoint, fake: FakeSlack, user: str) -> str:
    fake.usergroups[SUPPORT] = [READER, WRITER, ADMIN]
    fake.usergroups[WRITERS] = [WRITER, ADMIN]
    response = await endpoint.command("help", user=user, hook=f"help-{user}")
    text = _text(response.json()) if response.content else ""
    if WORKING in text:
        await wait_until(lambda: bool(fake.hook_posts[f"help-{user}"]), within=10)
        text = _text(fake.hook_posts[f"help-{user}"][0])
    return text


@pytest.mark.parametrize(
    ("user", "listed", "left_out"),
    [
        (READER, {"error", "staff", "customer", "tickets"}, {"ticket", "import", "audit"}),
        (WRITER, {"error", "staff", "tickets", "ticket", "import"}, {"audit"}),
        (ADMIN, {"staff", "ticket", "import", "audit"}, set()),
        (STRANGER, set(), {"error", "staff", "customer", "tickets", "ticket", "import"}),
    ],
)
async def test_help_lists_only_what_the_caller_may_run(
    endpoint: SlackEndpoint,
    fake_slack: FakeSlack,
    user: str,
    listed: set[str],
    left_out: set[str],
) -> None:
    text = await _help_for(endpoint, fake_slack, user)
    assert "/crm help" in text
    assert _listed(text) >= listed
    assert not _listed(text) & left_out


async def test_help_after_a_slow_check_arrives_by_response_url(
    endpoint: SlackEndpoint, slow_groups: FakeSlack
) -> None:
    seconds, acked = await _timed(endpoint, "help", user=READER)
    assert seconds < 1.0
    assert WORKING in acked
    await wait_until(lambda: bool(slow_groups.hook_posts["cmd"]), within=10)
    text = _text(slow_groups.hook_posts["cmd"][0])
    assert "staff" in _listed(text)
    assert "ticket" not in _listed(text)


def _listed(help_text: str) -> set[str]:
    """The subcommands a help message shows a usage line for."""
    return set(re.findall(r"\*`/crm ([a-z]+)", help_text))
