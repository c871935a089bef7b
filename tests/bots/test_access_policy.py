"""The bot's `AccessPolicy`, Slack's face of `tools.policy`, over the real Web API client
and the fake Slack on loopback: user groups read with `usergroups.users.list`, an
unreadable group granting nothing, and a refused write audited as who asked, where."""

from __future__ import annotations

from pathlib import Path

from slack_sdk.web.async_client import AsyncWebClient

from bots.access import AccessCheck, AccessPolicy, SlackUserGroups
from bots.commands import SUBCOMMANDS
from bots.fake_slack import FakeSlack
from bots.replies import Caller
from bots.settings import AccessSettings
from tests.bots.conftest import BOT_TOKEN, CHANNEL, TEAM
from tools.services import Services
from tools.settings import Settings
from tools.storage.store import sqlite_store

MEMBER = "U0MEMBER"
OUTSIDER = "U0OUTSIDER"


def _groups(fake_slack: FakeSlack) -> SlackUserGroups:
    return SlackUserGroups(AsyncWebClient(token=BOT_TOKEN, base_url=fake_slack.api_url))


async def test_an_unreadable_group_grants_nothing_and_the_next_group_still_may(
    fake_slack: FakeSlack,
) -> None:
    fake_slack.usergroups["S0SALES"] = [MEMBER]
    settings = AccessSettings(write_usergroups=frozenset({"S0GONE", "S0SALES"}))
    policy = AccessPolicy(settings, _groups(fake_slack))

    allowed = await policy.refusal("ticket", user_id=MEMBER, channel_id=CHANNEL, writes=True)
    refused = await policy.refusal("ticket", user_id=OUTSIDER, channel_id=CHANNEL, writes=True)

    assert allowed is None
    assert refused is not None
    assert "not allowed to run `/crm ticket`" in refused
    asked = [call.data.get("usergroup") for call in fake_slack.calls_to("usergroups.users.list")]
    assert asked.count("S0SALES") == 1  # cached for the second user
    assert "S0GONE" in asked


async def test_a_refused_write_is_audited_as_the_slack_user_in_their_channel(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    policy = AccessPolicy(AccessSettings(write_users=frozenset({MEMBER})), _groups(fake_slack))
    caller = Caller(user_id=OUTSIDER, team_id=TEAM, channel_id=CHANNEL)
    store = sqlite_store(tmp_path / "crmops.db")
    async with store, Services(Settings.load(env_file=None), store=store) as services:
        refusal = await AccessCheck(policy, services).refusal(SUBCOMMANDS["ticket"], caller)
        [entry] = await store.audit.recent()

    assert refusal is not None
    assert entry.actor == caller.actor
    assert entry.actor.name == f"{TEAM}/{CHANNEL}/{OUTSIDER}"
    assert (entry.operation, entry.outcome) == ("create_ticket", "failed")
    assert entry.error == f"refused: {refusal}"
