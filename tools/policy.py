"""The one access policy: who may run which command, on every surface (Slack, MCP).

    policy = policy_from_settings()                  # CRMOPS_SLACK_* and CRMOPS_MCP_* rules
    refusal = await policy.refusal(principal, "create_ticket", writes=True)   # None: allowed

    # MCP, before a write (after the token's scopes were checked):
    await check_access(policy, services, principal, "create_ticket", writes=True)
    # raises AccessDeniedError (a CrmopsError) after auditing the refused write

A command is named as its surface names it: the `/crm` subcommand on Slack (`import`,
`ticket`), the tool on MCP (`import_customer`, `create_ticket`).

Rules name principals by kind. Slack: user ids (`users`), user groups (`usergroups`, whose
members a `GroupDirectory` reads) and channels (`channels`, where the command may run).
MCP: the token's `sub` (`subjects`; the shared `CRMOPS_MCP_TOKEN` is the subject
`static-token`), its `email` (`emails`, compared case-insensitively) and its group claim
(`groups`, matched against `Principal.groups`). A Slack rule names only Slack kinds, an MCP
rule only MCP kinds: an identity lives on one surface, there is nothing to share.

Defaults: Slack writes are closed until a write user or user group is named; Slack reads
are open. MCP reads and writes are open to every caller whose credential carries the tool's
scope until an MCP rule names someone: then only those named may (the static token too, by
naming `static-token`). A caller whose identity is not verified passes only a rule open to
anyone. The CLI and a stdio MCP server are the person at the machine, who holds the vendor
credentials anyway: always allowed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Protocol

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tools.errors import AccessDeniedError
from tools.i18n import Phrase, marked
from tools.identity import STATIC_TOKEN_SUBJECT, Principal
from tools.services import Services
from tools.settings import read_settings
from tools.storage.audit import Actor, AuditEntry, actor_name, is_local_mcp
from tools.table import TOOLS

log = logging.getLogger("crmops.policy")

EVERYONE = "*"
_COMMON = {"env_file": ".env", "env_file_encoding": "utf-8", "extra": "ignore"}
_SLACK_KINDS = ("users", "usergroups", "channels")
_MCP_KINDS = ("subjects", "emails", "groups")


class GroupLookupError(Exception):
    """A group directory could not read a group: that group grants nothing."""


class GroupDirectory(Protocol):
    """Members of a named group (a Slack user group); the policy asks only for the groups a
    rule names. A group it cannot read raises `GroupLookupError` and grants nothing."""

    async def members(self, group_id: str) -> frozenset[str]: ...


class NoGroups:
    """A `GroupDirectory` that knows no group (MCP: the token carries its groups itself)."""

    async def members(self, group_id: str) -> frozenset[str]:
        raise GroupLookupError(group_id)


def _id_list(value: object) -> object:
    if isinstance(value, str):
        return frozenset(part.strip() for part in value.split(",") if part.strip())
    return value


IdList = Annotated[frozenset[str], NoDecode, BeforeValidator(_id_list)]
"""Comma-separated ids in the environment, a list in JSON."""


def _json_rules(value: object) -> object:
    """The per-command rules as JSON text is decoded: bad JSON is a `ValueError` (so the
    settings name the variable, never a traceback)."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as error:
            raise ValueError(
                f"not JSON ({error.msg} at character {error.pos}); "
                'write e.g. {"ticket": {"users": ["U012AB3CD"]}}'
            ) from None
    if isinstance(value, dict):
        for command, rule in value.items():
            unknown = (
                sorted(set(rule) - set(AccessRule.model_fields)) if isinstance(rule, dict) else []
            )
            if unknown:
                raise ValueError(
                    f"the rule for {command!r} has {', '.join(map(repr, unknown))}, which is no "
                    f"key of a rule (the keys: {', '.join(AccessRule.model_fields)})"
                )
    return value


