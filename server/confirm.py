"""A person confirms a write: before `create_ticket` or a real `import_customer` sends
anything, the MCP client is asked (elicitation) with what would be sent.

    gate = WriteGate(services, mode="ask", before=check)    # CRMOPS_MCP_CONFIRM_WRITES
    parameter = gate.parameter(spec.name, tool_parameters)  # the adapter's extra parameter
    ...
    await gate.go_ahead(ctx, spec.name, outcome)  # in the tool body: ToolError if not confirmed

The question rides a `Resolve(...)` parameter returning `Elicit(...)`, the SDK's era-portable
way to ask: a client of protocol 2026-07-28 gets it back from the call ("input required") and
calls again with the answer, which any replica can take (the state of the call is sealed
under `request_state_security`, see `state_security`); a client of 2025-11-25 or older is sent
an `elicitation/create` request on the call's own stream, which needs a session (stdio, or
HTTP with `CRMOPS_MCP_SESSIONS=sticky`).

Modes: `ask` asks every client that can be asked and lets the others write unasked;
`require` refuses a write from a client that cannot be asked, saying how to allow it; `off`
never asks. A dry run sends nothing and is never asked. A decline, a cancel or an answer of
"no" sends nothing: the tool answers with an error saying so.

`before(ctx, tool, arguments)` runs first, on every round, before anything is asked: the
access policy, so a caller who may not write is never asked to confirm.

The answer is relayed by the client: it is what the client says its user chose, not proof
that a person approved.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from mcp.server.elicitation import (
    AcceptedElicitation,
    CancelledElicitation,
    DeclinedElicitation,
    ElicitationResult,
)
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Elicit, Resolve
from mcp.server.request_state import RequestStateSecurity
from mcp_types.version import is_version_at_least
from pydantic import BaseModel, Field, SecretStr

from server.identity import request_principal
from tools.catalog import DISPLAY_NAMES
from tools.errors import ConfigurationError, CrmopsError
from tools.policy import record_refusal
from tools.services import Services
from tools.settings import CrmopsSettings
from tools.table import CREATE_TICKET, IMPORT_CUSTOMER

log = logging.getLogger("crmops.mcp")

ConfirmMode = Literal["ask", "require", "off"]
CONFIRMED_TOOLS = frozenset({CREATE_TICKET.name, IMPORT_CUSTOMER.name})
"""The tools whose calls are confirmed: each sends something to a vendor."""

CONFIRMATION_PARAMETER = "confirmation"
"""The adapter's parameter the answer is injected into (never in an input schema)."""

MODERN_PROTOCOL = "2026-07-28"
"""From this protocol version on, a question is returned from the call ("input required")."""

SHOWN_RECORDS = 3
"""An import's question shows this many records as they would be sent."""
MAX_VALUE_SHOWN = 300
"""Characters of one value (a subject, a message, a record) a question shows."""

MIN_STATE_KEY = 32
_STATE_KEY_LABEL = b"crmops mcp request state v1"


class Confirmation(BaseModel):
    """The form the client shows: one yes or no."""

    send: bool = Field(title="Send", description="Yes: send it now. No: send nothing.")


@dataclass(frozen=True)
class Unasked:
    """Injected in place of an answer when nobody was asked, and why."""

    reason: str


Before = Callable[[Context[Any, Any], str, Mapping[str, Any]], Awaitable[None]]
"""A check of (the request, the tool, its arguments) run before asking (the access policy):
raises `CrmopsError` or `ToolError` to refuse."""


