"""Socket Mode, the manifest, and `crmops slack` as a process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import typer
import yaml
from typer.testing import CliRunner

from bots.app import build_app
from bots.cli import register
from bots.fake_slack import FakeSlack
from bots.serving import json_depth, socket_mode_handler
from bots.settings import AccessSettings, SlackSettings
from tests.bots.conftest import (
    APP_TOKEN,
    BOT_TOKEN,
    CHANNEL,
    SIGNING_SECRET,
    TEAM,
    WRITER,
    SlackEndpoint,
    sign,
)
from tests.bots.test_http import _text
from tests.bots.waiting import wait_until
from tests.sandbox_fixtures import Sandbox
from tools.services import Services

MANIFEST = Path(__file__).parents[2] / "manifest.yml"


async def test_a_socket_mode_envelope_is_acked_with_the_answer(
    fake_slack: FakeSlack,
    slack_settings: SlackSettings,
    services: Services,
) -> None:
    bolt_app = build_app(slack_settings, services, access=AccessSettings())
    handler = socket_mode_handler(bolt_app, slack_settings)
    await handler.connect_async()  # type: ignore[no-untyped-call]
    try:
        await wait_until(lambda: fake_slack.socket_connected)
        fake_slack.push_envelope(
            {
                "envelope_id": "env-1",
                "type": "slash_commands",
                "accepts_response_payload": True,
                "payload": {
                    "command": "/crm",
                    "text": "error 502 socialepoch",
                    "team_id": TEAM,
                    "user_id": WRITER,
                    "channel_id": CHANNEL,
                    "response_url": fake_slack.hook_url("socket"),
                    "trigger_id": "socket-trigger-1",
                },
            }
        )
        await wait_until(lambda: any(ack.get("envelope_id") == "env-1" for ack in fake_slack.acks))
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
    (ack,) = [ack for ack in fake_slack.acks if ack.get("envelope_id") == "env-1"]
    assert "socialepoch 502" in _text(ack["payload"])
    (opened,) = fake_slack.calls_to("apps.connections.open")
    assert opened.token == APP_TOKEN


def _manifest() -> dict[str, object]:
    loaded = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


async def test_every_manifest_command_has_a_handler(endpoint: SlackEndpoint) -> None:
    features = _manifest()["features"]
    assert isinstance(features, dict)
    commands = [each["command"] for each in features["slash_commands"]]
    assert commands
    for command in commands:
        body = (
            f"command={command}&text=help&team_id={TEAM}&user_id={WRITER}"
            f"&channel_id={CHANNEL}&trigger_id=manifest-{command.strip('/')}"
        )
        response = await endpoint.post(body)
        # bolt answers 404 for a request no listener handles
        assert response.status_code == 200, command
        assert "/crm ticket" in _text(response.json())


# The scopes, shortcuts and events of the manifest: tests/bots/test_manifest.py.


def _cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def crmops() -> None:
        """The crmops command line, as the entry point group loads it."""

    register(app)
    return app


def test_register_adds_the_slack_command() -> None:
    result = CliRunner().invoke(_cli(), ["slack", "--help"])
    assert result.exit_code == 0
    assert "--socket" in result.output
    assert "--port" in result.output


def test_missing_settings_are_named() -> None:
    result = CliRunner().invoke(_cli(), ["slack"])
    assert result.exit_code == 78
    assert "SLACK_BOT_TOKEN" in result.output
    assert "SLACK_SIGNING_SECRET" in result.output


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def crmops_slack(sandbox: Sandbox, fake_slack: FakeSlack, tmp_path: Path) -> Iterator[str]:
    """`crmops slack --port P` in its own process, configured for the sandbox and fake Slack."""
    port = _free_port()
    env = {
        **os.environ,
        **sandbox.env(),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.api_url,
        "CRMOPS_SLACK_WRITE_USERS": WRITER,
        "CRMOPS_DB": str(tmp_path / "crmops.db"),
    }
    script = (
        "import typer; from bots.cli import register; app = typer.Typer()\n"
        "app.callback()(lambda: None); register(app); app()"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script, "slack", "--port", str(port)],
        env=env,
        cwd=Path(__file__).parents[2],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "crmops slack did not start"
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(10)
        if process.stderr:
            process.stderr.close()


async def test_crmops_slack_serves_signed_commands(
    crmops_slack: str, fake_slack: FakeSlack, sandbox: Sandbox
) -> None:
    sandbox.xiaolanben.add_staff("王小明", "13912340001", "销售一部")
    body = (
        f"command=%2Fcrm&text=staff&team_id={TEAM}&user_id={WRITER}&channel_id={CHANNEL}"
        f"&response_url={fake_slack.hook_url('process')}&trigger_id=process-1"
    )
    async with httpx.AsyncClient(timeout=10) as http:
        forged = await http.post(
            f"{crmops_slack}/slack/events", content=body, headers=sign(body, secret="wrong")
        )
        assert forged.status_code == 401
        response = await http.post(f"{crmops_slack}/slack/events", content=body, headers=sign(body))
    assert response.status_code == 200
    await wait_until(lambda: bool(fake_slack.hook_posts["process"]), within=10)
    assert "王小明" in _text(fake_slack.hook_posts["process"][0])


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("3", 0),
        ('{"a": 1}', 1),
        ('{"a": [{"b": []}, {}]}', 4),
        ('{"text": "[[[[{{{{"}', 1),  # brackets in strings do not count
        ('{"text": "a \\" [[[ \\\\", "b": [[]]}', 3),  # nor after escaped quotes
        ("[" * 1000 + "]" * 1000, 1000),
    ],
)
def test_json_depth_counts_nesting_outside_strings(text: str, depth: int) -> None:
    assert json_depth(text) == depth


async def test_a_json_payload_that_is_not_an_object_is_a_400(endpoint: SlackEndpoint) -> None:
    for body in ("[1, 2]", "payload=%5B%5D"):
        headers = sign(body)
        if body.startswith("["):
            headers["Content-Type"] = "application/json"
        response = await endpoint.post(body, headers)
        assert response.status_code == 400, body
        assert "a Slack payload is a JSON object" in response.text
