"""`crmops sandbox`, run as a newcomer runs it: a real process, real ports, a real MCP client."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from server.sandbox.serve import parse_ports, parse_slack_ports
from server.sandbox.tour import tour_stops
from tools.errors import InputError
from tools.sandbox.stack import SANDBOX_SECRETS

CRMOPS = [sys.executable, "-m", "server"]
WAIT = 60


def crmops_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOCIALEPOCH_", "CRMOPS_"))}
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    return env


def run_crmops(
    tmp_path: Path, *args: str, timeout: float = WAIT, **env: str
) -> subprocess.CompletedProcess[str]:
    """`crmops ARGS` to completion in a clean environment (plus `env`), output captured."""
    return subprocess.run(
        [*CRMOPS, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**crmops_env(tmp_path), **env},
        check=False,
    )


def users_own_backends(tmp_path: Path) -> dict[str, str]:
    """The user's own database and Redis, which the sandbox must leave alone: the SQLite
    file is never to be created, and nothing listens at the other two (port 1)."""
    return {
        "CRMOPS_DB": str(tmp_path / "users-own.db"),
        "CRMOPS_REDIS_URL": "redis://127.0.0.1:1/0",
        "CRMOPS_DATABASE_URL": "postgresql://crmops@127.0.0.1:1/users_own",
    }


def assert_users_database_untouched(tmp_path: Path) -> None:
    assert not (tmp_path / "users-own.db").exists()
    assert not list((tmp_path / "data").rglob("*.db"))  # nor the default one


def test_the_tour_visits_every_tool_and_exits_0(tmp_path: Path) -> None:
    from server.mcp_server import TOOL_NAMES

    done = run_crmops(
        tmp_path,
        "sandbox",
        "--tour",
        timeout=WAIT * 2,
        COLUMNS="200",
        CRMOPS_DB=str(tmp_path / "users-own.db"),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert_users_database_untouched(tmp_path)  # the tour's imports and ticket went elsewhere
    headings = re.findall(r"^\d+\. ([a-z_ ]+): ", done.stdout, flags=re.MULTILINE)
    assert set(TOOL_NAMES) | {"bulk import"} <= set(headings), headings
    assert "every tool answered as expected" in done.stdout
    assert "record 0: whatsApp" in done.stdout  # the bad records, refused with their field
    assert "refused, as expected" in done.stdout
    assert "Wrong signature" in done.stdout  # the wrong key, explained from the catalog
    # The bundled CSV through the bulk engine: eight rows in, three refused with their row.
    assert re.search(r"rows_read\s+11\b", done.stdout)
    assert re.search(r"confirmed\s+8\b", done.stdout)
    assert re.search(r"rejected\s+3\b", done.stdout)
    assert "same customer as row 3" in done.stdout
    assert "打印机无法连接 Wi-Fi" in done.stdout  # the ticket created, then listed
    assert "Traceback" not in done.stderr
    for secret in SANDBOX_SECRETS:
        assert secret not in done.stdout + done.stderr


def test_every_tool_is_on_the_tour() -> None:
    from server.mcp_server import TOOL_NAMES

    assert set(TOOL_NAMES) <= {stop.tool for stop in tour_stops()}
    assert all(stop.try_it for stop in tour_stops())


@pytest.fixture
def running_sandbox(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    process = subprocess.Popen(
        [
            *CRMOPS,
            "sandbox",
            "--mcp-port",
            "0",
            "--simulator-ports",
            "0,0,0",
            "--slack-ports",
            "0,0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**crmops_env(tmp_path), "COLUMNS": "200", **users_own_backends(tmp_path)},
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


def _printed(welcome: str, label: str) -> str:
    found = re.search(rf"{label}\s+(\S+)", welcome)
    assert found, welcome
    return found[1]


def _port(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


def _children(pid: int) -> set[int]:
    """Linux: the processes `pid` started and has not reaped."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(child) for child in (task / "children").read_text().split()}
    return found


