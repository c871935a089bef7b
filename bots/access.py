"""Who may run which `/crm` subcommand, where: rules from `AccessSettings`.

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
import logging
import time
from collections.abc import Callable
from typing import Protocol

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bots.commands import Subcommand
from bots.replies import Caller
from bots.settings import AccessRule, AccessSettings
from tools.services import Services
from tools.storage.audit import AuditEntry

log = logging.getLogger("crmops.slack")

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
    """Decides, per subcommand, whether a user in a channel may run it."""

    def __init__(self, settings: AccessSettings, groups: UserGroupDirectory) -> None:
        self.settings = settings
        self._groups = groups

    async def refusal(
        self, command: str, *, user_id: str, channel_id: str, writes: bool
    ) -> str | None:
        """None when allowed; otherwise a sentence saying why and whom to ask."""
        rule = self.settings.rule_for(command, writes=writes)
        if rule.closed:
            return (
                f"`/crm {command}` is switched off: an admin sets CRMOPS_SLACK_WRITE_USERS "
                "or CRMOPS_SLACK_WRITE_USERGROUPS to allow it."
            )
        if rule.channels and channel_id not in rule.channels:
            where = ", ".join(f"<#{channel}>" for channel in sorted(rule.channels))
            return f"`/crm {command}` can only be run in {where}."
        if not await self._user_allowed(rule, user_id):
            return (
                f"You are not allowed to run `/crm {command}`; ask an admin to add you to "
                "its users or user groups."
            )
        return None

    async def _user_allowed(self, rule: AccessRule, user_id: str) -> bool:
        if rule.anyone or user_id in rule.users:
            return True
        for group in sorted(rule.usergroups):
            try:
                if user_id in await self._groups.members(group):
                    return True
            except SlackApiError:
                # A group we cannot read grants nothing; the other groups may still.
                continue
        return False


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
        """None when `caller` may run `subcommand`; otherwise the sentence to show them."""
        try:
            refusal = await asyncio.wait_for(
                self.policy.refusal(
                    subcommand.name,
                    user_id=caller.user_id,
                    channel_id=caller.channel_id,
                    writes=subcommand.writes,
                ),
                self.timeout,
            )
        except TimeoutError:
            refusal = "Could not check your access in time (Slack was slow); try again."
        if refusal is not None and subcommand.tool is not None and subcommand.writes:
            await self._record(subcommand.tool.name, caller, refusal, vendor)
        return refusal

    async def _record(self, operation: str, caller: Caller, refusal: str, vendor: str) -> None:
        entry = AuditEntry(
            actor=caller.actor,
            vendor=vendor,
            operation=operation,
            target="",
            sent={},
            outcome="failed",
            error=f"refused: {refusal}",
        )
        try:
            await self.services.store.audit.record(entry)
        except Exception:
            # Losing an audit line must not keep the refusal from the user.
            log.exception("could not record the refused %s", operation)
