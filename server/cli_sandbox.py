"""`crmops sandbox`: every feature against the bundled vendor simulators (`server.sandbox`).

    crmops sandbox            # serve the simulators, MCP over HTTP and the Slack bot
    crmops sandbox --tour     # a scripted walk through every tool, then exit
    crmops sandbox --env      # `export` lines pointing `crmops mcp` at the running sandbox
    crmops sandbox --env --client claude   # the same as a client's config (cursor, vscode,
                                           # inspector: its command line with -e options)

`register(app)` adds the command to a Typer app.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from server.sandbox.clients import ClientName, client_config
from server.sandbox.serve import (
    DEFAULT_MCP_PORT,
    DEFAULT_SIMULATOR_PORTS,
    DEFAULT_SLACK_PORTS,
    parse_ports,
    parse_slack_ports,
    serve_until_stopped,
)
from server.sandbox.state import export_lines, read_running_env
from server.sandbox.tour import run_tour
from tools.exit_codes import failures_as_exit_codes


def register(app: typer.Typer) -> None:
    """Add `crmops sandbox` to `app`."""
    app.command("sandbox")(sandbox)


def sandbox(
    *,
    tour: Annotated[
        bool, typer.Option("--tour", help="walk through every tool against a fresh sandbox")
    ] = False,
    env: Annotated[
        bool, typer.Option("--env", help="print `export` lines for the running sandbox")
    ] = False,
    client: Annotated[
        ClientName | None,
        typer.Option(
            help="with --env: print a ready-made config for this MCP client instead "
            "(its `env` block; for the Inspector, its command line with -e options)",
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="address to serve on")] = "127.0.0.1",
    mcp_port: Annotated[
        int, typer.Option(help="MCP HTTP port (0: any free port)")
    ] = DEFAULT_MCP_PORT,
    simulator_ports: Annotated[
        str,
        typer.Option(help="SocialEpoch,Xiaolanben,Bangwo8 simulator ports (0: any free port)"),
    ] = ",".join(map(str, DEFAULT_SIMULATOR_PORTS)),
    slack_ports: Annotated[
        str,
        typer.Option(help="Slack endpoint,fake Slack Web API ports (0: any free port)"),
    ] = ",".join(map(str, DEFAULT_SLACK_PORTS)),
) -> None:
    """Run every feature against the bundled vendor simulators: no account needed."""
    console = Console()
    with failures_as_exit_codes():
        if client is not None:
            # A client passes its servers only a few variables: `eval "$(... --env)"` in a
            # shell never reaches them, so the settings go in the client's config.
            typer.echo(client_config(client, read_running_env()))
            return
        if env:
            typer.echo(export_lines(read_running_env()))
            return
        if tour:
            raise typer.Exit(run_tour(console))
        serve_until_stopped(
            console,
            host=host,
            mcp_port=mcp_port,
            simulator_ports=parse_ports(simulator_ports),
            slack_ports=parse_slack_ports(slack_ports),
        )
