"""The `crmops` command line.

    crmops mcp                          # MCP over stdio (for Claude Desktop, Cursor, ...)
    crmops mcp --http --port 8000       # MCP over streamable HTTP at /mcp, bearer token required
    crmops mcp --read-only --tools lookup_error_code,list_staff
    crmops errors 502                   # what a vendor error code means and what to do
    crmops staff 王 / customer PHONE / ticket SUBJECT -m TEXT / tickets   (server/cli_tools.py)

A failure prints one line on stderr and exits with a code saying what kind it was
(`EXIT_CODES`): never a traceback for a failure crmops expected.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, cast

import anyio
import typer
from rich.console import Console

from server import cli_doctor, cli_import, cli_tools
from server import sandbox as sandbox_module
from server.http_app import build_http_app, serve_http
from server.mcp_server import build_server, parse_tool_names
from tools.catalog import VENDORS, Vendor
from tools.errors import ConfigurationError, CrmopsError, InputError, VendorError
from tools.lookup import lookup_error_code, render_text
from tools.settings import Settings
from tools.storage.shared import readiness_checks

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2  # typer/click: bad options or arguments
EXIT_INPUT = 65  # sysexits EX_DATAERR: the input is wrong
EXIT_VENDOR = 69  # sysexits EX_UNAVAILABLE: a vendor failed or refused
EXIT_CONFIG = 78  # sysexits EX_CONFIG: settings are missing or wrong
EXIT_INTERRUPTED = 130
EXIT_CODES: tuple[tuple[type[CrmopsError], int], ...] = (
    (ConfigurationError, EXIT_CONFIG),
    (InputError, EXIT_INPUT),
    (VendorError, EXIT_VENDOR),
    (CrmopsError, EXIT_FAILED),
)

PLUGIN_GROUP = "crmops.commands"

app = typer.Typer(
    name="crmops",
    help="SocialEpoch, Xiaolanben and Bangwo8 behind one set of tools: MCP, Slack and CLI.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EnvFile = Annotated[
    Path,
    typer.Option("--env-file", help="settings file read after the environment"),
]


@app.command()
def mcp(
    *,
    http: Annotated[
        bool, typer.Option("--http", help="serve streamable HTTP at /mcp instead of stdio")
    ] = False,
    host: Annotated[str, typer.Option(help="HTTP: address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP: port to bind", min=1, max=65535)] = 8000,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-host",
            help="HTTP: another Host name clients use to reach this server (repeatable)",
        ),
    ] = None,
    read_only: Annotated[
        bool,
        typer.Option("--read-only", help="serve only tools that change nothing (CRMOPS_READ_ONLY)"),
    ] = False,
    tools: Annotated[
        str | None,
        typer.Option(help="comma-separated tool names to serve (CRMOPS_TOOLS)"),
    ] = None,
    env_file: EnvFile = Path(".env"),
) -> None:
    """Serve the crmops tools over MCP: stdio by default, or HTTP with --http."""
    _log_to_stderr()
    with _failures_as_exit_codes():
        settings = Settings.load(env_file=env_file)
        names = parse_tool_names(tools) if tools is not None else None
        server = build_server(settings, read_only=read_only, tools=names)
        if not http:
            anyio.run(server.run_stdio_async)
            return
        http_app = build_http_app(
            server,
            token=settings.crmops.mcp_token,
            host=host,
            allowed_hosts=allow_host or (),
            checks=readiness_checks(settings.crmops),
        )
        anyio.run(lambda: serve_http(http_app, host=host, port=port))


@app.command()
def errors(
    code: Annotated[str, typer.Argument(help="the vendor's error code, or words of its message")],
    vendor: Annotated[
        str | None,
        typer.Option(help=f"only this vendor: {', '.join(VENDORS)}"),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="print the result as JSON (for scripts)")
    ] = False,
) -> None:
    """Explain a vendor error code: its meaning (zh, en) and what to do."""
    with cli_tools.failures_as_exit_codes(as_json):
        # lookup_error_code checks the vendor's name itself and says what is wrong with it.
        wanted = cast("Vendor | None", vendor)
        result = anyio.run(lambda: lookup_error_code(code=code, vendor=wanted))
        typer.echo(result.model_dump_json(indent=2) if as_json else render_text(result))


@app.command()
def sandbox(
    *,
    tour: Annotated[
        bool, typer.Option("--tour", help="walk through every tool against a fresh sandbox")
    ] = False,
    env: Annotated[
        bool, typer.Option("--env", help="print `export` lines for the running sandbox")
    ] = False,
    host: Annotated[str, typer.Option(help="address to serve on")] = "127.0.0.1",
    mcp_port: Annotated[int, typer.Option(help="MCP HTTP port (0: any free port)")] = (
        sandbox_module.DEFAULT_MCP_PORT
    ),
    simulator_ports: Annotated[
        str,
        typer.Option(help="SocialEpoch,Xiaolanben,Bangwo8 simulator ports (0: any free port)"),
    ] = ",".join(map(str, sandbox_module.DEFAULT_SIMULATOR_PORTS)),
    slack_ports: Annotated[
        str,
        typer.Option(help="Slack endpoint,fake Slack Web API ports (0: any free port)"),
    ] = ",".join(map(str, sandbox_module.DEFAULT_SLACK_PORTS)),
) -> None:
    """Run every feature against the bundled vendor simulators: no account needed."""
    console = Console()
    with _failures_as_exit_codes():
        if env:
            typer.echo(sandbox_module.export_lines(sandbox_module.read_running_env()))
            return
        if tour:
            raise typer.Exit(sandbox_module.run_tour(console))
        sandbox_module.serve_until_stopped(
            console,
            host=host,
            mcp_port=mcp_port,
            simulator_ports=sandbox_module.parse_ports(simulator_ports),
            slack_ports=sandbox_module.parse_slack_ports(slack_ports),
        )


def _log_to_stderr() -> None:
    # stdout carries the MCP protocol over stdio: nothing else may be written there.
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@contextmanager
def _failures_as_exit_codes() -> Iterator[None]:
    """A `CrmopsError` becomes one line on stderr and its exit code; Ctrl-C exits quietly."""
    try:
        yield
    except CrmopsError as exc:
        typer.echo(f"error: {_one_line(str(exc))}", err=True)
        raise typer.Exit(_exit_code(exc)) from None
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def _exit_code(error: CrmopsError) -> int:
    return next(code for kind, code in EXIT_CODES if isinstance(error, kind))


def register_plugin_commands(cli: typer.Typer) -> None:
    """Add the subcommands other packages declare under the `crmops.commands` entry points.

    `crmops slack` comes from bots/ this way: server/ and bots/ never import each other.
    """
    for entry_point in entry_points(group=PLUGIN_GROUP):
        entry_point.load()(cli)


def main() -> None:
    """Console-script entry point (`crmops`)."""
    cli_import.register(app)
    cli_tools.register(app)
    cli_doctor.register(app)
    register_plugin_commands(app)
    app()
