"""`crmops staff`, `customer`, `ticket`, `tickets`: the tool functions at a terminal.

    crmops staff 王                                   # Xiaolanben staff whose name has 王
    crmops customer "+86 182 2173 3141"               # a SocialEpoch customer by WhatsApp number
    crmops ticket "无法登录" --message "登录页报错 502" --priority 2
    crmops tickets --since 2025-01-01 --limit 50 --json

Each command calls the same tool function as the MCP tool and the Slack command, prints a
table (or, with `--json`, the tool's result model as JSON on stdout, for scripts), and exits
as the rest of `crmops`: 0 done, 2 usage, 65 bad input, 69 the vendor failed or refused, 78
configuration missing, 130 interrupted. A failure is one line on stderr (and, with `--json`,
`{"error": {...}}` on stdout). `crmops ticket` records the OS user in the audit log.

A new command is one function here with `@commands.command("NAME")`: `crmops` learns its name
and its one-line help (the docstring's first line) from `commands`. For that `crmops --help`
imports this module, so it stays cheap to import: typer and the standard library at load;
each command imports the tool it runs, and `_run`/`_show` the services, settings and rich.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from tools.errors import InputError, Problem
from tools.exit_codes import failures_as_exit_codes
from tools.i18n import marked, tr
from tools.table import MAX_STAFF, MAX_TICKETS_PER_PAGE

if TYPE_CHECKING:
    from pydantic import BaseModel
    from rich.console import Console

    from tools.services import Services
    from tools.tickets import CodeValue

Result = TypeVar("Result", bound="BaseModel")

AsJson = Annotated[
    bool, typer.Option("--json", help=marked("print the result as JSON (for scripts)"))
]
EnvFile = Annotated[
    Path, typer.Option("--env-file", help=marked("settings file read after the environment"))
]

commands = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
"""The tool commands: `crmops` serves each under its name; also `python -m server.cli_tools`."""


# --- the commands ---------------------------------------------------------------------------


@commands.command(
    "staff",
    help=marked("List Xiaolanben (小蓝本) staff: the staffId that owns imported customers."),
)
def staff(
    search: Annotated[
        str | None, typer.Argument(help=marked("a name fragment or a full mobile number"))
    ] = None,
    *,
    limit: Annotated[
        int, typer.Option(min=1, max=MAX_STAFF, help=marked("at most this many"))
    ] = 50,
    as_json: AsJson = False,
    env_file: EnvFile = Path(".env"),
) -> None:
    """List Xiaolanben (小蓝本) staff: the staffId that owns imported customers."""
    from tools.staff import list_staff  # noqa: PLC0415 - start-up cost: see the module doc

    result = _run(
        "list_staff", env_file, as_json, lambda s: list_staff(s, search=search, limit=limit)
    )
    _show(result, as_json)


@commands.command(
    "customer", help=marked("Look up a SocialEpoch (WhatsApp SCRM) customer by WhatsApp number.")
)
def customer(
    whatsapp: Annotated[
        list[str],
        typer.Argument(
            help=marked(
                "the WhatsApp number with country code, e.g. 8618221733141 or +86 182 2173 3141"
            )
        ),
    ],
    *,
    as_json: AsJson = False,
    env_file: EnvFile = Path(".env"),
) -> None:
    """Look up a SocialEpoch (WhatsApp SCRM) customer by WhatsApp number."""
    from tools.customers import query_customer  # noqa: PLC0415 - start-up cost: see the module doc

    number = "".join(whatsapp)  # people paste numbers with spaces: +86 182 2173 3141
    result = _run("query_customer", env_file, as_json, lambda s: query_customer(s, whatsapp=number))
    _show(result, as_json)
    if result.not_found and not as_json:
        missing = ", ".join(result.not_found)
        _console(stderr=True).print(tr("not found: {numbers}", numbers=missing), markup=False)


@commands.command("ticket", help=marked("Create a Bangwo8 (帮我吧) helpdesk ticket."))
def ticket(
    subject: Annotated[str, typer.Argument(help=marked("the ticket's title"))],
    *,
    message: Annotated[str, typer.Option("--message", "-m", help=marked("the customer's request"))],
    priority: Annotated[
        str | None, typer.Option(help=marked("priorityLevel id (e.g. 1-4)"))
    ] = None,
    ticket_type: Annotated[str | None, typer.Option("--type", help=marked("ticketType id"))] = None,
    description: Annotated[str | None, typer.Option(help=marked("internal description"))] = None,
    request_id: Annotated[
        str | None,
        typer.Option(help=marked("the request id of an earlier attempt whose outcome is unknown")),
    ] = None,
    as_json: AsJson = False,
    env_file: EnvFile = Path(".env"),
) -> None:
    """Create a Bangwo8 (帮我吧) helpdesk ticket."""
    # Start-up cost: see the module doc.
    from tools.storage.audit import Actor  # noqa: PLC0415
    from tools.tickets import create_ticket  # noqa: PLC0415

    result = _run(
        "create_ticket",
        env_file,
        as_json,
        lambda s: create_ticket(
            s,
            subject=subject,
            message=message,
            priority=_code(priority),
            ticket_type=_code(ticket_type),
            description=description,
            request_id=request_id,
            actor=Actor.local_user("cli"),
        ),
    )
    _show(result, as_json)


@commands.command("tickets", help=marked("List Bangwo8 (帮我吧) helpdesk tickets, newest first."))
def tickets(
    *,
    since: Annotated[
        str | None,
        typer.Option(help=marked("created at or after: yyyy-MM-dd or yyyy-MM-ddTHH:MM:SS")),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help=marked("created at or before (a date: the whole day)"))
    ] = None,
    page: Annotated[int, typer.Option(min=1, help=marked("page number, from 1"))] = 1,
    limit: Annotated[
        int, typer.Option(min=1, max=MAX_TICKETS_PER_PAGE, help=marked("tickets per page"))
    ] = 20,
    as_json: AsJson = False,
    env_file: EnvFile = Path(".env"),
) -> None:
    """List Bangwo8 (帮我吧) helpdesk tickets, newest first."""
    from tools.tickets import list_tickets  # noqa: PLC0415 - start-up cost: see the module doc

    result = _run(
        "list_tickets",
        env_file,
        as_json,
        lambda s: list_tickets(
            s,
            created_start=_when("--since", since),
            created_end=_when("--until", until),
            created_order="desc",
            page=page,
            limit=limit,
        ),
    )
    _show(result, as_json)


# --- running a tool -------------------------------------------------------------------------


def _run(
    tool: str, env_file: Path, as_json: bool, call: Callable[[Services], Awaitable[Result]]
) -> Result:
    """`call` (of the tool named `tool`) with the services of the settings; a failure exits
    with its code."""
    # Start-up cost: see the module doc.
    import asyncio  # noqa: PLC0415

    from tools.observability.calls import observe_tool  # noqa: PLC0415
    from tools.services import Services  # noqa: PLC0415
    from tools.settings import Settings  # noqa: PLC0415

    async def run() -> Result:
        async with Services(Settings.load(env_file=env_file)) as services:
            return await observe_tool(tool, "cli", call(services))  # spans, metrics

    with failures_as_exit_codes(as_json=as_json):
        return asyncio.run(run())
    raise AssertionError("unreachable: failures exit")  # pragma: no cover


def _show(result: BaseModel, as_json: bool) -> None:
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        return
    from server.render import render  # noqa: PLC0415 - start-up cost: see the module doc

    render(_console(), result)


def _console(*, stderr: bool = False) -> Console:
    from rich.console import Console  # noqa: PLC0415 - start-up cost: see the module doc

    return Console(stderr=stderr)


def _code(value: str | None) -> CodeValue | None:
    """An id as the vendor takes it: digits as a number, anything else as given."""
    if value is None:
        return None
    return int(value) if value.strip().isdigit() else value


def _when(option: str, text: str | None) -> datetime | date | None:
    if text is None:
        return None
    try:
        if len(text) <= len("yyyy-mm-dd"):
            return date.fromisoformat(text)
        return datetime.fromisoformat(text)
    except ValueError:
        raise InputError(
            [
                Problem(
                    option, tr("{text}: write yyyy-MM-dd or yyyy-MM-ddTHH:MM:SS", text=repr(text))
                )
            ],
            summary=tr("invalid date"),
        ) from None


def standalone_app() -> typer.Typer:
    """A Typer app with only these commands: for tests and `python -m server.cli_tools`."""
    return commands


if __name__ == "__main__":  # pragma: no cover - `python -m server.cli_tools staff ...`
    standalone_app()(args=sys.argv[1:])
