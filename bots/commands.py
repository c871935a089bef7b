"""`/crm` text → a typed subcommand, or a `CommandError` saying how to write it.

    parse_command('ticket "无法登录" "客户说登录页报错 502" --priority 2')
    # TicketCommand(subject='无法登录', message='客户说登录页报错 502', priority='2')
    parse_command("staff 王")
    # ToolCommand(name='staff', arguments={'search': '王'})
    parse_command("tickets 7d")
    # ToolCommand(name='tickets', arguments={'created_order': 'desc', 'limit': 10,
    #                                        'created_start': <now - 7 days, UTC>})

A read-only tool's subcommand is one `ToolSubcommand` row in `SUBCOMMANDS`: its help, its
row of the tool table, the tool function, how the words after its name become the
function's keyword arguments (`no_words`, `rest_as`, or any `ArgumentReader`) and how its
result is shown (a `bots.blocks` renderer; by default `blocks.result_message`). The bot
runs every such row the same way; writes (`ticket`, `import`) have flows of their own, and
`audit` (admins only) is answered by `bots.browse`.

Quotes may be straight or typographic (Slack clients often turn " into “ ”).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel

from bots.blocks import (
    Asked,
    Message,
    customer_message,
    result_message,
    staff_message,
)
from bots.browse import NEWEST_TICKETS, newest_tickets, tickets_page_message
from bots.locale import subcommand_name
from tools.catalog import VENDORS, Vendor
from tools.customers import query_customer
from tools.errors import CrmopsError
from tools.i18n import marked, tr
from tools.observability.calls import observe_tool
from tools.services import Services
from tools.staff import list_staff
from tools.table import (
    CREATE_TICKET,
    IMPORT_CUSTOMER,
    LIST_STAFF,
    LIST_TICKETS,
    LOOKUP_ERROR_CODE,
    QUERY_CUSTOMER,
    ToolRow,
)
from tools.tickets import list_tickets

ImportVendor = Literal["socialepoch", "xiaolanben"]
IMPORT_VENDORS: tuple[ImportVendor, ...] = ("socialepoch", "xiaolanben")
TICKET_OPTIONS = ("priority", "type", "description")
_AGO = re.compile(r"(?P<count>[0-9]{1,4})(?P<unit>[mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

Arguments = dict[str, Any]
ArgumentReader = Callable[[list[str]], Arguments]
"""The words after a subcommand's name → its tool's keyword arguments; raises
`CommandError(problem)` for words that do not fit (`parse_command` adds the usage)."""
R = TypeVar("R", bound=BaseModel)


class CommandError(CrmopsError):
    """Text that is not a valid `/crm` command; the message says how to write it."""


@dataclass(frozen=True)
class Subcommand:
    """One `/crm` subcommand as `/crm help` shows it, over its tool's row of the tool table.

    `writes` comes from the tool: a write is asked for confirmation, and its tool records it
    in the audit log under the tool's name.
    """

    name: str
    usage: str
    summary: str
    example: str
    tool: ToolRow | None = None
    summary_values: dict[str, object] = field(default_factory=dict)
    """What fills the `{placeholders}` of `summary` (shown with `tr(summary, **values)`)."""

    @property
    def writes(self) -> bool:
        return self.tool is not None and self.tool.writes


def no_words(**fixed: Any) -> ArgumentReader:
    """Nothing may follow the subcommand's name; the tool is called with `fixed`."""

    def read(words: list[str]) -> Arguments:
        if words:
            got = " ".join(words)
            raise CommandError(tr("Nothing goes after the subcommand (got `{got}`).", got=got))
        return dict(fixed)

    return read


def rest_as(name: str, *, join: str = " ", give: str | None = None) -> ArgumentReader:
    """The words after the subcommand's name, joined by `join`, as the argument `name`:
    left out when there are none, unless `give` is set, the sentence asking for it."""

    def read(words: list[str]) -> Arguments:
        if words:
            return {name: join.join(words)}
        if give is not None:
            raise CommandError(tr(give))
        return {}

    return read