def _slack_command(text: str, *, secret: str, response_url: str) -> tuple[str, dict[str, str]]:
    """A `/crm` slash command as Slack sends it, signed with Slack's v0 scheme."""
    body = urlencode(
        {
            "command": "/crm",
            "text": text,
            "team_id": "T0SANDBOX",
            "user_id": "U0NEWCOMER",
            "channel_id": "C0SANDBOX",
            "response_url": response_url,
            "trigger_id": "sandbox-1",
        }
    )
    timestamp = str(int(time.time()))
    base = f"v0:{timestamp}:{body}".encode()
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return body, {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


async def _replies(http: httpx.AsyncClient, hook: str) -> list[object]:
    """What the bot posted to the fake Slack's `hook`, once it has (bounded wait)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        posts: list[object] = (await http.get(hook)).json()["posts"]
        if posts:
            return posts
        await anyio.sleep(0.05)  # another process answers: nothing here to wait on
    raise AssertionError(f"no reply at {hook} within {WAIT} s")


async def test_mcp_and_slack_reach_the_running_sandbox_which_stops_cleanly(
    running_sandbox: tuple[subprocess.Popen[str], str], tmp_path: Path
) -> None:
    process, welcome = running_sandbox
    mcp_url = _printed(welcome, r"MCP \(streamable HTTP\)")
    token = _printed(welcome, "bearer token")
    slack_url = _printed(welcome, "Slack endpoint")
    signing_secret = _printed(welcome, "signing secret")
    fake_api = _printed(welcome, "fake Slack Web API")
    children = _children(process.pid)
    assert len(children) == 1  # the Slack bot

    with anyio.fail_after(WAIT):
        done = await anyio.run_process([*CRMOPS, "sandbox", "--env"], env=crmops_env(tmp_path))
    exports = done.stdout.decode()
    assert f"export CRMOPS_MCP_TOKEN='{token}'" in exports
    assert f"export SLACK_SIGNING_SECRET='{signing_secret}'" in exports
    assert "export XIAOLANBEN_BASE_URL='http://127.0.0.1:" in exports
    # Both ways into Bangwo8: crmops's OAuth client, and the Basic account and password
    # that vendor doc 004's samples use (`curl -u account:password`), which work as printed.
    exported = dict(re.findall(r"^export (\w+)='([^']*)'$", exports, flags=re.MULTILINE))
    assert {"BANGWO8_CLIENT_ID", "BANGWO8_CLIENT_SECRET"} <= set(exported)
    basic = (exported["BANGWO8_ACCOUNT"], exported["BANGWO8_PASSWORD"])
    async with httpx.AsyncClient(timeout=WAIT) as bangwo8:
        tickets_url = exported["BANGWO8_BASE_URL"].rstrip("/") + "/api/v1/tickets.json"
        assert (await bangwo8.get(tickets_url, auth=basic)).status_code == 200
        assert (await bangwo8.get(tickets_url, auth=("nobody", "wrong"))).status_code == 401

    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=WAIT) as http,
        Client(streamable_http_client(mcp_url, http_client=http)) as client,
    ):
        staff = await client.call_tool("list_staff", {"limit": 3})
        assert not staff.is_error
        assert staff.structured_content is not None
        assert len(staff.structured_content["staff"]) == 3  # the seeded demo staff
        # A write through MCP: journaled and audited in the sandbox's own database, not in
        # the user's CRMOPS_DB, and no call to their Redis or PostgreSQL (nothing answers).
        imported = await client.call_tool(
            "import_customer",
            {"vendor": "socialepoch", "customers": [{"whatsApp": "8613912345678"}]},
        )
        assert not imported.is_error, imported.content
    assert_users_database_untouched(tmp_path)

    hook = fake_api.removesuffix("/api/") + "/hooks/newcomer"
    body, signed = _slack_command("staff 张", secret=signing_secret, response_url=hook)
    _, forged = _slack_command("staff 张", secret="not-the-secret", response_url=hook)
    async with httpx.AsyncClient(timeout=WAIT) as slack_http:
        refused = await slack_http.post(slack_url, content=body, headers=forged)
        assert refused.status_code == 401
        answer = await slack_http.post(slack_url, content=body, headers=signed)
        assert answer.status_code == 200
        posts = await _replies(slack_http, hook)
    assert "张伟" in str(posts[0])  # the seeded Xiaolanben staff member, in Slack's reply

    process.send_signal(signal.SIGTERM)
    assert process.wait(WAIT) == 0
    for url in (mcp_url, slack_url, fake_api):
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", _port(url))) != 0, f"{url} still answers"
    for child in children:
        with pytest.raises(ProcessLookupError):
            os.kill(child, 0)  # no orphan: the Slack bot ended (and was reaped) with the sandbox
    assert not (tmp_path / "data" / "crmops" / "sandbox.json").exists()


def _gone(pid: int) -> bool:
    """True once `pid` has exited (a zombie nobody reaped counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_the_slack_bot_ends_when_the_sandbox_is_killed(
    running_sandbox: tuple[subprocess.Popen[str], str], tmp_path: Path
) -> None:
    process, welcome = running_sandbox
    slack_url = _printed(welcome, "Slack endpoint")
    (child,) = _children(process.pid)

    process.kill()  # SIGKILL: no clean-up runs in the sandbox process
    process.wait(WAIT)

    deadline = time.monotonic() + WAIT
    while not _gone(child):
        assert time.monotonic() < deadline, "the Slack bot outlived the sandbox"
        time.sleep(0.05)
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", _port(slack_url))) != 0
    stale = run_crmops(tmp_path, "sandbox", "--env")
    assert stale.returncode == 78
    assert "the sandbox was killed" in stale.stderr


def test_a_taken_port_is_one_line_saying_what_to_do(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_crmops(
            tmp_path,
            "sandbox",
            "--mcp-port",
            "0",
            "--simulator-ports",
            "0,0,0",
            "--slack-ports",
            f"{port},0",
        )
    assert done.returncode == 1
    assert f"Slack endpoint on 127.0.0.1:{port}: Address already in use" in done.stderr
    assert "--slack-ports" in done.stderr
    assert "Traceback" not in done.stderr


def test_env_without_a_running_sandbox_says_how_to_start_one(tmp_path: Path) -> None:
    done = run_crmops(tmp_path, "sandbox", "--env")
    assert done.returncode == 78
    assert "start one with `crmops sandbox`" in done.stderr
    assert "Traceback" not in done.stderr


def test_ports_must_be_numbers_and_as_many_as_asked() -> None:
    assert parse_ports("1,2,3") == (1, 2, 3)
    with pytest.raises(InputError, match="--simulator-ports"):
        parse_ports("8701,8702")
    assert parse_slack_ports("0, 8705") == (0, 8705)
    with pytest.raises(InputError, match="--slack-ports"):
        parse_slack_ports("8704,x")