class AccessRule(BaseModel):
    """Who may run a command, and where: every list empty means anyone, anywhere.

    Slack: a user passes when `users` is empty (and `usergroups` too), holds `*`, names the
    user, or one of `usergroups` has the user as a member; the channel passes when
    `channels` is empty or names it. Both must pass. MCP: a caller passes when `subjects`,
    `emails` and `groups` are all empty, `subjects` holds `*`, or one of them names the
    caller's `sub`, email or one of its groups.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")  # a misspelt key must not open a rule

    users: frozenset[str] = frozenset()
    usergroups: frozenset[str] = frozenset()
    channels: frozenset[str] = frozenset()
    subjects: frozenset[str] = frozenset()
    emails: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    closed: bool = Field(default=False, description="nobody may run it")

    @field_validator(*_SLACK_KINDS, *_MCP_KINDS, mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return _id_list(value)

    @property
    def anyone(self) -> bool:
        """Open to every Slack user (in the channels named, if any)."""
        if self.closed:
            return False
        return EVERYONE in self.users or not (self.users or self.usergroups)

    @property
    def anyone_on_mcp(self) -> bool:
        """Open to every MCP caller whose credential carries the tool's scope."""
        if self.closed:
            return False
        return EVERYONE in self.subjects or not (self.subjects or self.emails or self.groups)

    def names(self, kinds: Iterable[str]) -> list[str]:
        """Those of `kinds` (field names) this rule sets."""
        return [kind for kind in kinds if getattr(self, kind)]


def _rules_of_one_surface(
    rules: dict[str, AccessRule], foreign: tuple[str, ...], surface: str, other: str
) -> dict[str, AccessRule]:
    for command, rule in rules.items():
        named = rule.names(foreign)
        if named:
            raise ValueError(
                f"the rule for {command!r} names {', '.join(named)}, which are {other} "
                f"identities: a {surface} rule names only {surface} ones (put it in "
                f"CRMOPS_{other.upper()}_COMMANDS)"
            )
    return rules


CommandRules = Annotated[dict[str, AccessRule], NoDecode, BeforeValidator(_json_rules)]
"""Per-command rules: JSON in the environment, checked for unknown keys (`_json_rules`)."""


class SlackAccessSettings(BaseSettings):
    """`CRMOPS_SLACK_*`: which users, user groups and channels may run reads and writes."""

    model_config = SettingsConfigDict(env_prefix="CRMOPS_SLACK_", **_COMMON)  # type: ignore[typeddict-item]

    write_users: IdList = frozenset()
    write_usergroups: IdList = frozenset()
    write_channels: IdList = frozenset()
    read_users: IdList = frozenset({EVERYONE})
    read_usergroups: IdList = frozenset()
    read_channels: IdList = frozenset()
    commands: CommandRules = Field(
        default_factory=dict,
        description="JSON: per-command rules replacing the read/write default for that command",
    )

    @field_validator("commands")
    @classmethod
    def _slack_kinds_only(cls, rules: dict[str, AccessRule]) -> dict[str, AccessRule]:
        return _rules_of_one_surface(rules, _MCP_KINDS, "slack", "mcp")

    @property
    def write_rule(self) -> AccessRule:
        # Writes stay closed until someone is named: an empty rule would mean "anyone".
        return AccessRule(
            users=self.write_users,
            usergroups=self.write_usergroups,
            channels=self.write_channels,
            closed=not (self.write_users or self.write_usergroups),
        )

    @property
    def read_rule(self) -> AccessRule:
        return AccessRule(
            users=self.read_users, usergroups=self.read_usergroups, channels=self.read_channels
        )

    def rule_for(self, command: str, *, writes: bool) -> AccessRule:
        """The rule for `command`: its own from `commands`, else the read or write default."""
        own = self.commands.get(command)
        if own is not None:
            return own
        return self.write_rule if writes else self.read_rule