class WriteGate:
    """Asks the MCP client to confirm each write, as `mode` says (see the module docstring)."""

    def __init__(self, services: Services, *, mode: ConfirmMode, before: Before) -> None:
        self.services = services
        self.mode = mode
        self.before = before

    def parameter(self, tool: str, tool_parameters: Sequence[str]) -> inspect.Parameter:
        """The keyword-only parameter the adapter adds to `tool`'s function: MCPServer fills
        it by running the resolver (asking when it must) before the tool body runs."""
        resolver = self._resolver(tool, tool_parameters)
        annotation = Annotated[ElicitationResult[Confirmation], Resolve(resolver)]
        return inspect.Parameter(
            CONFIRMATION_PARAMETER, inspect.Parameter.KEYWORD_ONLY, annotation=annotation
        )

    async def go_ahead(self, ctx: Context[Any, Any], tool: str, outcome: object) -> None:
        """Return when the write may be sent; else audit the write as refused by the user and
        raise `ToolError` saying nothing was sent (declined, cancelled or answered no)."""
        why = _why_not_sent(outcome)
        if why is None:
            return
        await record_refusal(self.services, request_principal(ctx), tool, why)
        raise ToolError(_not_sent(tool, why))

    def _resolver(self, tool: str, tool_parameters: Sequence[str]) -> Callable[..., Any]:
        async def confirm(ctx: Context[Any, Any], **arguments: Any) -> Any:
            try:
                return await self._ask(ctx, tool, arguments)
            except CrmopsError as exc:
                raise ToolError(str(exc)) from exc

        parameters = [
            inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context),
            *(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY) for name in tool_parameters),
        ]
        # The SDK keys the question on the wire by the resolver's module and qualname: the
        # same on every replica, and one per tool.
        confirm.__name__ = confirm.__qualname__ = f"confirm_{tool}"
        confirm.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        confirm.__annotations__ = {"ctx": Context}
        return confirm

    async def _ask(self, ctx: Context[Any, Any], tool: str, arguments: Mapping[str, Any]) -> Any:
        await self.before(ctx, tool, arguments)
        if self.mode == "off":
            return Unasked("confirmation is off (CRMOPS_MCP_CONFIRM_WRITES=off)")
        message = await question(self.services, tool, arguments)
        if message is None:
            return Unasked("a dry run sends nothing")
        if not can_elicit(ctx):
            if self.mode == "require":
                raise ToolError(_cannot_ask(tool, ctx))
            log.info("%s not confirmed: the client cannot be asked", tool)
            return Unasked("the client cannot be asked")
        return Elicit(message, Confirmation)


def can_elicit(ctx: Context[Any, Any]) -> bool:
    """Whether the client of this request can be asked a form question now: it declared
    form elicitation, and either speaks 2026-07-28 (the question is returned from the call)
    or has a channel for the server's `elicitation/create` (stdio, a sticky HTTP session)."""
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    if elicitation is None or (elicitation.form is None and elicitation.url is not None):
        return False  # a bare `elicitation: {}` is form support; url-only is not
    version = ctx.protocol_version
    if version is not None and is_version_at_least(version, MODERN_PROTOCOL):
        return True
    return bool(ctx.session.can_send_request)


def _cannot_ask(tool: str, ctx: Context[Any, Any]) -> str:
    version = ctx.protocol_version or "unknown"
    return (
        f"{tool} was not run: this server requires a person to confirm each write "
        f"(CRMOPS_MCP_CONFIRM_WRITES=require) and this client cannot be asked (protocol "
        f"{version}: it declared no form elicitation, or, before protocol {MODERN_PROTOCOL}, "
        "has no session to be asked on). Nothing was sent. To allow it: use a client that "
        f"supports elicitation (protocol {MODERN_PROTOCOL} works on any replica; older ones "
        "need stdio or CRMOPS_MCP_SESSIONS=sticky), or have the operator set "
        "CRMOPS_MCP_CONFIRM_WRITES=ask, which lets a client that cannot be asked write unasked."
    )


def _why_not_sent(outcome: object) -> str | None:
    """None when `outcome` lets the write go (confirmed, or nobody was to be asked)."""
    if isinstance(outcome, AcceptedElicitation):
        if isinstance(outcome.data, Unasked):
            return None
        if isinstance(outcome.data, Confirmation) and outcome.data.send:
            return None
        return "the user answered no"
    if isinstance(outcome, DeclinedElicitation):
        return "the user declined"
    if isinstance(outcome, CancelledElicitation):
        return "the user cancelled the confirmation"
    return "no confirmation came back"


def _not_sent(tool: str, why: str) -> str:
    what = "no ticket was created" if tool == CREATE_TICKET.name else "no customer was imported"
    return (
        f"{tool}: nothing was sent, {what}: {why}. Do not call it again unless the user "
        "asks for it."
    )


# --- what would be sent ---------------------------------------------------------------------


async def question(services: Services, tool: str, arguments: Mapping[str, Any]) -> str | None:
    """The confirmation question for a call of `tool` with `arguments`: what would be sent.
    None when the call sends nothing (a dry run). A call that would be refused anyway raises
    its `CrmopsError` (e.g. `InputError` for a bad record) before anyone is asked."""
    if tool == CREATE_TICKET.name:
        return ticket_question(arguments)
    if tool == IMPORT_CUSTOMER.name:
        return await import_question(services, arguments)
    raise ConfigurationError(vendor="crmops", detail=f"no confirmation question for {tool}")


