"""The one access policy (`tools.policy`): Slack users and MCP callers by sub, email and
group claim, per command; a refused write is audited in a real SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tools.errors import AccessDeniedError, ConfigurationError
from tools.identity import Principal
from tools.policy import (
    GroupLookupError,
    McpAccessSettings,
    Policy,
    SlackAccessSettings,
    check_access,
    policy_from_settings,
)
from tools.services import Services
from tools.settings import Settings
from tools.storage.audit import Actor
from tools.storage.store import sqlite_store

ISSUER = "https://idp.example.com/realms/crm"


def oauth(
    subject: str = "248289761001",
    *,
    email: str | None = None,
    groups: frozenset[str] = frozenset(),
    issuer: str = ISSUER,
) -> Principal:
    return Principal(
        surface="mcp",
        subject=subject,
        issuer=issuer,
        email=email,
        groups=groups,
        scopes=frozenset({"crmops:read", "crmops:ticket", "crmops:import"}),
    )


def slack(user_id: str, channel_id: str = "C0SALES") -> Principal:
    return Principal.slack(user_id=user_id, team_id="T1", channel_id=channel_id)


class Groups:
    """Slack user groups as the bot's directory answers them; `broken` cannot be read."""

    def __init__(self, members: dict[str, frozenset[str]], broken: frozenset[str] = frozenset()):
        self._members = members
        self._broken = broken
        self.asked: list[str] = []

    async def members(self, group_id: str) -> frozenset[str]:
        self.asked.append(group_id)
        if group_id in self._broken:
            raise GroupLookupError(group_id)
        return self._members.get(group_id, frozenset())


def mcp_policy(**rules: object) -> Policy:
    return Policy(mcp=McpAccessSettings.model_validate(rules))


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    store = sqlite_store(tmp_path / "crmops.db")
    async with Services(Settings.load(env_file=None), store=store) as services:
        yield services
    await store.aclose()


# --- MCP ------------------------------------------------------------------------------


async def test_with_no_mcp_rule_every_caller_the_scopes_allow_may_read_and_write() -> None:
    policy = Policy()
    for principal in (oauth(), Principal.static_token(client_name="claude-ai")):
        assert await policy.refusal(principal, "create_ticket", writes=True) is None
        assert await policy.refusal(principal, "list_staff", writes=False) is None


@pytest.mark.parametrize(
    ("rules", "allowed"),
    [
        ({"write_subjects": "248289761001"}, True),
        ({"write_subjects": "someone-else"}, False),
        ({"write_emails": "Ana@Example.com"}, True),  # emails compare case-insensitively
        ({"write_emails": "bob@example.com"}, False),
        ({"write_groups": "support,sales"}, True),
        ({"write_groups": "finance"}, False),
        ({"write_subjects": "*"}, True),
    ],
)
async def test_mcp_writers_are_named_by_sub_email_or_group_claim(
    rules: dict[str, str], allowed: bool
) -> None:
    ana = oauth(email="ana@example.com", groups=frozenset({"support"}))
    refusal = await mcp_policy(**rules).refusal(ana, "create_ticket", writes=True)
    assert (refusal is None) is allowed
    if not allowed:
        assert refusal is not None
        assert "subject 248289761001, email ana@example.com" in refusal
        assert "CRMOPS_MCP_WRITE_SUBJECTS, _WRITE_EMAILS or _WRITE_GROUPS" in refusal


async def test_write_rules_leave_reads_open_and_read_rules_close_them() -> None:
    writers_named = mcp_policy(write_emails="ana@example.com")
    assert await writers_named.refusal(oauth(), "list_tickets", writes=False) is None

    readers_named = mcp_policy(read_groups="support")
    refusal = await readers_named.refusal(oauth(), "list_tickets", writes=False)
    assert refusal is not None
    assert "CRMOPS_MCP_READ_SUBJECTS" in refusal
    member = oauth(groups=frozenset({"support"}))
    assert await readers_named.refusal(member, "list_tickets", writes=False) is None