class McpAccessSettings(BaseSettings):
    """`CRMOPS_MCP_*` access rules: which token subjects, emails and groups may call which
    tools, on top of the token's scopes. Nothing named: every caller the scopes allow."""

    model_config = SettingsConfigDict(env_prefix="CRMOPS_MCP_", **_COMMON)  # type: ignore[typeddict-item]

    write_subjects: IdList = frozenset()
    write_emails: IdList = frozenset()
    write_groups: IdList = frozenset()
    read_subjects: IdList = frozenset()
    read_emails: IdList = frozenset()
    read_groups: IdList = frozenset()
    commands: CommandRules = Field(
        default_factory=dict,
        description="JSON: per-tool rules replacing the read/write default for that tool",
    )

    @field_validator("commands")
    @classmethod
    def _tools_and_mcp_kinds_only(cls, rules: dict[str, AccessRule]) -> dict[str, AccessRule]:
        known = {row.name for row in TOOLS}
        unknown = sorted(set(rules) - known)
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)} is no tool: the keys are tool names "
                f"({', '.join(sorted(known))})"
            )
        return _rules_of_one_surface(rules, _SLACK_KINDS, "mcp", "slack")

    @property
    def write_rule(self) -> AccessRule:
        return AccessRule(
            subjects=self.write_subjects, emails=self.write_emails, groups=self.write_groups
        )

    @property
    def read_rule(self) -> AccessRule:
        return AccessRule(
            subjects=self.read_subjects, emails=self.read_emails, groups=self.read_groups
        )

    def rule_for(self, command: str, *, writes: bool) -> AccessRule:
        """The rule for tool `command`: its own from `commands`, else the read or write one."""
        own = self.commands.get(command)
        if own is not None:
            return own
        return self.write_rule if writes else self.read_rule


class Policy:
    """Decides whether a principal may run a command: the Slack rules for a Slack user, the
    MCP rules for an MCP caller; the CLI always may.

    `groups` reads Slack user groups (the bot passes one over the Web API); a group named
    in `Principal.groups` counts without a lookup. A surface's settings left out are its
    defaults (not read from the environment: `policy_from_settings` reads them).
    """

    def __init__(
        self,
        slack: SlackAccessSettings | None = None,
        mcp: McpAccessSettings | None = None,
        groups: GroupDirectory | None = None,
    ) -> None:
        self.slack = slack if slack is not None else SlackAccessSettings.model_construct()
        self.mcp = mcp if mcp is not None else McpAccessSettings.model_construct()
        self._groups = groups or NoGroups()

    async def refusal(self, principal: Principal, command: str, *, writes: bool) -> str | None:
        """None when `principal` may run `command`; otherwise a sentence saying why and which
        setting would allow it (no secret in it: ids and names only)."""
        if principal.surface == "slack":
            return await self._slack_refusal(principal, command, writes=writes)
        if principal.surface == "mcp" and not is_local_mcp(principal):
            return _mcp_refusal(self.mcp, principal, command, writes=writes)
        return None  # the CLI, or stdio: the person at the machine, who holds the keys

    async def allows(self, principal: Principal, command: str, *, writes: bool) -> bool:
        """Whether `principal` may run `command` (e.g. to list only what a caller may use)."""
        return await self.refusal(principal, command, writes=writes) is None

    async def _slack_refusal(
        self, principal: Principal, command: str, *, writes: bool
    ) -> str | None:
        rule = self.slack.rule_for(command, writes=writes)
        # Phrases: English in the audit log, the user's language where the bot shows them.
        if rule.closed:
            return Phrase(
                marked(
                    "`/crm {command}` is switched off: an admin sets CRMOPS_SLACK_WRITE_USERS "
                    "or CRMOPS_SLACK_WRITE_USERGROUPS to allow it."
                ),
                command=command,
            )
        if rule.channels and principal.channel not in rule.channels:
            where = ", ".join(f"<#{channel}>" for channel in sorted(rule.channels))
            return Phrase(
                marked("`/crm {command}` can only be run in {where}."), command=command, where=where
            )
        if not await self._slack_user_allowed(rule, principal):
            return Phrase(
                marked(
                    "You are not allowed to run `/crm {command}`; ask an admin to add you to "
                    "its users or user groups."
                ),
                command=command,
            )
        return None

    async def _slack_user_allowed(self, rule: AccessRule, principal: Principal) -> bool:
        if rule.anyone or principal.subject in rule.users:
            return True
        if rule.usergroups & principal.groups:
            return True
        for group in sorted(rule.usergroups):
            try:
                if principal.subject in await self._groups.members(group):
                    return True
            except GroupLookupError:
                # A group we cannot read grants nothing; the other groups may still.
                continue
        return False


