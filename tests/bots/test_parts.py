"""Command parsing, confirmations, access rules and settings, without HTTP."""

from __future__ import annotations

import logging

import pytest

from bots.access import AccessPolicy
from bots.app import build_app
from bots.commands import (
    CommandError,
    ErrorCommand,
    HelpCommand,
    ImportCommand,
    TicketCommand,
    ToolCommand,
    parse_command,
)
from bots.confirmations import Confirmation, ConfirmationRefusedError, MemoryConfirmationStore
from bots.settings import AccessSettings, SlackSettings
from tools.services import Services
from tools.settings import Settings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", HelpCommand()),
        ("help", HelpCommand()),
        ("error 502", ErrorCommand(code="502")),
        ("error 401 Bangwo8", ErrorCommand(code="401", vendor="bangwo8")),
        ("error timestamp timeout", ErrorCommand(code="timestamp timeout")),
        ("staff", ToolCommand("staff")),
        ("staff 王 小明", ToolCommand("staff", {"search": "王 小明"})),
        ("customer +86 182 2173 3141", ToolCommand("customer", {"whatsapp": "+8618221733141"})),
        ("Tickets", ToolCommand("tickets", {"created_order": "desc", "limit": 10})),
        (
            "ticket “无法登录” “报错 502” --priority 2",
            TicketCommand(subject="无法登录", message="报错 502", options={"priority": "2"}),
        ),
        ('ticket "a" "b" --type=3', TicketCommand("a", "b", {"type": "3"})),
        ("import", ImportCommand()),
        ("IMPORT Xiaolanben", ImportCommand(vendor="xiaolanben")),
    ],
)
def test_commands_are_parsed(text: str, expected: object) -> None:
    assert parse_command(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("refund", "Unknown subcommand `refund`"),
        ('ticket "open quote', "close every quote"),
        ('ticket "a" "b" --urgent 1', "Unknown option `--urgent`"),
        ('ticket "a" "b" --priority', "`--priority` needs a value"),
        ("customer", "Usage: `/crm customer"),
        ("customer", "Give the customer's WhatsApp number."),
        ("tickets open", "Usage: `/crm tickets"),
        ("import bangwo8", "socialepoch or xiaolanben"),
        ("error", "Usage: `/crm error"),
    ],
)
def test_malformed_commands_say_how_to_write_them(text: str, says: str) -> None:
    with pytest.raises(CommandError, match=None) as raised:
        parse_command(text)
    assert says in str(raised.value)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


async def test_a_confirmation_expires() -> None:
    clock = Clock()
    store = MemoryConfirmationStore(clock=clock)
    pending = Confirmation.new(
        command="ticket",
        user_id="U1",
        team_id="T1",
        channel_id="C1",
        response_url="http://127.0.0.1/hook",
        payload={},
        ttl=300,
        clock=clock,
    )
    await store.put(pending)
    clock.now += 301
    with pytest.raises(ConfirmationRefusedError) as raised:
        await store.take(pending.id, user_id="U1")
    assert raised.value.reason == "expired"
    with pytest.raises(ConfirmationRefusedError) as again:
        await store.take(pending.id, user_id="U1")
    assert again.value.reason == "unknown"


class Groups:
    def __init__(self, members: dict[str, frozenset[str]]) -> None:
        self._members = members
        self.asked: list[str] = []

    async def members(self, usergroup_id: str) -> frozenset[str]:
        self.asked.append(usergroup_id)
        return self._members.get(usergroup_id, frozenset())


async def test_access_by_user_group_and_channel() -> None:
    settings = AccessSettings(
        write_usergroups="S0SALES",
        write_channels="C0SALES,C0OPS",
    )
    groups = Groups({"S0SALES": frozenset({"U0MEMBER"})})
    policy = AccessPolicy(settings, groups)
    assert (
        await policy.refusal("ticket", user_id="U0MEMBER", channel_id="C0SALES", writes=True)
        is None
    )
    outsider = await policy.refusal("ticket", user_id="U0OTHER", channel_id="C0SALES", writes=True)
    assert outsider is not None
    assert "not allowed" in outsider
    elsewhere = await policy.refusal(
        "ticket", user_id="U0MEMBER", channel_id="C0RANDOM", writes=True
    )
    assert elsewhere is not None
    assert "<#C0OPS>" in elsewhere
    assert (
        await policy.refusal("staff", user_id="U0OTHER", channel_id="C0RANDOM", writes=False)
        is None
    )


async def test_writes_are_closed_until_someone_is_named() -> None:
    policy = AccessPolicy(AccessSettings(), Groups({}))
    refusal = await policy.refusal("import", user_id="U1", channel_id="C1", writes=True)
    assert refusal is not None
    assert "CRMOPS_SLACK_WRITE_USERS" in refusal


def test_access_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMOPS_SLACK_WRITE_USERS", "U1, U2")
    monkeypatch.setenv("CRMOPS_SLACK_COMMANDS", '{"import": {"users": "U9", "channels": ["C9"]}}')
    settings = AccessSettings.load(env_file=None)
    assert settings.write_users == {"U1", "U2"}
    rule = settings.rule_for("import", writes=True)
    assert (rule.users, rule.channels) == (frozenset({"U9"}), frozenset({"C9"}))
    assert settings.rule_for("ticket", writes=True).users == {"U1", "U2"}


def test_slack_settings_name_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("SLACK_API_URL", "http://127.0.0.1:9/api")
    settings = SlackSettings.load(env_file=None)
    assert settings.api_url == "http://127.0.0.1:9/api/"
    assert settings.missing(socket_mode=False) == ["SLACK_SIGNING_SECRET"]
    assert settings.missing(socket_mode=True) == ["SLACK_APP_TOKEN"]
    assert "xoxb-1" not in repr(settings)


async def test_a_bot_token_in_the_environment_draws_no_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # bolt reads SLACK_BOT_TOKEN itself and would warn that our client's token wins.
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-from-the-environment")
    settings = SlackSettings(bot_token="xoxb-from-settings", signing_secret="s" * 32)
    async with Services(Settings.load(None)) as services:
        build_app(settings, services)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