@dataclass(frozen=True, kw_only=True)
class ToolSubcommand(Subcommand, Generic[R]):
    """A read-only tool's subcommand: parsed, run and shown by one generic path.

    `run` is the tool function, called as `run(services, **arguments)` with what
    `arguments` reads from the words after the name; `message(result, arguments)` shows
    its result (default: `blocks.result_message` under the tool's title). `doing` finishes
    "Could not …" when the call fails.
    """

    tool: ToolRow
    run: Callable[..., Awaitable[R]]
    doing: str
    arguments: ArgumentReader = field(default_factory=no_words)
    message: Callable[[R, Asked], Message] | None = None

    def __post_init__(self) -> None:
        if self.tool.writes:
            # A write needs a confirmation flow; this path would run it at once.
            raise ValueError(f"/crm {self.name}: {self.tool.name} writes; give it a flow")

    async def answer(self, services: Services, arguments: Arguments) -> Message:
        """Run the tool with `arguments` and show its result; raises what the tool raises."""
        result = await observe_tool(self.tool.name, "slack", self.run(services, **arguments))
        if self.message is None:
            return result_message(self.tool.title, result)
        return self.message(result, arguments)


SUBCOMMANDS: dict[str, Subcommand] = {
    each.name: each
    for each in (
        Subcommand("help", "/crm help", marked("what each subcommand does"), "/crm help"),
        Subcommand(
            "error",
            marked("/crm error <code or message> [vendor]"),
            marked("what a SocialEpoch, Xiaolanben or Bangwo8 error means and what to do"),
            "/crm error 502 socialepoch",
            LOOKUP_ERROR_CODE,
        ),
        ToolSubcommand(
            "staff",
            marked("/crm staff [name or mobile]"),
            marked("Xiaolanben staff: id, name, mobile, department"),
            "/crm staff 王",
            tool=LIST_STAFF,
            run=list_staff,
            doing=marked("list the staff"),
            arguments=rest_as("search"),
            message=staff_message,
        ),
        ToolSubcommand(
            "customer",
            marked("/crm customer <whatsapp number>"),
            marked("a SocialEpoch customer by WhatsApp number"),
            "/crm customer 8618221733141",
            tool=QUERY_CUSTOMER,
            run=query_customer,
            doing=marked("look up the customer"),
            # People paste numbers with spaces: "+86 182 2173 3141".
            arguments=rest_as(
                "whatsapp", join="", give=marked("Give the customer's WhatsApp number.")
            ),
            message=customer_message,
        ),
        ToolSubcommand(
            "tickets",
            marked("/crm tickets [since: 2026-11-30, 2026-11-30T09:00, 7d, 12h, 30m]"),
            marked(
                "the newest Bangwo8 helpdesk tickets, {count} at a time (More for the "
                "next): id, subject, status, created"
            ),
            "/crm tickets 7d",
            tool=LIST_TICKETS,
            summary_values={"count": NEWEST_TICKETS},
            run=list_tickets,
            doing=marked("list the tickets"),
            arguments=lambda words: newest_tickets(since(words)),
            message=tickets_page_message,
        ),
        Subcommand(
            "ticket",
            marked(
                '/crm ticket "<subject>" "<message>" [--priority N] [--type N] [--description T]'
            ),
            marked("create a Bangwo8 helpdesk ticket, after you confirm (no arguments: a form)"),
            '/crm ticket "无法登录" "客户说登录页报错 502" --priority 2',
            CREATE_TICKET,
        ),
        Subcommand(
            "import",
            "/crm import [socialepoch|xiaolanben]",
            marked("import customers from a CSV or XLSX file: preview, then confirm"),
            "/crm import xiaolanben",
            IMPORT_CUSTOMER,
        ),
        Subcommand(
            "audit",
            "/crm audit",
            marked("the latest writes: who, what, from where, how it ended (admins only)"),
            "/crm audit",
        ),
    )
}
TOOL_SUBCOMMANDS: dict[str, ToolSubcommand[Any]] = {
    name: sub for name, sub in SUBCOMMANDS.items() if isinstance(sub, ToolSubcommand)
}


@dataclass(frozen=True)
class HelpCommand:
    name: Literal["help"] = "help"


@dataclass(frozen=True)
class ErrorCommand:
    code: str
    vendor: Vendor | None = None
    name: Literal["error"] = "error"


@dataclass(frozen=True)
class ToolCommand:
    """A `ToolSubcommand` asked for, with the keyword arguments its tool is called with."""

    name: str
    arguments: Arguments = field(default_factory=dict)

    @property
    def subcommand(self) -> ToolSubcommand[Any]:
        return TOOL_SUBCOMMANDS[self.name]


@dataclass(frozen=True)
class TicketCommand:
    subject: str
    message: str
    options: dict[str, str] = field(default_factory=dict)
    name: Literal["ticket"] = "ticket"
    form: bool = False
    """`/crm ticket` with no arguments: open the ticket modal (`bots.ticket_modal`)."""


@dataclass(frozen=True)
class ImportCommand:
    vendor: ImportVendor | None = None
    name: Literal["import"] = "import"