def _mcp_refusal(
    settings: McpAccessSettings, principal: Principal, command: str, *, writes: bool
) -> str | None:
    rule = settings.rule_for(command, writes=writes)
    if rule.closed:
        return f"`{command}` is switched off for MCP callers by its rule in CRMOPS_MCP_COMMANDS."
    if _mcp_caller_allowed(rule, principal):
        return None
    if command in settings.commands:
        where = "its rule in CRMOPS_MCP_COMMANDS (`subjects`, `emails` or `groups`)"
    else:
        kind = "WRITE" if writes else "READ"
        where = f"CRMOPS_MCP_{kind}_SUBJECTS, _{kind}_EMAILS or _{kind}_GROUPS"
    return (
        f"{_describe(principal)} may not call `{command}`; ask an admin to add your subject, "
        f"email or group to {where}."
    )


def _mcp_caller_allowed(rule: AccessRule, principal: Principal) -> bool:
    if rule.anyone_on_mcp:
        return True
    if not principal.verified:
        return False
    emails = {email.casefold() for email in rule.emails}
    return (
        _subject(principal) in rule.subjects
        or (principal.email is not None and principal.email.casefold() in emails)
        or bool(rule.groups & principal.groups)
    )


def _subject(principal: Principal) -> str:
    """The subject a rule names: a token's `sub`, or `static-token` for the shared token
    only (an issuer's user whose `sub` happens to be "static-token" is not the token)."""
    if principal.subject == STATIC_TOKEN_SUBJECT and principal.issuer is not None:
        return f"{principal.issuer} {principal.subject}"
    return principal.subject


def _describe(principal: Principal) -> str:
    """The caller as a refusal names them: "You (subject …, email …)", cleaned and bounded
    as the audit log keeps names (a claim is the issuer's text, not ours)."""
    known = [f"subject {actor_name(principal.subject)}"]
    if principal.email:
        known.append(f"email {actor_name(principal.email)}")
    return f"You ({', '.join(known)})"


def policy_from_settings(
    env_file: Path | None = Path(".env"), *, groups: GroupDirectory | None = None
) -> Policy:
    """The policy from the environment, then `env_file`: `ConfigurationError` naming a rule
    setting that does not parse (bad JSON, a rule naming the other surface's kinds)."""
    return Policy(
        read_settings(SlackAccessSettings, env_file, "slack access"),
        read_settings(McpAccessSettings, env_file, "mcp access"),
        groups,
    )


async def record_refusal(
    services: Services, principal: Principal, operation: str, reason: str, *, vendor: str = ""
) -> None:
    """Audit a write refused before it reached its tool (by the policy, a missing scope, or
    the user declining its confirmation):
    `outcome="failed"`, `error="refused: <reason>"`, under the tool's name `operation`.
    Never raises: losing an audit line must not keep the refusal from the caller."""
    entry = AuditEntry(
        actor=Actor.of(principal),
        vendor=vendor,
        operation=operation,
        target="",
        sent={},
        outcome="failed",
        error=f"refused: {reason}",
    )
    try:
        await services.store.audit.record(entry)
    except Exception:
        log.exception("could not record the refused %s", operation)


async def check_access(
    policy: Policy,
    services: Services,
    principal: Principal,
    command: str,
    *,
    writes: bool,
    vendor: str = "",
) -> None:
    """Return when `principal` may run `command` (on MCP: the tool's name, `create_ticket`);
    otherwise audit the refusal (a write only, `record_refusal`) and raise
    `AccessDeniedError` saying why and whom to ask.

    The token's scopes are checked before this, by the caller: the policy is on top of them.
    """
    refusal = await policy.refusal(principal, command, writes=writes)
    if refusal is None:
        return
    if writes:
        await record_refusal(services, principal, command, refusal, vendor=vendor)
    raise AccessDeniedError(refusal, command=command)