def ticket_question(arguments: Mapping[str, Any]) -> str:
    """The question "Create this ticket?" with its subject, first reply and the optional fields."""
    from tools.tickets import ticket_to_create  # noqa: PLC0415 - loads the Bangwo8 models

    given: dict[str, Any] = {
        name: arguments[name] for name in _TICKET_FIELDS if arguments.get(name) is not None
    }
    ticket = ticket_to_create(**given)
    sent = ticket.wire()["ticket"]
    lines = [
        "Create this ticket in Bangwo8 (帮我吧)?",
        f"Subject: {shown(ticket.subject)}",
        f"First reply: {shown(ticket.message)}",
    ]
    lines += [
        f"{label}: {shown(sent[key])}"
        for key, label in _TICKET_EXTRAS
        if sent.get(key) not in (None, "", [])
    ]
    return "\n".join(lines)


_TICKET_FIELDS = (
    "subject",
    "message",
    "description",
    "status",
    "priority",
    "ticket_type",
    "customer_user_id",
    "servicer_user_id",
    "cc_user_ids",
    "custom_fields",
)
_TICKET_EXTRAS = (
    ("descript", "Internal description"),
    ("ticketStatus", "Status"),
    ("priorityLevel", "Priority"),
    ("ticketType", "Type"),
    ("custUserId", "Customer"),
    ("servicerUserId", "Assigned agent"),
    ("ccUserIdList", "Copied"),
    ("custom_fields", "Custom fields"),
)


async def import_question(services: Services, arguments: Mapping[str, Any]) -> str | None:
    """The question "Import N customers into <vendor>?" with the first records as they would be sent
    (the import's own dry run, which sends nothing); None for a dry run."""
    if arguments.get("dry_run"):
        return None
    from tools.customers import import_customer  # noqa: PLC0415 - loads the bulk engine

    vendor = arguments["vendor"]
    plan = await import_customer(
        services,
        vendor=vendor,
        customers=arguments["customers"],
        dry_run=True,
        xiaolanben_flags=arguments.get("xiaolanben_flags"),
    )
    count = len(plan.would_send)
    name = DISPLAY_NAMES.get(vendor, vendor)
    lines = [
        f"Import {count} customer{'s' if count != 1 else ''} into {name} ({vendor}), "
        f"in {plan.batches} vendor call{'s' if plan.batches != 1 else ''}?",
        "Every record passed the checks; none was rejected.",
        f"The first {min(count, SHOWN_RECORDS)} as they would be sent:",
    ]
    lines += [
        f"{n}. {shown(record)}" for n, record in enumerate(plan.would_send[:SHOWN_RECORDS], 1)
    ]
    if count > SHOWN_RECORDS:
        lines.append(f"… and {count - SHOWN_RECORDS} more.")
    return "\n".join(lines)


def shown(value: object) -> str:
    """`value` as a question shows it: JSON for structures, on one line, control and bidi
    characters escaped (so a value cannot forge lines of the question), cut short."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    kept = "".join(
        char if char.isprintable() else ("\\n" if char == "\n" else f"\\u{ord(char):04x}")
        for char in text[: MAX_VALUE_SHOWN + 1]
    )
    return kept[:MAX_VALUE_SHOWN] + ("…" if len(text) > MAX_VALUE_SHOWN else "")


# --- the state of a question between two HTTP requests ---------------------------------------


def state_security(settings: CrmopsSettings) -> RequestStateSecurity | None:
    """How a 2026-07-28 call's sealed state (its question and answer) is protected between
    the two requests: under `CRMOPS_MCP_STATE_KEY`, else a key derived from
    `CRMOPS_MCP_TOKEN` (replicas share it already), else None (MCPServer's key per process:
    the second request must reach the same process). `ConfigurationError` for a short key."""
    key = settings.mcp_state_key
    if key is not None:
        return RequestStateSecurity(keys=[_state_key(key, "CRMOPS_MCP_STATE_KEY")])
    token = settings.mcp_token
    if token is not None and len(token.get_secret_value().strip()) >= MIN_STATE_KEY:
        derived = hmac.new(token.get_secret_value().strip().encode(), _STATE_KEY_LABEL, "sha256")
        return RequestStateSecurity(keys=[derived.digest()])
    if settings.oauth_issuer is not None:  # served over HTTP, perhaps by several replicas
        log.warning(
            "CRMOPS_MCP_STATE_KEY is not set: a confirmation asked by this process can only "
            "be answered to this process; set the same CRMOPS_MCP_STATE_KEY on every replica"
        )
    return None


def _state_key(key: SecretStr, name: str) -> bytes:
    value = key.get_secret_value().strip()
    if len(value) < MIN_STATE_KEY:
        raise ConfigurationError(
            vendor="crmops",
            detail=f"{name} must be at least {MIN_STATE_KEY} characters of secret randomness "
            "(python -c 'import secrets; print(secrets.token_urlsafe(32))'), the same on "
            "every replica",
        )
    return hashlib.sha256(_STATE_KEY_LABEL + value.encode()).digest()
