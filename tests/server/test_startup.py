"""Start-up: each `crmops` command imports only what it uses (issue 13; bench/startup.py
measures the time). Each case runs the real command in a fresh interpreter and reads back
every module it had imported when the command was done."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

import pytest
import typer

from server.cli import COMMANDS, TOOL_COMMANDS, LazyGroup, app
from server.cli_tools import commands as tool_commands
from tests.server.mcp_http import INITIALIZE
from tools.table import TOOLS

ROOT = Path(__file__).resolve().parents[2]
WAIT = 60

# `crmops ARGS` in this interpreter, then the imported modules as JSON to the file named
# by the first argument (stdout belongs to the command: MCP's protocol, the help text).
RUNNER = """
import json, sys
from server.cli import main
out, sys.argv = sys.argv[1], ["crmops", *sys.argv[2:]]
try:
    main()
except SystemExit:
    pass
with open(out, "w") as handle:
    json.dump(sorted(sys.modules), handle)
"""

HEAVY = (
    "mcp",
    "httpx",
    "starlette",
    "uvicorn",
    "slack_bolt",
    "slack_sdk",
    "aiohttp",
    "redis",
    "psycopg",
    "openpyxl",
    "phonenumbers",
    "pydantic_settings",
)
"""What `crmops errors` must not load: MCP, HTTP client or server, Slack, our backends..."""

TOOL_COMMAND_NAMES = tuple(str(info.name) for info in tool_commands.registered_commands)
MODULE_OF = {command.name: command.module for command in COMMANDS} | dict.fromkeys(
    TOOL_COMMAND_NAMES, TOOL_COMMANDS
)
"""Each built-in command's module (the tool commands all live in one)."""

WHAT_TOOL_COMMANDS_RUN = {
    *(row.function.partition(":")[0] for row in TOOLS),
    "tools.services",
    "tools.settings",
    "server.render",
}
"""What the tool commands import when they run, never to list or to build them."""

MCP_SESSION = [
    INITIALIZE,
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
]


def loaded_by(
    tmp_path: Path, *args: str, stdin: str = "", answered: int | None = None
) -> tuple[set[str], str]:
    """The top-level packages and modules `crmops ARGS` imported, and its stdout.

    `stdin` is written at once; with `answered`, stdin stays open until the JSON-RPC answer
    of that id came back (an MCP server over stdio ends at end of input, possibly before it
    answered what it had read), then closes."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CRMOPS_", "SOCIALEPOCH_", "XIAOLANBEN_", "BANGWO8_", "SLACK_"))
    }
    env["PYTHONPATH"] = str(ROOT)
    env["CRMOPS_DB"] = str(tmp_path / "crmops.db")
    out = tmp_path / "modules.json"
    errors = tmp_path / "stderr.txt"
    with (
        errors.open("w", encoding="utf-8") as stderr,
        subprocess.Popen(
            [sys.executable, "-c", RUNNER, str(out), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            cwd=tmp_path,
            env=env,
        ) as process,
    ):
        assert process.stdin is not None
        assert process.stdout is not None
        killer = threading.Timer(WAIT, process.kill)
        killer.start()
        try:
            process.stdin.write(stdin)
            process.stdin.flush()
            lines = _lines_until_answer(process.stdout, answered) if answered else []
            process.stdin.close()
            stdout = "".join(lines) + process.stdout.read()
            process.wait()
        finally:
            killer.cancel()
    assert out.exists(), errors.read_text(encoding="utf-8")
    modules: list[str] = json.loads(out.read_text(encoding="utf-8"))
    return set(modules), stdout


def _lines_until_answer(stdout: IO[str], answer_id: int) -> list[str]:
    lines = []
    for line in stdout:
        lines.append(line)
        if json.loads(line).get("id") == answer_id:
            break
    return lines


def packages(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def test_errors_loads_no_mcp_http_slack_backends_or_settings(tmp_path: Path) -> None:
    modules, stdout = loaded_by(tmp_path, "errors", "502")
    assert "socialepoch 502" in stdout
    assert not packages(modules) & set(HEAVY)
    assert not {"server.mcp_server", "server.cli_tools", "tools.settings"} & modules


def test_help_lists_every_command_without_importing_one(tmp_path: Path) -> None:
    modules, stdout = loaded_by(tmp_path, "--help")
    for command in COMMANDS:
        assert command.name in stdout
        assert command.module not in modules
    # The tool commands are read from their module, which loads nothing they run.
    assert TOOL_COMMAND_NAMES
    for name in TOOL_COMMAND_NAMES:
        assert f"  {name} " in stdout
    assert not WHAT_TOOL_COMMANDS_RUN & modules
    assert "slack" in stdout  # bots/ through the entry point: its help, not its bolt app
    assert "Run the Slack bot" in stdout
    assert not packages(modules) & {*HEAVY, "pydantic", "rich"}
    assert not {"bots.app", "bots.run", "tools.settings"} & modules


def test_each_commands_help_line_is_its_own(tmp_path: Path) -> None:
    """The one-line help `crmops --help` lists is the loaded command's own: the table's
    cannot drift apart from it, nor a tool command's from its docstring."""
    group = typer.main.get_command(app)
    assert isinstance(group, LazyGroup)
    context = typer.Context(group)
    rows = group.command_rows(context)
    assert [name for name, _ in rows] == group.list_commands(context)
    assert {command.name for command in COMMANDS} | set(TOOL_COMMAND_NAMES) <= dict(rows).keys()
    for name, help_line in rows:
        loaded = group.get_command(context, name)
        assert loaded is not None, name
        assert loaded.help is not None
        assert loaded.help.splitlines()[0] == help_line


