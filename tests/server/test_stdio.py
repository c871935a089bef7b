"""`crmops mcp` as a stdio subprocess, its vendors the simulators on loopback."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.types import CallToolResult, TextContent

from server.mcp_server import TOOL_NAMES
from tests.sandbox_fixtures import SECRETS, Sandbox

REPO = Path(__file__).resolve().parents[2]
WAIT = 60  # seconds for the whole session: start-up, every tool, shut-down


def crmops_command(*args: str) -> StdioServerParameters:
    """`crmops ARGS` from this checkout: the console script when installed, else `-m server`."""
    script = Path(sys.executable).with_name("crmops")
    command, prefix = (str(script), []) if script.exists() else (sys.executable, ["-m", "server"])
    return StdioServerParameters(
        command=command,
        args=[*prefix, *args],
        env={"PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"},
    )


def text_of(result: CallToolResult) -> str:
    assert isinstance(result.content[0], TextContent)
    return result.content[0].text


async def test_every_tool_over_stdio(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.xiaolanben.seed()
    params = crmops_command("mcp")
    params.env = {**(params.env or {}), **sandbox.env()}
    results: dict[str, CallToolResult] = {}
    calls: list[tuple[str, dict[str, Any]]] = [
        ("lookup_error_code", {"code": "502", "vendor": "socialepoch"}),
        (
            "import_customer",
            {"vendor": "socialepoch", "customers": [{"whatsApp": "8618221733141"}]},
        ),
        ("query_customer", {"whatsapp": ["8618221733141"]}),
        ("list_staff", {"limit": 3}),
        ("create_ticket", {"subject": "无法登录", "message": "客户说报错"}),
        ("list_tickets", {"limit": 5}),
    ]
    stderr_path = tmp_path / "stderr.log"
    with stderr_path.open("w", encoding="utf-8") as stderr, anyio.fail_after(WAIT):
        async with Client(stdio_client(params, errlog=stderr), read_timeout_seconds=WAIT) as client:
            listed = await client.list_tools()
            for name, arguments in calls:
                results[name] = await client.call_tool(name, arguments)
            refused = await client.call_tool(
                "import_customer",
                {
                    "vendor": "socialepoch",
                    "customers": [{"whatsApp": "86182", "agentAccount": "x"}],
                },
            )

    assert {tool.name for tool in listed.tools} == set(TOOL_NAMES)
    for name, result in results.items():
        assert result.is_error is False, (name, text_of(result))
        assert result.structured_content is not None, name
    assert results["query_customer"].structured_content["not_found"] == []
    assert len(results["list_staff"].structured_content["staff"]) == 3
    assert len(sandbox.bangwo8.tickets) == 1
    assert refused.is_error is True
    assert "record 0: whatsApp" in text_of(refused)
    log = stderr_path.read_text(encoding="utf-8")
    assert not any(secret in log for secret in SECRETS)


async def test_stdio_refuses_an_unknown_tool_name_at_start(tmp_path: Path) -> None:
    command = crmops_command("mcp", "--tools", "list_stuff")
    with anyio.fail_after(WAIT):
        done = await anyio.run_process(
            [command.command, *command.args],
            env={**os.environ, **(command.env or {})},
            cwd=tmp_path,
            check=False,
        )
    assert done.returncode == 78
    assert done.stdout == b""
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert "list_stuff" in lines[0]
