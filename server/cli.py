"""The `crmops` command line: one module per command, loaded only when that command is chosen.

    crmops mcp                          # MCP over stdio (server/cli_mcp.py)
    crmops errors 502                   # what a vendor error code means (server/cli_errors.py)
    crmops staff 王 / customer PHONE / ticket SUBJECT -m TEXT / tickets   (server/cli_tools.py)
    crmops import FILE --vendor xiaolanben   (server/cli_import.py)
    crmops doctor / crmops sandbox      (server/cli_doctor.py, server/cli_sandbox.py)
    crmops slack                        # from bots/, through the `crmops.commands` entry points

`COMMANDS` is the table of built-in commands: name, the module whose `register(app)` adds
it, and the one-line help `crmops --help` shows without importing the module. The commands
that run one tool function (`staff`, `tickets`...) are the `commands` Typer of
`TOOL_COMMANDS` (server/cli_tools.py): a new one is a function there and nothing here.
`crmops --help` reads their names and help from it without building them, so that module is
cheap to import (each command imports the tool it runs). A command from another package is
an entry point in the `crmops.commands` group named for the command, whose value is a
`register(app)` function; it is loaded for `crmops --help` and when chosen (its module must
be cheap to import: server/ and bots/ never import each other).

A name is looked up in that order: `COMMANDS`, the entry points, the tool commands; so
`crmops errors` imports neither of the others, and `crmops slack` not the tool commands.

`--lang zh-CN|en|id`, anywhere on the line, chooses the language of what a command shows
(else CRMOPS_LOCALE, then LC_ALL / LC_MESSAGES / LANG: `tools.i18n.from_environment`); the
group takes it from the command's arguments before the command parses them, and before any
`--help` is shown: help texts are message ids (`marked`), translated when a command is
fetched (`_translated`), so nothing is translated at import time and `crmops --help` loads
nothing more than the catalog.

A failure prints one line on stderr and exits with the code of its kind
(`tools.exit_codes.EXIT_CODES`): never a traceback for a failure crmops expected.
"""

from __future__ import annotations

import gc
import importlib
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

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
from tools.i18n import (
    LOCALES,
    UnknownLocaleError,
    checked_locale,
    from_environment,
    marked,
    reset_locale,
    set_locale,
    tr,
)

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from typer.models import CommandInfo

    from tools.i18n import Locale

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
        marked("Serve the crmops tools over MCP: stdio by default, or HTTP with --http."),
    ),
    Command(
        "errors",
        "server.cli_errors",
        marked("Explain a vendor error code: its meaning (zh, en) and what to do."),
    ),
    Command(
        "sandbox",
        "server.cli_sandbox",
        marked("Run every feature against the bundled vendor simulators: no account needed."),
    ),
    Command(
        "import",
        "server.cli_import",
        marked("Import customers from a file, at the vendor's rate limit, each row exactly once."),
    ),
    Command(
        "doctor",
        "server.cli_doctor",
        marked("Check each configured vendor: settings complete, and one harmless read answered."),
    ),
)
_BUILT_IN = {command.name: command for command in COMMANDS}

TOOL_COMMANDS = "server.cli_tools"
"""The module whose `commands` Typer holds the tool commands (cheap to import: see above)."""


class LazyGroup(TyperGroup):
    """A command group that imports a command's module only when that command is chosen."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        built_in = [command.name for command in COMMANDS]
        return built_in + list(_tool_commands()) + sorted(_plugins())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        try:
            commands = _commands_of(cmd_name)
        finally:
            _loaded()
        if commands is None:
            return None
        return _translated(typer.main.get_group(commands).get_command(ctx, cmd_name))

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Choose the language before click reads the line: `--help` is shown while it
        reads (the group's callback, which reports a wrong `--lang`, runs after)."""
        _, lang = _without_lang(ctx, args)
        try:
            locale = checked_locale(lang) if lang is not None else from_environment()
        except UnknownLocaleError:
            locale = None  # the callback says what is wrong, unless --help ends the run first
        if locale is not None:
            _use_until_done(ctx, locale)
        self.help = tr(GROUP_HELP)
        for param in self.params:
            _translate_help(param)
        return super().parse_args(ctx, args)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """The command and its arguments, less a `--lang` among them (`crmops errors 502
        --lang zh`): it is the group's option wherever it is written."""
        name, command, rest = super().resolve_command(ctx, args)
        rest, lang = _without_lang(ctx, rest)
        if lang is not None:
            ctx.meta[_LANG] = lang
        return name, command, rest

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl(self.command_rows(ctx))

    def command_rows(self, ctx: click.Context) -> list[tuple[str, str]]:
        """Each command and its one-line help, as `crmops --help` lists them: the built-in
        ones from `COMMANDS` (module not imported), the tool commands from their docstrings
        (not built), the plugins' from the loaded command."""
        rows = [(command.name, tr(command.help)) for command in COMMANDS]
        rows += [(name, tr(_help_line(info))) for name, info in _tool_commands().items()]
        for name in sorted(_plugins()):
            command = self.get_command(ctx, name)
            rows.append((name, command.get_short_help_str(limit=80) if command else ""))
        return rows


