"""The `crmops` command line: one module per command, loaded only when that command is chosen.

    crmops mcp                          # MCP over stdio (server/cli_mcp.py)
    crmops errors 502                   # what a vendor error code means (server/cli_errors.py)
    crmops staff 王 / customer PHONE / ticket SUBJECT -m TEXT / tickets   (server/cli_tools.py)
    crmops import FILE --vendor xiaolanben   (server/cli_import.py)
    crmops doctor / crmops sandbox      (server/cli_doctor.py, server/cli_sandbox.py)
    crmops slack                        # from bots/, through the `crmops.commands` entry points

`COMMANDS` is the table of built-in commands: name, the module whose `register(app)` adds
it, and the one-line help `crmops --help` shows without importing the module. A command from
another package is an entry point in the `crmops.commands` group named for the command,
whose value is a `register(app)` function; it is loaded for `crmops --help` and when chosen
(its module must be cheap to import: server/ and bots/ never import each other).

A failure prints one line on stderr and exits with the code of its kind
(`tools.exit_codes.EXIT_CODES`): never a traceback for a failure crmops expected.
"""

from __future__ import annotations

import gc
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import typer
from typer import _click as click  # typer vendors its click: the types TyperGroup's API uses
from typer.core import TyperGroup

from tools.exit_codes import (
    EXIT_CODES,
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_STORAGE,
    EXIT_USAGE,
    EXIT_VENDOR,
)

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

PLUGIN_GROUP = "crmops.commands"

Register = Callable[[typer.Typer], None]


@dataclass(frozen=True)
class Command:
    """A built-in `crmops` command: `module.register(app)` adds it; `help` is its one line."""

    name: str
    module: str
    help: str


COMMANDS = (
    Command(
        "mcp",
        "server.cli_mcp",
        "Serve the crmops tools over MCP: stdio by default, or HTTP with --http.",
    ),
    Command(
        "errors",
        "server.cli_errors",
        "Explain a vendor error code: its meaning (zh, en) and what to do.",
    ),
    Command(
        "sandbox",
        "server.cli_sandbox",
        "Run every feature against the bundled vendor simulators: no account needed.",
    ),
    Command(
        "import",
        "server.cli_import",
        "Import customers from a file, at the vendor's rate limit, each row exactly once.",
    ),
    Command(
        "staff",
        "server.cli_tools",
        "List Xiaolanben (小蓝本) staff: the staffId that owns imported customers.",
    ),
    Command(
        "customer",
        "server.cli_tools",
        "Look up a SocialEpoch (WhatsApp SCRM) customer by WhatsApp number.",
    ),
    Command("ticket", "server.cli_tools", "Create a Bangwo8 (帮我吧) helpdesk ticket."),
    Command("tickets", "server.cli_tools", "List Bangwo8 (帮我吧) helpdesk tickets, newest first."),
    Command(
        "doctor",
        "server.cli_doctor",
        "Check each configured vendor: settings complete, and one harmless read answered.",
    ),
)
_BUILT_IN = {command.name: command for command in COMMANDS}


class LazyGroup(TyperGroup):
    """A command group that imports a command's module only when that command is chosen."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [command.name for command in COMMANDS] + sorted(_plugins())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        try:
            built_in = _BUILT_IN.get(cmd_name)
            if built_in is not None:
                register: Register = importlib.import_module(built_in.module).register
            else:
                plugin = _plugins().get(cmd_name)
                if plugin is None:
                    return None
                register = plugin.load()
        finally:
            _loaded()
        commands = typer.Typer()
        register(commands)
        return typer.main.get_group(commands).get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands and their one-line help; built-in ones from `COMMANDS`, unimported."""
        rows = [(command.name, command.help) for command in COMMANDS]
        for name in sorted(_plugins()):
            command = self.get_command(ctx, name)
            rows.append((name, command.get_short_help_str(limit=80) if command else ""))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _loaded() -> None:
    """The command's modules are in: what they made lives as long as the process, so it is
    frozen out of the collector's passes, which `main` had switched off while loading."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def _plugins() -> dict[str, EntryPoint]:
    """The `crmops.commands` entry points, by command name (not loaded yet)."""
    # importlib.metadata costs ~25 ms at start-up: only `--help` and plugin commands need it.
    from importlib.metadata import entry_points  # noqa: PLC0415 - start-up cost

    return {entry.name: entry for entry in entry_points(group=PLUGIN_GROUP)}


app = typer.Typer(
    name="crmops",
    cls=LazyGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help for the command list: rich costs ~40 ms to import; each command's own
    # `--help` still renders with rich.
    rich_markup_mode=None,
)


@app.callback()
def crmops() -> None:
    """SocialEpoch, Xiaolanben and Bangwo8 behind one set of tools: MCP, Slack and CLI."""


def main() -> None:
    """Console-script entry point (`crmops`)."""
    # Loading a command creates a few hundred thousand objects that live as long as the
    # process (pydantic schemas, MCP types); the collector's full passes over them while
    # they are made cost `crmops mcp` about a fifth of its start. Off until it is loaded.
    gc.disable()
    try:
        app()
    finally:
        gc.enable()


__all__ = [
    "COMMANDS",
    "EXIT_CODES",
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "EXIT_INPUT",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_STORAGE",
    "EXIT_USAGE",
    "EXIT_VENDOR",
    "app",
    "main",
]
