"""Who may run which `/crm` subcommand, where: Slack's face of `tools.policy`, the one
access policy MCP consults too (rules from `AccessSettings`, `CRMOPS_SLACK_*`).

    policy = AccessPolicy(access_settings, SlackUserGroups(client))
    refusal = await policy.refusal("ticket", user_id="U1", channel_id="C1", writes=True)
    if refusal: ...  # a sentence for the user

    check = AccessCheck(policy, services)     # what the bot asks: in time, refusals audited
    refusal = await check.refusal(SUBCOMMANDS["ticket"], caller)

User group membership is read with `usergroups.users.list` (scope `usergroups:read`) and
kept for `ttl` seconds, so a command costs at most one lookup per group in that time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bots.commands import Subcommand
from bots.replies import Caller
from tools.i18n import Phrase, marked, shown
from tools.identity import Principal
from tools.policy import (
    GroupLookupError,
    McpAccessSettings,
    Policy,
    SlackAccessSettings,
    record_refusal,
)
from tools.services import Services

Clock = Callable[[], float]
ACCESS_CHECK_TIMEOUT = 2.0
"""Seconds the access check may take before the ack: Slack allows 3 in all."""


class UserGroupDirectory(Protocol):
    """Members of a Slack user group."""

    async def members(self, usergroup_id: str) -> frozenset[str]: ...


class SlackUserGroups:
    """`UserGroupDirectory` over the Web API, cached for `ttl` seconds."""

    def __init__(self, client: AsyncWebClient, *, ttl: float = 300.0, clock: Clock = time.time):
        self._client = client
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}

    async def members(self, usergroup_id: str) -> frozenset[str]:
        cached = self._cache.get(usergroup_id)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        response = await self._client.usergroups_users_list(usergroup=usergroup_id)
        users = frozenset(str(user) for user in response.get("users") or [])
        self._cache[usergroup_id] = (self._clock() + self._ttl, users)
        return users


class AccessPolicy:
    """Decides, per subcommand, whether a user in a channel may run it: the Slack face of
    `tools.policy.Policy`, the one policy MCP consults too (`mcp`: MCP's rules, which the
    bot never needs; the server reads them with `tools.policy.policy_from_settings`)."""

    def __init__(
        self,
        settings: SlackAccessSettings,
        groups: UserGroupDirectory,
        *,
        mcp: McpAccessSettings | None = None,
    ) -> None:
        self.settings = settings
        self.policy = Policy(settings, mcp, _ReadableGroups(groups))

    async def refusal(
        self, command: str, *, user_id: str, channel_id: str, writes: bool, team_id: str = ""
    ) -> str | None:
        """None when allowed; otherwise a sentence saying why and whom to ask."""
        principal = Principal.slack(user_id=user_id, team_id=team_id, channel_id=channel_id)
        return await self.policy.refusal(principal, command, writes=writes)


class _ReadableGroups:
    """A user group directory whose Slack errors are `GroupLookupError`: the group grants
    nothing, the other groups may still."""

    def __init__(self, groups: UserGroupDirectory) -> None:
        self._groups = groups

    async def members(self, group_id: str) -> frozenset[str]:
        try:
            return await self._groups.members(group_id)
        except SlackApiError as error:
            raise GroupLookupError(group_id) from error


class AccessCheck:
    """The access rules applied to a caller before the ack, as every `/crm` flow needs them.

    A refused write is recorded in the audit log (`services.store`) under its tool's name:
    the write never reaches the tool, which would otherwise be the one to record it.
    """

    def __init__(
        self, policy: AccessPolicy, services: Services, *, timeout: float = ACCESS_CHECK_TIMEOUT
    ) -> None:
        self.policy = policy
        self.services = services
        self.timeout = timeout

    async def refusal(
        self, subcommand: Subcommand, caller: Caller, *, vendor: str = ""
    ) -> str | None:
        """None when `caller` may run `subcommand`; otherwise the sentence to show them, in
        their language (the audit log records it in English)."""
        try:
            refusal = await asyncio.wait_for(
                self.policy.refusal(
                    subcommand.name,
                    user_id=caller.user_id,
                    channel_id=caller.channel_id,
                    writes=subcommand.writes,
                    team_id=caller.team_id,
                ),
                self.timeout,
            )
        except TimeoutError:
            refusal = Phrase(
                marked("Could not check your access in time (Slack was slow); try again.")
            )
        if refusal is not None and subcommand.tool is not None and subcommand.writes:
            principal = Principal.slack(
                user_id=caller.user_id, team_id=caller.team_id, channel_id=caller.channel_id
            )
            await record_refusal(
                self.services, principal, subcommand.tool.name, refusal, vendor=vendor
            )
        return None if refusal is None else shown(refusal)
