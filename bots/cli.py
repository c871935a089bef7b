"""`crmops slack`: the Slack bot, over HTTP or Socket Mode.

    crmops slack                      # POST /slack/events on 127.0.0.1:3000 (behind a proxy)
    crmops slack --host 0.0.0.0 --port 8080
    crmops slack --socket             # Socket Mode: no public URL, needs SLACK_APP_TOKEN
    crmops slack --sandbox --port 0   # what `crmops sandbox` runs: the bot and a fake Slack

`server/` never imports `bots/`: the `crmops` CLI finds this command through the
`crmops.commands` entry point group, whose entries name a `register(app)` function.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from bots.app import build_app
from bots.sandbox import serve_with_fake_slack
from bots.serving import build_http_app, serve_http, socket_mode_handler
from bots.settings import AccessSettings, SlackSettings
from tools.errors import ConfigurationError, CrmopsError
from tools.services import Services
from tools.settings import Settings
from tools.storage.configured import open_store
from tools.storage.shared import readiness_checks

EXIT_FAILED = 1
EXIT_CONFIG = 78  # sysexits EX_CONFIG, as `crmops mcp`
EXIT_INTERRUPTED = 130


def register(app: typer.Typer) -> None:
    """Add `slack` to the `crmops` command line (entry point group `crmops.commands`)."""
    app.command(name="slack")(slack)


def slack(
    *,
    port: Annotated[int, typer.Option(help="HTTP: port to bind", min=0, max=65535)] = 3000,
    host: Annotated[str, typer.Option(help="HTTP: address to bind")] = "127.0.0.1",
    socket: Annotated[
        bool, typer.Option("--socket", help="Socket Mode instead of HTTP (SLACK_APP_TOKEN)")
    ] = False,
    env_file: Annotated[
        Path, typer.Option("--env-file", help="settings file read after the environment")
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
    logging.basicConfig(
        # The sandbox shares its terminal with `crmops sandbox`: only what goes wrong.
        level=logging.WARNING if sandbox else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    settings_file = None if sandbox else env_file
    try:
        slack_settings = SlackSettings.load(env_file=settings_file)
        slack_settings.require(socket_mode=socket)
        settings = Settings.load(env_file=settings_file)
        access = AccessSettings.load(env_file=settings_file)
        if sandbox:
            asyncio.run(
                serve_with_fake_slack(
                    slack_settings,
                    settings,
                    access,
                    host=host,
                    port=port,
                    fake_port=fake_slack_port,
                )
            )
            return
        asyncio.run(_run(slack_settings, settings, access, socket=socket, host=host, port=port))
    except ConfigurationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from None
    except CrmopsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_FAILED) from None
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None


async def _run(
    slack_settings: SlackSettings,
    settings: Settings,
    access: AccessSettings,
    *,
    socket: bool,
    host: str,
    port: int,
) -> None:
    # The journal and audit log: `/crm import` needs them, and every write is audited there.
    async with Services(settings) as services, open_store(settings.crmops) as store:
        bolt_app = build_app(slack_settings, services, access=access, store=store)
        if not socket:
            http_app = build_http_app(bolt_app, checks=readiness_checks(settings.crmops))
            await serve_http(http_app, host=host, port=port)
            return
        handler = socket_mode_handler(bolt_app, slack_settings)
        try:
            # bolt's Socket Mode handler has no type hints.
            await handler.start_async()  # type: ignore[no-untyped-call]
        finally:
            await handler.close_async()  # type: ignore[no-untyped-call]
