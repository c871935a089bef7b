"""`crmops sandbox --env --client NAME` (issue 15): a client spawns a stdio server with only
HOME, PATH and a few more, so the sandbox's settings must be in the client's config.

Each printed config is used as its client would use it: the real MCP stdio client (which,
as Claude Desktop does, passes the server only its default variables plus the `env` block)
spawns the printed command and calls a tool of the running simulators."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from server.sandbox.clients import SERVER_NAME
from server.sandbox.state import write_state
from tests.server.test_sandbox import run_crmops
from tools.sandbox.stack import start_sandbox

WAIT = 60


@pytest.fixture
def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A running sandbox's state file, as `crmops sandbox` leaves it: the vendor settings,
    the MCP token and the Slack side (which a stdio server needs none of)."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # what a client passes its servers
    with start_sandbox(seed=True) as sandbox:
        env = {
            **sandbox.env(),
            "CRMOPS_MCP_TOKEN": "t" * 32,
            "SLACK_BOT_TOKEN": "xoxb-sandbox-0",
            "SLACK_SIGNING_SECRET": "s" * 32,
        }
        write_state(env)  # this process stands for the sandbox: it is alive
        yield sandbox.env()


def _printed(tmp_path: Path, client: str) -> str:
    done = run_crmops(tmp_path, "sandbox", "--env", "--client", client)
    assert done.returncode == 0, done.stderr
    assert not done.stderr
    return done.stdout


async def _staff_through(command: str, args: list[str], env: dict[str, str], cwd: Path) -> Any:
    """`list_staff` through a stdio server spawned as a client spawns it, in `cwd` (which
    has no .env: the config must be enough)."""
    server = StdioServerParameters(command=command, args=args, env=env, cwd=cwd)
    with anyio.fail_after(WAIT):
        async with Client(stdio_client(server)) as client:
            result = await client.call_tool("list_staff", {"limit": 2})
    assert not result.is_error, result
    return result.structured_content


@pytest.mark.parametrize("client", ["claude", "cursor"])
async def test_claude_and_cursor_get_an_mcp_servers_entry_that_works_as_printed(
    client: str, running: dict[str, str], tmp_path: Path
) -> None:
    config = json.loads(_printed(tmp_path, client))
    assert list(config) == ["mcpServers"]
    server = config["mcpServers"][SERVER_NAME]
    assert Path(server["command"]).is_absolute()  # a client's PATH is not the shell's
    assert server["args"][-1] == "mcp"
    assert server["env"] == running  # the vendors' settings, nothing of MCP or Slack
    staff = await _staff_through(server["command"], server["args"], server["env"], tmp_path)
    assert len(staff["staff"]) == 2


async def test_vscode_gets_a_typed_stdio_server_under_servers(
    running: dict[str, str], tmp_path: Path
) -> None:
    config = json.loads(_printed(tmp_path, "vscode"))
    assert list(config) == ["servers"]
    server = config["servers"][SERVER_NAME]
    assert server["type"] == "stdio"
    assert server["env"] == running
    staff = await _staff_through(server["command"], server["args"], server["env"], tmp_path)
    assert len(staff["staff"]) == 2


async def test_the_inspector_gets_command_lines_with_one_e_option_per_setting(
    running: dict[str, str], tmp_path: Path
) -> None:
    lines = [line for line in _printed(tmp_path, "inspector").splitlines() if line]
    commands = [shlex.split(line) for line in lines if not line.startswith("#")]
    assert len(commands) == 2
    web, cli = commands
    assert web[:2] == cli[:2] == ["npx", "@modelcontextprotocol/inspector"]
    # The web UI (the Inspector's default mode): its options (`-e KEY=VALUE`, split at the
    # first `=`), then `--`, then the server's command line.
    separator = web.index("--")
    options, server = web[2:separator], web[separator + 1 :]
    assert options[::2] == ["-e"] * len(running)
    passed = dict(option.split("=", 1) for option in options[1::2])
    assert passed == running
    assert server[-1] == "mcp"
    # `--cli` comes first and takes the command before its options (Inspector 2.x reads the
    # leading words up to the first option as the server's command).
    assert cli[2] == "--cli"
    assert cli[3 : 3 + len(server)] == server
    assert cli[3 + len(server) :] == [*options, "--method", "tools/list"]
    staff = await _staff_through(server[0], server[1:], passed, tmp_path)
    assert len(staff["staff"]) == 2


def test_an_unknown_client_is_a_usage_error_naming_the_known_ones(tmp_path: Path) -> None:
    done = run_crmops(tmp_path, "sandbox", "--env", "--client", "emacs")
    assert done.returncode == 2
    for name in ("claude", "cursor", "vscode", "inspector"):
        assert name in done.stderr


def test_without_a_running_sandbox_it_says_how_to_start_one(tmp_path: Path) -> None:
    done = run_crmops(tmp_path, "sandbox", "--env", "--client", "claude")
    assert done.returncode != 0
    assert "crmops sandbox" in done.stderr
    assert "Traceback" not in done.stderr
