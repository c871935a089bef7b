"""`crmops sandbox`, run as a newcomer runs it: a real process, real ports, a real MCP client."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from server.sandbox import parse_ports, tour_stops
from tools.errors import InputError
from tools.sandbox import SANDBOX_SECRETS

CRMOPS = [sys.executable, "-m", "server"]
WAIT = 60


def crmops_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOCIALEPOCH_", "CRMOPS_"))}
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    return env


def test_the_tour_visits_every_tool_and_exits_0(tmp_path: Path) -> None:
    done = subprocess.run(
        [*CRMOPS, "sandbox", "--tour"],
        capture_output=True,
        text=True,
        timeout=WAIT * 2,
        env={**crmops_env(tmp_path), "COLUMNS": "200"},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for tool in ("lookup_error_code", "list_staff", "query_customer", "import_customer"):
        assert f": {tool}:" in done.stdout or f". {tool}:" in done.stdout
    for tool in ("create_ticket", "list_tickets"):
        assert f". {tool}:" in done.stdout
    assert "every tool answered as expected" in done.stdout
    assert "record 0: whatsApp" in done.stdout  # the bad records, refused with their field
    assert '"created": 2' in done.stdout  # SocialEpoch import, and Xiaolanben's
    for secret in SANDBOX_SECRETS:
        assert secret not in done.stdout + done.stderr


def test_every_tool_is_on_the_tour() -> None:
    from server.mcp_server import TOOL_NAMES

    assert {stop.tool for stop in tour_stops()} == set(TOOL_NAMES)


@pytest.fixture
def running_sandbox(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    process = subprocess.Popen(
        [*CRMOPS, "sandbox", "--mcp-port", "0", "--simulator-ports", "0,0,0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**crmops_env(tmp_path), "COLUMNS": "200"},
    )
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Ctrl-C stops the sandbox" in line:
            break
    try:
        yield process, "".join(lines)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(WAIT)
        process.stdout.close()


async def test_a_real_mcp_client_reaches_the_running_sandbox(
    running_sandbox: tuple[subprocess.Popen[str], str], tmp_path: Path
) -> None:
    process, welcome = running_sandbox
    url = re.search(r"MCP \(streamable HTTP\)\s+(\S+)", welcome)
    token = re.search(r"bearer token\s+(\S+)", welcome)
    assert url, welcome
    assert token, welcome
    with anyio.fail_after(WAIT):
        done = await anyio.run_process([*CRMOPS, "sandbox", "--env"], env=crmops_env(tmp_path))
    exports = done.stdout.decode()
    assert f"export CRMOPS_MCP_TOKEN='{token[1]}'" in exports
    assert "export XIAOLANBEN_BASE_URL='http://127.0.0.1:" in exports

    headers = {"Authorization": f"Bearer {token[1]}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=WAIT) as http,
        Client(streamable_http_client(url[1], http_client=http)) as client,
    ):
        staff = await client.call_tool("list_staff", {"limit": 3})
        assert not staff.is_error
        assert staff.structured_content is not None
        assert len(staff.structured_content["staff"]) == 3  # the seeded demo staff

    process.send_signal(signal.SIGTERM)
    assert process.wait(WAIT) == 0
    port = int(url[1].rsplit(":", 1)[1].split("/")[0])
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # the port is free again
    assert not (tmp_path / "data" / "crmops" / "sandbox.json").exists()


def test_env_without_a_running_sandbox_says_how_to_start_one(tmp_path: Path) -> None:
    done = subprocess.run(
        [*CRMOPS, "sandbox", "--env"],
        capture_output=True,
        text=True,
        timeout=WAIT,
        env=crmops_env(tmp_path),
        check=False,
    )
    assert done.returncode == 78
    assert "start one with `crmops sandbox`" in done.stderr
    assert "Traceback" not in done.stderr


def test_simulator_ports_must_be_three_numbers() -> None:
    assert parse_ports("1,2,3") == (1, 2, 3)
    with pytest.raises(InputError, match="--simulator-ports"):
        parse_ports("8701,8702")
