"""`/crm` text → a typed subcommand, or a `CommandError` saying how to write it.

    parse_command('ticket "无法登录" "客户说登录页报错 502" --priority 2')
    # TicketCommand(subject='无法登录', message='客户说登录页报错 502', priority='2')

Quotes may be straight or typographic (Slack clients often turn " into “ ”).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Literal

from tools.catalog import VENDORS, Vendor
from tools.errors import CrmopsError
from tools.table import (
    CREATE_TICKET,
    IMPORT_CUSTOMER,
    LIST_STAFF,
    LOOKUP_ERROR_CODE,
    QUERY_CUSTOMER,
    ToolRow,
)

ImportVendor = Literal["socialepoch", "xiaolanben"]
IMPORT_VENDORS: tuple[ImportVendor, ...] = ("socialepoch", "xiaolanben")
TICKET_OPTIONS = ("priority", "type", "description")


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

    @property
    def writes(self) -> bool:
        return self.tool is not None and self.tool.writes


SUBCOMMANDS: dict[str, Subcommand] = {
    each.name: each
    for each in (
        Subcommand("help", "/crm help", "what each subcommand does", "/crm help"),
        Subcommand(
            "error",
            "/crm error <code or message> [vendor]",
            "what a SocialEpoch, Xiaolanben or Bangwo8 error means and what to do",
            "/crm error 502 socialepoch",
            LOOKUP_ERROR_CODE,
        ),
        Subcommand(
            "staff",
            "/crm staff [name or mobile]",
            "Xiaolanben staff: id, name, mobile, department",
            "/crm staff 王",
            LIST_STAFF,
        ),
        Subcommand(
            "customer",
            "/crm customer <whatsapp number>",
            "a SocialEpoch customer by WhatsApp number",
            "/crm customer 8618221733141",
            QUERY_CUSTOMER,
        ),
        Subcommand(
            "ticket",
            '/crm ticket "<subject>" "<message>" [--priority N] [--type N] [--description T]',
            "create a Bangwo8 helpdesk ticket, after you confirm",
            '/crm ticket "无法登录" "客户说登录页报错 502" --priority 2',
            CREATE_TICKET,
        ),
        Subcommand(
            "import",
            "/crm import [socialepoch|xiaolanben]",
            "import customers from a CSV or XLSX file: preview, then confirm",
            "/crm import xiaolanben",
            IMPORT_CUSTOMER,
        ),
    )
}


class CommandError(CrmopsError):
    """Text that is not a valid `/crm` command; the message says how to write it."""


@dataclass(frozen=True)
class HelpCommand:
    name: Literal["help"] = "help"


@dataclass(frozen=True)
class ErrorCommand:
    code: str
    vendor: Vendor | None = None
    name: Literal["error"] = "error"


@dataclass(frozen=True)
class StaffCommand:
    search: str | None = None
    name: Literal["staff"] = "staff"


@dataclass(frozen=True)
class CustomerCommand:
    whatsapp: str
    name: Literal["customer"] = "customer"


@dataclass(frozen=True)
class TicketCommand:
    subject: str
    message: str
    options: dict[str, str] = field(default_factory=dict)
    name: Literal["ticket"] = "ticket"


@dataclass(frozen=True)
class ImportCommand:
    vendor: ImportVendor | None = None
    name: Literal["import"] = "import"


Command = (
    HelpCommand | ErrorCommand | StaffCommand | CustomerCommand | TicketCommand | ImportCommand
)

_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'", "「": '"', "」": '"'})


def parse_command(text: str) -> Command:
    """The subcommand `text` asks for; `CommandError` with its usage when it is malformed."""
    words = _split(text)
    if not words or words[0].lower() == "help":
        return HelpCommand()
    name, args = words[0].lower(), words[1:]
    if name == "error":
        return _error(args)
    if name == "staff":
        return StaffCommand(search=" ".join(args) or None)
    if name == "customer":
        return _customer(args)
    if name == "ticket":
        return _ticket(args)
    if name == "import":
        return _import(args)
    known = ", ".join(f"`{each}`" for each in SUBCOMMANDS)
    raise CommandError(f"Unknown subcommand `{words[0]}`. Try one of {known}.")


def _split(text: str) -> list[str]:
    try:
        return shlex.split(text.translate(_QUOTES))
    except ValueError as exc:
        raise CommandError(f"Cannot read the command: {exc} (close every quote).") from None


def _usage(name: str, problem: str) -> CommandError:
    sub = SUBCOMMANDS[name]
    return CommandError(f"{problem}\nUsage: `{sub.usage}`\nExample: `{sub.example}`")


def _error(args: list[str]) -> ErrorCommand:
    if not args:
        raise _usage("error", "Give the error code or words of the error message.")
    vendor = args[-1].lower()
    if len(args) > 1 and vendor in VENDORS:
        return ErrorCommand(code=" ".join(args[:-1]), vendor=vendor)
    return ErrorCommand(code=" ".join(args))


def _customer(args: list[str]) -> CustomerCommand:
    if not args:
        raise _usage("customer", "Give the customer's WhatsApp number.")
    # People paste numbers with spaces: "+86 182 2173 3141".
    return CustomerCommand(whatsapp="".join(args))


def _ticket(args: list[str]) -> TicketCommand:
    positional: list[str] = []
    options: dict[str, str] = {}
    words = iter(args)
    for word in words:
        if not word.startswith("--"):
            positional.append(word)
            continue
        option, _, value = word[2:].partition("=")
        if option not in TICKET_OPTIONS:
            raise _usage("ticket", f"Unknown option `--{option}`.")
        value = value or next(words, "")
        if not value:
            raise _usage("ticket", f"`--{option}` needs a value.")
        options[option] = value
    if len(positional) != 2:
        raise _usage(
            "ticket",
            f"Give a subject and a message, each in quotes (got {len(positional)} part(s)).",
        )
    return TicketCommand(subject=positional[0], message=positional[1], options=options)


def _import(args: list[str]) -> ImportCommand:
    if not args:
        return ImportCommand()
    vendor = args[0].lower()
    if len(args) > 1 or vendor not in IMPORT_VENDORS:
        raise _usage("import", "Name the vendor to import into: socialepoch or xiaolanben.")
    return ImportCommand(vendor=vendor)