async def test_a_per_tool_rule_replaces_the_default_for_that_tool_only() -> None:
    policy = mcp_policy(
        write_groups="support",
        commands={"import_customer": {"emails": ["ops@example.com"]}, "create_ticket": {}},
    )
    support = oauth(groups=frozenset({"support"}))
    ops = oauth("ops-1", email="OPS@example.com")

    refusal = await policy.refusal(support, "import_customer", writes=True)
    assert refusal is not None
    assert "its rule in CRMOPS_MCP_COMMANDS" in refusal
    assert await policy.refusal(ops, "import_customer", writes=True) is None
    # An empty rule opens its tool to every caller the scopes allow.
    assert await policy.refusal(ops, "create_ticket", writes=True) is None


async def test_a_closed_tool_is_refused_to_everyone() -> None:
    policy = mcp_policy(commands={"import_customer": {"closed": True, "subjects": ["*"]}})
    refusal = await policy.refusal(oauth(), "import_customer", writes=True)
    assert refusal is not None
    assert "switched off" in refusal


async def test_once_writers_are_named_the_static_token_writes_only_if_named() -> None:
    token = Principal.static_token(client_name="claude-ai")
    assert await mcp_policy(write_emails="ana@example.com").refusal(
        token, "create_ticket", writes=True
    )
    allowed = mcp_policy(write_emails="ana@example.com", write_subjects="static-token")
    assert await allowed.refusal(token, "create_ticket", writes=True) is None


async def test_an_issuers_user_named_static_token_is_not_the_static_token() -> None:
    impostor = oauth("static-token")
    policy = mcp_policy(write_subjects="static-token")
    assert await policy.refusal(impostor, "create_ticket", writes=True) is not None


async def test_an_unverified_caller_passes_only_a_rule_open_to_anyone() -> None:
    claimed = Principal(
        surface="mcp", subject="248289761001", email="ana@example.com", verified=False
    )
    assert await Policy().refusal(claimed, "create_ticket", writes=True) is None
    named = mcp_policy(write_subjects="248289761001", write_emails="ana@example.com")
    assert await named.refusal(claimed, "create_ticket", writes=True) is not None


async def test_the_person_at_the_machine_is_always_allowed() -> None:
    closed = Policy(SlackAccessSettings.model_validate({}), mcp_policy(write_groups="x").mcp)
    cli = Principal(surface="cli", subject="alice")
    stdio = Principal(surface="mcp", subject="stdio", scopes=None, self_reported_name="x")
    for principal in (cli, stdio):
        assert await closed.refusal(principal, "create_ticket", writes=True) is None
    # An issuer's user whose `sub` is "stdio" is not the local user.
    assert await closed.refusal(oauth("stdio"), "create_ticket", writes=True) is not None


async def test_a_refused_write_is_audited_as_refused_with_the_principal(
    services: Services,
) -> None:
    policy = mcp_policy(write_groups="support")
    bob = oauth("bob-7", email="bob@example.com")

    with pytest.raises(AccessDeniedError) as raised:
        await check_access(policy, services, bob, "create_ticket", writes=True, vendor="bangwo8")

    assert raised.value.command == "create_ticket"
    assert "may not call `create_ticket`" in str(raised.value)
    assert raised.value.meaning
    assert raised.value.action
    [entry] = await services.store.audit.recent()
    assert entry.actor == Actor("mcp", f"sub=bob-7 email=bob@example.com iss={ISSUER}")
    assert (entry.operation, entry.vendor, entry.outcome) == ("create_ticket", "bangwo8", "failed")
    assert entry.error is not None
    assert entry.error.startswith("refused: You (subject bob-7")


async def test_an_allowed_write_and_a_refused_read_leave_no_audit_line(
    services: Services,
) -> None:
    policy = mcp_policy(write_groups="support", read_groups="support")
    await check_access(
        policy, services, oauth(groups=frozenset({"support"})), "create_ticket", writes=True
    )
    with pytest.raises(AccessDeniedError):
        await check_access(policy, services, oauth(), "list_staff", writes=False)
    assert await services.store.audit.recent() == []


# --- Slack, through the same policy -----------------------------------------------------