@dataclass(frozen=True)
class AuditCommand:
    name: Literal["audit"] = "audit"


Command = HelpCommand | ErrorCommand | ToolCommand | TicketCommand | ImportCommand | AuditCommand

_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'", "「": '"', "」": '"'})


def parse_command(text: str) -> Command:
    """The subcommand `text` asks for; `CommandError` with its usage when it is malformed."""
    words = _split(text)
    if not words or subcommand_name(words[0]) == "help":
        return HelpCommand()
    name, args = subcommand_name(words[0]), words[1:]
    if name == "error":
        return _error(args)
    if name in TOOL_SUBCOMMANDS:
        return _tool(name, args)
    if name == "ticket":
        return _ticket(args)
    if name == "import":
        return _import(args)
    if name == "audit":
        if args:
            raise _usage("audit", tr("Nothing goes after `audit`."))
        return AuditCommand()
    known = ", ".join(f"`{each}`" for each in SUBCOMMANDS)
    raise CommandError(
        tr("Unknown subcommand `{word}`. Try one of {known}.", word=words[0], known=known)
    )


def _split(text: str) -> list[str]:
    try:
        return shlex.split(text.translate(_QUOTES))
    except ValueError as exc:
        raise CommandError(
            tr("Cannot read the command: {problem} (close every quote).", problem=exc)
        ) from None


def _usage(name: str, problem: str) -> CommandError:
    sub = SUBCOMMANDS[name]
    usage = tr("Usage: {usage}", usage="`" + tr(sub.usage) + "`")
    return CommandError(
        f"{problem}\n{usage}\n" + tr("Example: {example}", example="`" + sub.example + "`")
    )


def _error(args: list[str]) -> ErrorCommand:
    if not args:
        raise _usage("error", tr("Give the error code or words of the error message."))
    vendor = args[-1].lower()
    if len(args) > 1 and vendor in VENDORS:
        return ErrorCommand(code=" ".join(args[:-1]), vendor=vendor)
    return ErrorCommand(code=" ".join(args))


def _tool(name: str, args: list[str]) -> ToolCommand:
    try:
        return ToolCommand(name, TOOL_SUBCOMMANDS[name].arguments(args))
    except CommandError as exc:
        raise _usage(name, str(exc)) from None


def since(words: list[str], *, now: datetime | None = None) -> datetime | date | None:
    """`/crm tickets [since]`: a day (`2026-11-30`), a moment (`2026-11-30T09:00`, China
    time unless it has an offset) or a time ago (`7d`, `12h`, `30m`, `2w`); None for none."""
    if not words:
        return None
    if len(words) > 1:
        raise CommandError(tr("Give one time: a date, a date and time, or e.g. `7d`."))
    word = words[0].lower()
    ago = _AGO.fullmatch(word)
    if ago is not None:
        delta = timedelta(**{_UNITS[ago["unit"]]: int(ago["count"])})
        return (now or datetime.now(UTC)).replace(microsecond=0) - delta
    try:
        return date.fromisoformat(word) if len(word) == 10 else datetime.fromisoformat(words[0])
    except ValueError:
        raise CommandError(
            tr(
                "`{word}` is not a time: write 2026-11-30, 2026-11-30T09:00, or 7d / 12h / 30m.",
                word=words[0],
            )
        ) from None


def _ticket(args: list[str]) -> TicketCommand:
    if not args:
        return TicketCommand(subject="", message="", form=True)
    positional: list[str] = []
    options: dict[str, str] = {}
    words = iter(args)
    for word in words:
        if not word.startswith("--"):
            positional.append(word)
            continue
        option, _, value = word[2:].partition("=")
        if option not in TICKET_OPTIONS:
            raise _usage("ticket", tr("Unknown option `--{option}`.", option=option))
        value = value or next(words, "")
        if not value:
            raise _usage("ticket", tr("`--{option}` needs a value.", option=option))
        options[option] = value
    if len(positional) != 2:
        raise _usage(
            "ticket",
            tr(
                "Give a subject and a message, each in quotes (got {count} part(s)).",
                count=len(positional),
            ),
        )
    return TicketCommand(subject=positional[0], message=positional[1], options=options)


def _import(args: list[str]) -> ImportCommand:
    if not args:
        return ImportCommand()
    vendor = args[0].lower()
    if len(args) > 1 or vendor not in IMPORT_VENDORS:
        raise _usage("import", tr("Name the vendor to import into: socialepoch or xiaolanben."))
    return ImportCommand(vendor=vendor)
