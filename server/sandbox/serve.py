"""`crmops sandbox`: the simulators, the MCP server over HTTP and the Slack bot on loopback.

    with run_sandbox(host="127.0.0.1", mcp_port=0, simulator_ports=(0, 0, 0)) as running:
        running.mcp_url, running.token, running.env()
    serve_until_stopped(console, host="127.0.0.1")      # what `crmops sandbox` runs

The MCP server journals into a throwaway database and shares nothing with the user's Redis
or PostgreSQL; the running sandbox's environment goes to the state file (`state`).
"""

from __future__ import annotations

import secrets
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

from pydantic import SecretStr
from rich.console import Console
from rich.rule import Rule
from rich.table import Table

from server.http_app import MCP_PATH, build_http_app
from server.mcp_server import build_server
from server.sandbox.slack import SlackProcess, start_slack
from server.sandbox.state import export_lines, write_state
from tools.errors import InputError, Problem
from tools.sandbox.simulation import ServedApp, start_server
from tools.sandbox.stack import (
    Sandbox,
    SandboxPortError,
    self_contained_crmops,
    start_sandbox,
    throwaway_database,
)

DEFAULT_SIMULATOR_PORTS = (8701, 8702, 8703)
DEFAULT_MCP_PORT = 8700
DEFAULT_SLACK_PORTS = (8704, 8705)


@dataclass
class RunningSandbox:
    """The simulators, the MCP server and the Slack bot, served on loopback."""

    sandbox: Sandbox
    mcp: ServedApp
    token: str
    slack: SlackProcess
    slack_bot_token: str
    signing_secret: str

    @property
    def mcp_url(self) -> str:
        return self.mcp.url + MCP_PATH

    def env(self) -> dict[str, str]:
        """What a client needs: the vendors' sandbox settings, the MCP token, the Slack side."""
        return {
            **self.sandbox.env(),
            "CRMOPS_MCP_TOKEN": self.token,
            "SLACK_API_URL": self.slack.urls.fake_api_url,
            "SLACK_BOT_TOKEN": self.slack_bot_token,
            "SLACK_SIGNING_SECRET": self.signing_secret,
        }


@contextmanager
def run_sandbox(
    *,
    host: str = "127.0.0.1",
    mcp_port: int = DEFAULT_MCP_PORT,
    simulator_ports: tuple[int, int, int] = DEFAULT_SIMULATOR_PORTS,
    slack_ports: tuple[int, int] = DEFAULT_SLACK_PORTS,
) -> Iterator[RunningSandbox]:
    """Serve the seeded simulators, the MCP server (HTTP, fresh bearer token) and the bot."""
    token = secrets.token_urlsafe(24)
    bot_token = "xoxb-sandbox-" + secrets.token_hex(12)
    signing_secret = secrets.token_hex(16)
    with (
        start_sandbox(host=host, ports=simulator_ports) as sandbox,
        throwaway_database() as database,
    ):
        slack = start_slack(
            {
                **sandbox.env(),
                "SLACK_BOT_TOKEN": bot_token,
                "SLACK_SIGNING_SECRET": signing_secret,
                # In the sandbox anyone may try the writes (`/crm ticket`).
                "CRMOPS_SLACK_WRITE_USERS": "*",
            },
            host=host,
            ports=slack_ports,
        )
        try:
            # The MCP server journals into the throwaway database (closed with the server,
            # before the folder goes) and shares nothing with the user's Redis or PostgreSQL.
            crmops = self_contained_crmops(mcp_token=SecretStr(token), db=database)
            settings = sandbox.settings(crmops)
            server = build_server(settings)
            http_app = build_http_app(server, token=settings.crmops.mcp_token, host=host)
            try:
                mcp = start_server(http_app, host=host, port=mcp_port, lifespan="on")
            except OSError as exc:
                raise SandboxPortError(f"MCP server on {host}:{mcp_port}", exc) from exc
            try:
                yield RunningSandbox(sandbox, mcp, token, slack, bot_token, signing_secret)
            finally:
                mcp.stop()
        finally:
            slack.stop()


def serve_until_stopped(console: Console, **options: Any) -> None:
    """Run the sandbox until Ctrl-C or SIGTERM, printing how to reach it."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    with run_sandbox(**options) as running:
        path = write_state(running.env())
        try:
            _print_welcome(console, running)
            while not stop.wait(0.5):
                if running.slack.process.poll() is not None:
                    console.print("the Slack bot stopped unexpectedly; stopping the sandbox")
                    break
        except KeyboardInterrupt:
            pass
        finally:
            path.unlink(missing_ok=True)
    console.print("sandbox stopped")


def parse_ports(text: str) -> tuple[int, int, int]:
    """`8701,8702,8703` → the three simulator ports; `InputError` when malformed."""
    first, second, third = _ports(text, 3, "--simulator-ports")
    return first, second, third


def parse_slack_ports(text: str) -> tuple[int, int]:
    """`8704,8705` → the Slack endpoint's and the fake Slack's ports."""
    endpoint, fake = _ports(text, 2, "--slack-ports")
    return endpoint, fake


def _ports(text: str, count: int, option: str) -> list[int]:
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != count or not all(part.isdigit() and int(part) <= 65535 for part in parts):
        example = ",".join(str(8701 + n) for n in range(count))
        raise InputError([Problem(option, f"{text!r}: give {count} ports, e.g. {example}")])
    return [int(part) for part in parts]


def _print_welcome(console: Console, running: RunningSandbox) -> None:
    sandbox, slack = running.sandbox, running.slack.urls
    console.print(Rule("crmops sandbox"))
    table = Table.grid(padding=(0, 2))
    for label, value in (
        ("MCP (streamable HTTP)", running.mcp_url),
        ("  bearer token", running.token),
        ("Slack endpoint", slack.events_url),
        ("  signing secret", running.signing_secret),
        ("fake Slack Web API", slack.fake_api_url),
        ("  bot replies", slack.hook_url("NAME") + "  (a response_url: GET it to read them)"),
        ("SocialEpoch simulator", sandbox.socialepoch_url),
        ("Xiaolanben simulator", sandbox.xiaolanben_url),
        ("Bangwo8 simulator", sandbox.bangwo8_url),
    ):
        table.add_row(label, value)
    console.print(table, highlight=False)
    console.print("\nEnvironment for `crmops mcp`, `crmops doctor`, ... against this sandbox:")
    console.print(export_lines(running.env()), highlight=False, markup=False)
    console.print(
        "\nSlack: POST a slash command (`command=/crm&text=staff&response_url=...`) to the "
        "endpoint, signed as Slack signs (X-Slack-Signature: v0=HMAC-SHA256 of "
        "v0:{timestamp}:{body} with the signing secret).",
        highlight=False,
        markup=False,
    )
    console.print("\n(also printed by `crmops sandbox --env`; Ctrl-C stops the sandbox)")
