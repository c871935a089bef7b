"""What `crmops slack` runs (bots/cli.py parses the options): the bot over HTTP or Socket
Mode, or with `sandbox` the bot and a fake Slack Web API (`bots.sandbox`).

    run_bot(settings_file=Path(".env"), socket=False, host="127.0.0.1", port=3000)

Settings come from the environment and `settings_file` (None: the environment only); a
failure raises a `CrmopsError` for the command's exit code.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from bots.app import build_app
from bots.serving import build_http_app, serve_http, socket_mode_handler
from bots.settings import AccessSettings, SlackSettings
from tools.services import Services
from tools.settings import Settings
from tools.storage.configured import open_store
from tools.storage.shared import readiness_checks


def run_bot(
    *,
    settings_file: Path | None,
    socket: bool,
    host: str,
    port: int,
    sandbox: bool = False,
    fake_slack_port: int = 0,
) -> None:
    """Serve the bot until interrupted (`KeyboardInterrupt`)."""
    slack_settings = SlackSettings.load(env_file=settings_file)
    slack_settings.require(socket_mode=socket)
    settings = Settings.load(env_file=settings_file)
    access = AccessSettings.load(env_file=settings_file)
    if sandbox:
        # Only `--sandbox` loads the simulators' stack and the fake Slack: a production bot
        # never imports them (tests/test_layers.py).
        from bots.sandbox import serve_with_fake_slack  # noqa: PLC0415

        asyncio.run(
            serve_with_fake_slack(
                slack_settings, settings, access, host=host, port=port, fake_port=fake_slack_port
            )
        )
        return
    asyncio.run(_run(slack_settings, settings, access, socket=socket, host=host, port=port))


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
    # Opened at start-up, so a database that cannot be opened stops the bot before serving.
    async with open_store(settings.crmops) as store, Services(settings, store=store) as services:
        bolt_app = build_app(slack_settings, services, access=access)
        if not socket:
            http_app = build_http_app(
                bolt_app,
                settings=slack_settings,
                checks=readiness_checks(settings.crmops),
                metrics_token=settings.crmops.metrics_token,
            )
            await serve_http(http_app, host=host, port=port, name="Slack")
            return
        handler = socket_mode_handler(bolt_app, slack_settings)
        try:
            # bolt's Socket Mode handler has no type hints.
            await handler.start_async()  # type: ignore[no-untyped-call]
        finally:
            await handler.close_async()  # type: ignore[no-untyped-call]