async def test_slack_users_groups_and_channels_as_before() -> None:
    groups = Groups({"S0SALES": frozenset({"U0MEMBER"})}, broken=frozenset({"S0BROKEN"}))
    policy = Policy(
        SlackAccessSettings.model_validate(
            {"write_usergroups": "S0BROKEN,S0SALES", "write_channels": "C0SALES"}
        ),
        groups=groups,
    )
    assert await policy.refusal(slack("U0MEMBER"), "ticket", writes=True) is None
    assert groups.asked == ["S0BROKEN", "S0SALES"]  # an unreadable group grants nothing
    outsider = await policy.refusal(slack("U0OTHER"), "ticket", writes=True)
    assert outsider is not None
    assert "not allowed" in outsider
    elsewhere = await policy.refusal(slack("U0MEMBER", "C0RANDOM"), "ticket", writes=True)
    assert elsewhere == "`/crm ticket` can only be run in <#C0SALES>."
    closed = await Policy().refusal(slack("U0MEMBER"), "import", writes=True)
    assert closed is not None
    assert "CRMOPS_SLACK_WRITE_USERS" in closed


async def test_a_slack_group_the_principal_carries_needs_no_lookup() -> None:
    groups = Groups({})
    policy = Policy(SlackAccessSettings.model_validate({"write_usergroups": "S0"}), groups=groups)
    member = Principal.slack(user_id="U1", team_id="T1", channel_id="C1", groups=frozenset({"S0"}))
    assert await policy.refusal(member, "ticket", writes=True) is None
    assert groups.asked == []


async def test_mcp_rules_never_grant_a_slack_user_and_slack_rules_never_an_mcp_caller() -> None:
    policy = Policy(
        SlackAccessSettings.model_validate({"write_users": "*"}),
        McpAccessSettings.model_validate({"write_subjects": "U0MEMBER"}),
    )
    assert await policy.refusal(oauth("U0MEMBER"), "create_ticket", writes=True) is None
    assert await policy.refusal(oauth("U0OTHER"), "create_ticket", writes=True) is not None
    assert await policy.refusal(slack("U0OTHER"), "ticket", writes=True) is None


# --- settings ---------------------------------------------------------------------------


def test_the_policy_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMOPS_SLACK_WRITE_USERS", "U1, U2")
    monkeypatch.setenv("CRMOPS_MCP_WRITE_EMAILS", "ana@example.com, bob@example.com")
    monkeypatch.setenv("CRMOPS_MCP_WRITE_GROUPS", "support")
    monkeypatch.setenv("CRMOPS_MCP_COMMANDS", '{"import_customer": {"subjects": "ops-1"}}')

    policy = policy_from_settings(env_file=None)

    assert policy.slack.write_users == {"U1", "U2"}
    assert policy.mcp.write_rule.emails == {"ana@example.com", "bob@example.com"}
    assert policy.mcp.rule_for("import_customer", writes=True).subjects == {"ops-1"}
    assert policy.mcp.rule_for("create_ticket", writes=True).groups == {"support"}


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("CRMOPS_MCP_COMMANDS", '{"create_tickets": {}}', "CRMOPS_MCP_COMMANDS"),
        ("CRMOPS_MCP_COMMANDS", '{"create_ticket": {"users": ["U1"]}}', "CRMOPS_MCP_COMMANDS"),
        ("CRMOPS_SLACK_COMMANDS", '{"ticket": {"emails": ["a@b.c"]}}', "CRMOPS_SLACK_COMMANDS"),
        ("CRMOPS_MCP_COMMANDS", "{not json", "CRMOPS_MCP_COMMANDS"),
        # A misspelt key would leave the rule empty, that is open to anyone: refused.
        ("CRMOPS_MCP_COMMANDS", '{"import_customer": {"email": ["a@b.c"]}}', "'email'"),
        ("CRMOPS_SLACK_COMMANDS", '{"import": {"user": ["U1"]}}', "'user', which is no key"),
    ],
)
def test_a_rule_that_cannot_work_is_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, said: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as raised:
        policy_from_settings(env_file=None)
    assert said in str(raised.value)


def test_mixing_surfaces_in_one_rule_says_where_it_belongs() -> None:
    with pytest.raises(ValueError, match="put it in CRMOPS_MCP_COMMANDS"):
        SlackAccessSettings.model_validate({"commands": {"ticket": {"groups": ["support"]}}})
