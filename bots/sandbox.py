"""The Slack side of `crmops sandbox`: the bot over HTTP against a fake Slack, no workspace.

`crmops sandbox` starts this as a child process (`crmops slack --sandbox`) with the vendor
simulators, the bot token and the signing secret in the environment::

    await serve_with_fake_slack(slack_settings, settings, access, host=..., port=0, fake_port=0)

It serves the fake Slack Web API (`bots.fake_slack`) in a thread, points the bot at it,
serves `POST /slack/events` (with a throwaway journal, so `/crm import` works), then prints
`SlackSandboxUrls.line()` on stdout so the parent learns the ports. It stops on SIGINT or
SIGTERM, and when its stdin closes: the parent holds the other end, so the child never
outlives it, even after `kill -9` of the parent.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from bots import auth
from bots.app import build_app
from bots.fake_slack import FakeSlack
from bots.serving import EVENTS_PATH, build_http_app
from bots.settings import AccessSettings, SlackSettings
from tools.sandbox.simulation import ServedApp, start_server
from tools.sandbox.stack import SandboxPortError, SlackSandboxUrls
from tools.services import Services
from tools.settings import Settings
from tools.storage.store import sqlite_store

START_TIMEOUT = 10.0


async def serve_with_fake_slack(
    slack_settings: SlackSettings,
    settings: Settings,
    access: AccessSettings,
    *,
    host: str,
    port: int,
    fake_port: int,
) -> None:
    """Serve the fake Slack and the bot (port 0: any free port) until stopped."""
    fake = FakeSlack(
        bot_token=auth.bot_token(slack_settings) or "", app_token=secrets.token_urlsafe(16)
    )
    with (
        _serving(fake.app, host=host, port=fake_port) as served,
        tempfile.TemporaryDirectory(prefix="crmops-sandbox-slack-") as folder,
    ):
        fake.url = served.url
        pointed = slack_settings.model_copy(update={"api_url": fake.api_url})
        # A journal of its own: sandbox imports never land in the user's real one.
        async with (
            sqlite_store(Path(folder) / "crmops.db") as store,
            Services(settings, store=store) as services,
        ):
            bolt_app = build_app(pointed, services, access=access)
            http_app = build_http_app(bolt_app, settings=pointed)
            await _serve_announcing(http_app, host=host, port=port, fake=fake)


async def _serve_announcing(app: Starlette, *, host: str, port: int, fake: FakeSlack) -> None:
    # IPPROTO_TCP: asyncio turns Nagle off only on sockets of that protocol; with Nagle on,
    # every ack with a body waits 40 ms for the client's delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SandboxPortError(f"Slack endpoint on {host}:{port}", exc) from exc
    config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if task.done():
            await task  # raises what stopped it
            raise RuntimeError("the Slack endpoint stopped before serving")
        if time.monotonic() > deadline:
            server.should_exit = True
            await task
            raise RuntimeError(f"the Slack endpoint did not start within {START_TIMEOUT:.0f} s")
        await asyncio.sleep(0.01)
    url = f"http://{host}:{sock.getsockname()[1]}{EVENTS_PATH}"
    print(SlackSandboxUrls(events_url=url, fake_slack_url=fake.url).line(), flush=True)  # noqa: T201
    _stop_when_stdin_closes(server)
    await task


@contextmanager
def _serving(app: Starlette, *, host: str, port: int) -> Iterator[ServedApp]:
    try:
        served = start_server(app, host=host, port=port)
    except OSError as exc:
        raise SandboxPortError(f"fake Slack on {host}:{port}", exc) from exc
    try:
        yield served
    finally:
        served.stop()


def _stop_when_stdin_closes(server: uvicorn.Server) -> None:
    def watch() -> None:
        while sys.stdin.buffer.read(4096):
            pass
        server.should_exit = True

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()
