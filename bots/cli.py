"""`crmops slack`: the Slack bot, over HTTP or Socket Mode.

    crmops slack                      # POST /slack/events on 127.0.0.1:3000 (behind a proxy)
    crmops slack --host 0.0.0.0 --port 8080
    crmops slack --socket             # Socket Mode: no public URL, needs SLACK_APP_TOKEN
    crmops slack --sandbox --port 0   # what `crmops sandbox` runs: the bot and a fake Slack

`server/` never imports `bots/`: the `crmops` CLI finds this command through the
`crmops.commands` entry point named `slack`, whose value is `register(app)`. `crmops --help`
imports this module for the command's help, so it imports only typer at load; slack-bolt,
aiohttp and the rest load when the command runs. It exits as every `crmops` command does
(`tools.exit_codes`).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from tools.exit_codes import failures_as_exit_codes
from tools.i18n import marked


def register(app: typer.Typer) -> None:
    """Add `slack` to the `crmops` command line (entry point group `crmops.commands`)."""
    app.command(name="slack", help=marked(SLACK_HELP))(slack)


SLACK_HELP = marked("Run the Slack bot: /crm help, error, staff, customer, ticket, import.")


def slack(
    *,
    port: Annotated[int, typer.Option(help=marked("HTTP: port to bind"), min=0, max=65535)] = 3000,
    host: Annotated[str, typer.Option(help=marked("HTTP: address to bind"))] = "127.0.0.1",
    socket: Annotated[
        bool, typer.Option("--socket", help=marked("Socket Mode instead of HTTP (SLACK_APP_TOKEN)"))
    ] = False,
    env_file: Annotated[
        Path, typer.Option("--env-file", help=marked("settings file read after the environment"))
    ] = Path(".env"),
    sandbox: Annotated[
        bool,
        typer.Option(
            "--sandbox",
            hidden=True,
            help="crmops sandbox: serve a fake Slack Web API too and point the bot at it; "
            "print the URLs as one line on stdout; ignore --env-file",
        ),
    ] = False,
    fake_slack_port: Annotated[
        int, typer.Option(hidden=True, help="--sandbox: port of the fake Slack", min=0)
    ] = 0,
) -> None:
    """Run the Slack bot: /crm help, error, staff, customer, ticket, import."""
    from tools.observability.logs import configure_logging  # noqa: PLC0415 - start-up cost

    configure_logging(  # text or JSON lines (CRMOPS_LOG_FORMAT), redacted (tools.redaction)
        # The sandbox shares its terminal with `crmops sandbox`: only what goes wrong.
        level=logging.WARNING if sandbox else logging.INFO,
        env_file=None if sandbox else env_file,
        stream=sys.stderr,
    )
    # slack-bolt, aiohttp and the settings load only now: `crmops --help` imports this module.
    from bots.run import run_bot  # noqa: PLC0415 - start-up cost

    with failures_as_exit_codes():
        run_bot(
            settings_file=None if sandbox else env_file,
            socket=socket,
            host=host,
            port=port,
            sandbox=sandbox,
            fake_slack_port=fake_slack_port,
        )
