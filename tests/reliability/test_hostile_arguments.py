"""Arguments a tool does not take are refused, never dropped: one policy for every MCP tool.

A model that writes `dryRun` for `dry_run` must get an error naming `dry_run`, not a real
import. Driven through a real in-memory MCP client against the simulators on loopback.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult

from server.mcp_server import TOOL_NAMES, build_server
from tests.server.test_mcp_server import error_text
from tools.sandbox.stack import Sandbox
from tools.services import Services

WAIT = 30  # seconds any one exchange may take
RECORD = {"whatsApp": "8618221733141"}


async def call(services: Services, name: str, arguments: dict[str, Any]) -> CallToolResult:
    with anyio.fail_after(WAIT):
        async with Client(build_server(services.settings, services=services)) as client:
            return await client.call_tool(name, arguments)


async def test_a_misspelt_dry_run_is_refused_and_nothing_is_imported(
    services: Services, sandbox: Sandbox
) -> None:
    arguments = {"vendor": "socialepoch", "customers": [RECORD], "dryRun": True}
    text = error_text(await call(services, "import_customer", arguments))
    assert 'unknown argument "dryRun" for import_customer; did you mean "dry_run"?' in text
    assert "known: vendor, customers, dry_run" in text
    assert sandbox.socialepoch.customers == {}
    assert sandbox.socialepoch.counters["requests"] == 0
    assert await services.store.audit.recent() == []


@pytest.mark.parametrize(
    ("name", "arguments", "meant"),
    [
        ("list_staff", {"serach": "王"}, "search"),
        ("list_staff", {"Limit": 2}, "limit"),
        ("list_tickets", {"created-start": "2026-01-01"}, "created_start"),
        ("query_customer", {"whatsapp": "8618221733141", "whatsApp": "1"}, "whatsapp"),
        ("create_ticket", {"subject": "s", "message": "m", "prio": "high"}, "priority"),
    ],
)
async def test_an_unknown_argument_names_the_closest_known_one(
    services: Services, sandbox: Sandbox, name: str, arguments: dict[str, Any], meant: str
) -> None:
    text = error_text(await call(services, name, arguments))
    assert f'for {name}; did you mean "{meant}"?' in text
    for simulator in (sandbox.socialepoch, sandbox.xiaolanben, sandbox.bangwo8):
        assert simulator.counters["requests"] == 0
    assert await services.store.audit.recent() == []


async def test_an_argument_like_no_known_one_lists_the_known_ones(services: Services) -> None:
    text = error_text(await call(services, "lookup_error_code", {"code": "502", "zzz": 1}))
    assert text.startswith('unknown argument "zzz" for lookup_error_code (known: code')
    assert "did you mean" not in text


async def test_sixty_thousand_hostile_argument_names_get_a_short_answer_quickly(
    services: Services,
) -> None:
    hostile = {f"k{n}\u202e\n" + "x" * 50: n for n in range(60_000)}
    started = time.monotonic()
    text = error_text(await call(services, "list_staff", hostile))
    assert time.monotonic() - started < 5
    assert len(text) < 1_000
    assert "59997 more" in text
    assert "\n" not in text
    assert "\u202e" not in text


async def test_every_listed_input_schema_refuses_additional_properties(
    services: Services,
) -> None:
    with anyio.fail_after(WAIT):
        async with Client(build_server(services.settings, services=services)) as client:
            listed = await client.list_tools()
    assert {tool.name for tool in listed.tools} == set(TOOL_NAMES)
    for tool in listed.tools:
        assert tool.input_schema["additionalProperties"] is False, tool.name