def test_an_unknown_command_is_none_of_them() -> None:
    group = typer.main.get_command(app)
    assert isinstance(group, LazyGroup)
    assert group.get_command(typer.Context(group), "drop-everything") is None


def test_mcp_over_stdio_loads_no_sandbox_bulk_engine_or_backends(tmp_path: Path) -> None:
    session = "".join(json.dumps(message) + "\n" for message in MCP_SESSION)
    modules, stdout = loaded_by(tmp_path, "mcp", stdin=session, answered=2)
    answers = [json.loads(line) for line in stdout.splitlines()]
    assert answers[-1]["id"] == 2
    assert {tool["name"] for tool in answers[-1]["result"]["tools"]} >= {"lookup_error_code"}
    # The MCP SDK imports starlette and uvicorn itself, even on stdio (sse-starlette), so
    # only what crmops adds is checked: no simulator, nothing of HTTP serving or storage
    # backends, no bulk engine or spreadsheet reader before the first import.
    assert not {m for m in modules if m.startswith(("tools.sandbox", "tools.bulk"))}
    assert not {"server.http_app", "tools.serving"} & modules
    assert not packages(modules) & {"openpyxl", "redis", "psycopg", "slack_bolt", "aiohttp"}
    # The vendor clients, and httpx with them, load at the first vendor call, not to list tools.
    assert "httpx" not in packages(modules)
    assert not {m for m in modules if m.endswith((".client", ".auth")) and "vendors" in m}


def test_a_dry_run_import_loads_no_sandbox_mcp_or_http_server(tmp_path: Path) -> None:
    source = tmp_path / "customers.csv"
    source.write_text("客户名称,企业名称\n云帆软件,深圳云帆软件有限公司\n", encoding="utf-8")
    modules, stdout = loaded_by(
        tmp_path, "import", str(source), "--vendor", "xiaolanben", "--dry-run", "--json"
    )
    assert json.loads(stdout)["valid"] == 1
    assert not {m for m in modules if m.startswith("tools.sandbox")}
    forbidden = {"mcp", "starlette", "uvicorn", "slack_bolt", "aiohttp", "openpyxl", "redis"}
    assert not packages(modules) & forbidden


@pytest.mark.parametrize("name", ["staff", "ticket", "doctor", "sandbox", "slack"])
def test_a_commands_help_loads_only_that_command(tmp_path: Path, name: str) -> None:
    modules, stdout = loaded_by(tmp_path, name, "--help")
    assert "Usage:" in stdout
    others = set(MODULE_OF.values()) - {MODULE_OF.get(name)}
    assert not others & modules


def test_a_tool_commands_help_loads_nothing_it_runs(tmp_path: Path) -> None:
    modules, stdout = loaded_by(tmp_path, "tickets", "--help")
    assert "List Bangwo8" in stdout
    assert "1<=x<=100" in stdout  # the bound the tool's schema states too
    assert not WHAT_TOOL_COMMANDS_RUN & modules
    assert not packages(modules) & set(HEAVY)  # pydantic it may: typer's own parameter types