def _commands_of(name: str) -> typer.Typer | None:
    """A Typer app that holds the command `name` (its module imported), or None."""
    built_in = _BUILT_IN.get(name)
    if built_in is not None:
        return _registered(importlib.import_module(built_in.module).register)
    plugin = _plugins().get(name)
    if plugin is not None:
        return _registered(plugin.load())
    return _tool_app() if name in _tool_commands() else None


def _translated(command: click.Command | None) -> click.Command | None:
    """`command` with its help and its parameters' help in the current language (each text
    is its own message id; one without a translation stays as it is)."""
    if command is not None:
        if command.help:
            command.help = tr(command.help)
        for param in command.params:
            _translate_help(param)
    return command


def _translate_help(param: click.Parameter) -> None:
    text = getattr(param, "help", None)
    if isinstance(text, str) and text:
        param.help = tr(text)  # type: ignore[attr-defined]


def _registered(register: Register) -> typer.Typer:
    commands = typer.Typer()
    register(commands)
    return commands


def _tool_app() -> typer.Typer:
    tools: typer.Typer = importlib.import_module(TOOL_COMMANDS).commands
    return tools


def _tool_commands() -> dict[str, CommandInfo]:
    """The tool commands by name, as registered: read, not built (nothing they run loads)."""
    return {
        info.name or typer.main.get_command_name(info.callback.__name__): info
        for info in _tool_app().registered_commands
        if info.callback is not None
    }


def _help_line(info: CommandInfo) -> str:
    """A registered command's one line of help: the first of its own or of its docstring."""
    lines = (info.help or inspect.getdoc(info.callback) or "").strip().splitlines()
    return lines[0] if lines else ""


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


_LANG = "crmops.lang"
"""`ctx.meta` key of a `--lang` written after the command's name."""
LANG_HELP = marked(
    "the language crmops shows you: zh-CN, en or id (default: CRMOPS_LOCALE, then "
    "LC_ALL / LC_MESSAGES / LANG, then en)"
)
GROUP_HELP = marked(
    "SocialEpoch, Xiaolanben and Bangwo8 behind one set of tools: MCP, Slack and CLI."
)


@app.callback()
def crmops(
    ctx: typer.Context,
    lang: Annotated[str | None, typer.Option("--lang", metavar="LOCALE", help=LANG_HELP)] = None,
) -> None:
    """SocialEpoch, Xiaolanben and Bangwo8 behind one set of tools: MCP, Slack and CLI."""
    chosen = ctx.meta.get(_LANG, lang)  # after the command name it is the command's own
    try:
        locale = checked_locale(chosen) if chosen is not None else from_environment()
    except UnknownLocaleError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE if chosen is not None else EXIT_CONFIG) from None
    _use_until_done(ctx, locale)


def _without_lang(ctx: click.Context, args: list[str]) -> tuple[list[str], str | None]:
    """`args` without `--lang X` / `--lang=X` (up to a `--`), and the last X given."""
    kept: list[str] = []
    lang: str | None = None
    rest = iter(args)
    for arg in rest:
        if arg == "--":
            kept += [arg, *rest]
            break
        if arg == "--lang":
            lang = next(rest, None)
            if lang is None:
                ctx.fail(f"--lang needs a value: {', '.join(LOCALES)}")
        elif arg.startswith("--lang="):
            lang = arg.removeprefix("--lang=")
        else:
            kept.append(arg)
    return kept, lang


def _use_until_done(ctx: click.Context, locale: Locale) -> None:
    """Show texts in `locale` until the command is done (in-process runs, tests, leave the
    language as they found it)."""
    token = set_locale(locale)
    ctx.call_on_close(lambda: reset_locale(token))


def main() -> None:
    """Console-script entry point (`crmops`)."""
    # Loading a command creates a few hundred thousand objects that live as long as the
    # process (pydantic schemas, MCP types); the collector's full passes over them while
    # they are made cost `crmops mcp` about a fifth of its start. Off until it is loaded.
    gc.disable()
    if any(name.startswith("OTEL_") for name in os.environ):  # spans over OTLP, if asked
        from tools.observability.tracing import configure_tracing  # noqa: PLC0415 - start-up

        configure_tracing()
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
    "TOOL_COMMANDS",
    "app",
    "main",
]
