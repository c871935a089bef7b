"""The MCP server driven in memory by a real `mcp.Client`, the vendors simulated on loopback."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, Implementation, TextContent, Tool
from pydantic import BaseModel, TypeAdapter

from server.mcp_server import TOOL_NAMES, ToolSpec, as_mcp_tool, build_server
from tests.sandbox_fixtures import SECRETS, Sandbox, unconfigured_settings
from tools.customers import CustomerImport, CustomerQuery
from tools.errors import ConfigurationError
from tools.lookup import ErrorLookup
from tools.services import Services
from tools.settings import Settings
from tools.staff import StaffList
from tools.table import ToolRow
from tools.tickets import CreatedTicket, TicketList

WAIT = 30  # seconds any one exchange may take

# The issue's table: (read-only, destructive, idempotent, open world).
ANNOTATIONS = {
    "lookup_error_code": (True, False, True, False),
    "import_customer": (False, False, False, True),
    "query_customer": (True, False, True, True),
    "list_staff": (True, False, True, True),
    "create_ticket": (False, False, False, True),
    "list_tickets": (True, False, True, True),
}
RESULT_MODELS: dict[str, type[BaseModel]] = {
    "lookup_error_code": ErrorLookup,
    "import_customer": CustomerImport,
    "query_customer": CustomerQuery,
    "list_staff": StaffList,
    "create_ticket": CreatedTicket,
    "list_tickets": TicketList,
}
READ_ONLY = {name for name, hints in ANNOTATIONS.items() if hints[0]}


@asynccontextmanager
async def connected(services: Services) -> AsyncIterator[Client]:
    """A client of a server with every tool, on `services`.

    (Not a fixture: a `Client` must be entered and left in one task.)
    """
    async with Client(build_server(services.settings, services=services)) as client:
        yield client


async def tools_of(server: MCPServer[Any]) -> dict[str, Tool]:
    with anyio.fail_after(WAIT):
        async with Client(server) as client:
            listed = await client.list_tools()
    return {tool.name: tool for tool in listed.tools}


def error_text(result: CallToolResult) -> str:
    assert result.is_error, result
    assert isinstance(result.content[0], TextContent)
    text = result.content[0].text
    assert not any(secret in text for secret in SECRETS)
    assert "Traceback" not in text
    return text


async def call(client: Client, name: str, arguments: dict[str, Any]) -> CallToolResult:
    with anyio.fail_after(WAIT):
        return await client.call_tool(name, arguments)


# --- what is listed ---------------------------------------------------------------------------


async def test_every_tool_is_listed_with_truthful_annotations(settings: Settings) -> None:
    tools = await tools_of(build_server(settings))
    assert set(tools) == set(ANNOTATIONS) == set(TOOL_NAMES)
    for name, (read_only, destructive, idempotent, open_world) in ANNOTATIONS.items():
        hints = tools[name].annotations
        assert hints is not None
        assert hints.read_only_hint is read_only, name
        assert hints.destructive_hint is destructive, name
        assert hints.idempotent_hint is idempotent, name
        assert hints.open_world_hint is open_world, name
        assert hints.title
        assert tools[name].title == hints.title


async def test_every_output_schema_is_its_result_model(settings: Settings) -> None:
    tools = await tools_of(build_server(settings))
    for name, model in RESULT_MODELS.items():
        assert tools[name].output_schema == TypeAdapter(model).json_schema(), name


async def test_input_schemas_carry_the_tool_functions_descriptions(settings: Settings) -> None:
    tools = await tools_of(build_server(settings))
    for name, tool in tools.items():
        properties = tool.input_schema["properties"]
        assert not {"services", "progress", "ctx"} & set(properties), name
        assert tool.description, name
        if name != "lookup_error_code":  # tools/lookup.py documents its arguments in prose
            undocumented = [p for p, schema in properties.items() if "description" not in schema]
            assert undocumented == [], name
    customers = tools["import_customer"].input_schema["properties"]["customers"]
    assert "whatsApp" in customers["description"]
    assert "thirdDataId" in customers["description"]
    assert tools["import_customer"].input_schema["required"] == ["vendor", "customers"]


async def test_read_only_mode_serves_only_the_read_only_tools(settings: Settings) -> None:
    assert set(await tools_of(build_server(settings, read_only=True))) == READ_ONLY
    settings.crmops.read_only = True
    assert set(await tools_of(build_server(settings))) == READ_ONLY


async def test_a_subset_of_tools_can_be_chosen(settings: Settings) -> None:
    chosen = await tools_of(build_server(settings, tools=["list_staff", "create_ticket"]))
    assert set(chosen) == {"list_staff", "create_ticket"}
    settings.crmops.tools = " lookup_error_code , list_tickets "
    assert set(await tools_of(build_server(settings))) == {"lookup_error_code", "list_tickets"}


def test_an_unknown_tool_name_is_a_clear_startup_error(settings: Settings) -> None:
    with pytest.raises(ConfigurationError, match=r"unknown tool.*list_stuff.*the tools are"):
        build_server(settings, tools=["list_staff", "list_stuff"])


def test_read_only_with_only_writing_tools_leaves_nothing_and_says_so(settings: Settings) -> None:
    with pytest.raises(ConfigurationError, match="no tool left"):
        build_server(settings, read_only=True, tools=["create_ticket"])


async def test_unconfigured_vendors_tools_are_listed_and_explain_what_to_set() -> None:
    server = build_server(unconfigured_settings())
    assert set(await tools_of(server)) == set(TOOL_NAMES)
    with anyio.fail_after(WAIT):
        async with Client(server) as client:
            staff = await client.call_tool("list_staff", {})
            ticket = await client.call_tool("create_ticket", {"subject": "s", "message": "m"})
            lookup = await client.call_tool("lookup_error_code", {"code": "502"})
    assert "XIAOLANBEN_COMPANY_ID, XIAOLANBEN_SIGN_KEY" in error_text(staff)
    # The OAuth client, the preferred credential, is named first; Basic auth as the other way.
    assert "set BANGWO8_CLIENT_ID, BANGWO8_CLIENT_SECRET" in error_text(ticket)
    assert "or, without an OAuth client, BANGWO8_ACCOUNT and BANGWO8_PASSWORD" in error_text(ticket)
    assert lookup.is_error is False  # needs no vendor at all


# --- calling the tools ------------------------------------------------------------------------


async def test_import_reports_progress_per_batch_and_returns_structured_results(
    services: Services, sandbox: Sandbox
) -> None:
    async with connected(services) as client:
        reported: list[tuple[float, float | None, str | None]] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            reported.append((progress, total, message))

        contacts = [{"phone": "13909876543"}]
        rows = [{"customerName": f"客户{n}", "contacts": contacts} for n in range(12)]
        with anyio.fail_after(WAIT):
            result = await client.call_tool(
                "import_customer",
                {"vendor": "xiaolanben", "customers": rows},
                progress_callback=on_progress,
            )
        assert result.is_error is False
        imported = CustomerImport.model_validate(result.structured_content)
        assert (imported.created, imported.batches) == (12, 2)
        # The two chunks (10 and 2 rows) go out together and settle in either order.
        assert [done for done, _, _ in reported] in ([10, 12], [2, 12])
        assert {total for _, total, _ in reported} == {12}
        assert reported[-1][2] == "12 of 12 records sent"
        assert len(sandbox.xiaolanben.customers) == 12


async def test_every_tool_answers(services: Services, sandbox: Sandbox) -> None:
    async with connected(services) as client:
        sandbox.xiaolanben.seed()
        imported = await call(
            client,
            "import_customer",
            {"vendor": "socialepoch", "customers": [{"whatsApp": "8618221733141"}]},
        )
        queried = await call(client, "query_customer", {"whatsapp": "8618221733141"})
        staff = await call(client, "list_staff", {"search": "王", "limit": 2})
        created = await call(client, "create_ticket", {"subject": "无法登录", "message": "报错"})
        listed = await call(client, "list_tickets", {"limit": 5})
        lookup = await call(client, "lookup_error_code", {"code": "timestamp timeout"})

        assert CustomerImport.model_validate(imported.structured_content).total == 1
        assert CustomerQuery.model_validate(queried.structured_content).not_found == []
        assert len(StaffList.model_validate(staff.structured_content).staff) >= 1
        ticket = CreatedTicket.model_validate(created.structured_content).ticket
        assert TicketList.model_validate(listed.structured_content).tickets[0].id == ticket.id
        assert ErrorLookup.model_validate(lookup.structured_content).matches[0].code == "502"


async def test_a_vendor_refusal_names_its_code_meaning_and_action(services: Services) -> None:
    async with connected(services) as client:
        result = await call(
            client,
            "import_customer",
            {
                "vendor": "socialepoch",
                "customers": [{"whatsApp": "8618221733141", "agentAccount": "x"}],
            },
        )
        [outcome] = CustomerImport.model_validate(result.structured_content).outcomes
        assert outcome.status == "failed"
        assert outcome.reason is not None
        assert "code 508" in outcome.reason
        assert "Meaning:" in outcome.reason
        assert "What to do:" in outcome.reason


async def test_a_vendor_error_of_the_whole_call_is_a_tool_error(
    services: Services, sandbox: Sandbox
) -> None:
    sandbox.socialepoch.faults.fail_next = 100
    async with connected(services) as client:
        result = await call(
            client,
            "import_customer",
            {"vendor": "socialepoch", "customers": [{"whatsApp": "8618221733141"}]},
        )
    text = error_text(result)
    assert "nothing was imported" in text
    assert "call again with the same records" in text


# --- who asked: the audit log ---------------------------------------------------------------


async def test_writes_are_audited_under_the_caller_with_the_clients_name_marked_as_said(
    services: Services, sandbox: Sandbox
) -> None:
    server = build_server(services.settings, services=services)
    me = Implementation(name="claude-ai", version="1.0")
    async with Client(server, client_info=me) as client:
        await call(
            client,
            "import_customer",
            {"vendor": "socialepoch", "customers": [{"whatsApp": "8618221733141"}]},
        )
        await call(client, "create_ticket", {"subject": "无法登录", "message": "报错"})
    entries = await services.store.audit.recent()
    # In memory there is no credential: the caller is the local user who started the server
    # (`server.identity`); the client's name is only what it says of itself.
    (actor,) = {entry.actor for entry in entries}
    assert actor.surface == "mcp"
    assert actor.name.startswith("stdio")
    assert actor.name.endswith('(client says "claude-ai")')
    assert {entry.operation for entry in entries} == {
        "import_customer",
        "bulk_import",
        "create_ticket",
    }


def test_the_actor_is_not_part_of_any_input_schema() -> None:
    server = build_server(unconfigured_settings())
    for tool in anyio.run(server.list_tools):
        assert "actor" not in tool.input_schema["properties"]


async def test_a_wrong_key_is_reported_without_the_key(
    settings: Settings, services: Services
) -> None:
    from pydantic import SecretStr

    services.settings.xiaolanben.sign_key = SecretStr("not-the-real-key-123")
    async with Client(build_server(settings, services=services)) as client:
        text = error_text(await call(client, "list_staff", {}))
    assert "code 401" in text
    assert "not-the-real-key-123" not in text


async def test_a_validation_error_lists_each_record_and_field(
    services: Services, sandbox: Sandbox
) -> None:
    async with connected(services) as client:
        rows = [{"whatsApp": "8618221733141"}, {"whatsApp": "12"}, {"friendName": "无号码"}]
        text = error_text(
            await call(client, "import_customer", {"vendor": "socialepoch", "customers": rows})
        )
        assert "record 1: whatsApp" in text
        assert "record 2: whatsApp" in text
        assert sandbox.socialepoch.counters["requests"] == 0


async def test_arguments_outside_the_schema_are_refused_by_the_schema(services: Services) -> None:
    async with connected(services) as client:
        text = error_text(await call(client, "list_staff", {"limit": 0}))
        assert "limit" in text


class Nothing(BaseModel):
    pass


async def explode(services: Services) -> Nothing:
    """A tool with a bug."""
    raise RuntimeError("internal detail: /srv/secret/path")


async def test_a_crash_is_a_generic_error_with_the_traceback_in_the_log(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    server: MCPServer[Any] = MCPServer("test")
    row = ToolRow(
        "explode", "Explode", function=f"{__name__}:explode", read_only=True, idempotent=True
    )
    server.add_tool(as_mcp_tool(ToolSpec(explode, row), services), name="explode")
    with caplog.at_level(logging.ERROR, logger="crmops.mcp"), anyio.fail_after(WAIT):
        async with Client(server) as client:
            result = await client.call_tool("explode", {})
    text = error_text(result)
    assert "internal error" in text
    assert "/srv/secret/path" not in text
    crash = next(r for r in caplog.records if r.name == "crmops.mcp")
    assert crash.exc_info is not None
    assert "internal detail" in str(crash.exc_info[1])


# --- resources and prompts --------------------------------------------------------------------


async def test_the_error_catalog_is_a_resource(services: Services) -> None:
    async with connected(services) as client:
        with anyio.fail_after(WAIT):
            everything = await client.read_resource("crmops://errors")
            bangwo8 = await client.read_resource("crmops://errors/bangwo8")
        entries = json.loads(everything.contents[0].text)  # type: ignore[union-attr]
        assert {e["vendor"] for e in entries} == {"socialepoch", "xiaolanben", "bangwo8"}
        assert any(e["code"] == "502" and e["vendor"] == "socialepoch" for e in entries)
        only = json.loads(bangwo8.contents[0].text)  # type: ignore[union-attr]
        assert only
        assert {e["vendor"] for e in only} == {"bangwo8"}


async def test_an_unknown_vendor_resource_is_not_found(services: Services) -> None:
    async with connected(services) as client:
        from mcp.shared.exceptions import MCPError

        with anyio.fail_after(WAIT), pytest.raises(MCPError, match="no vendor 'nope'"):
            await client.read_resource("crmops://errors/nope")


async def test_the_triage_prompt_carries_the_failure(services: Services) -> None:
    async with connected(services) as client:
        with anyio.fail_after(WAIT):
            listed = await client.list_prompts()
            prompt = await client.get_prompt(
                "triage_failed_import", {"vendor": "xiaolanben", "failure": "code 401 签名错误"}
            )
        assert [p.name for p in listed.prompts] == ["triage_failed_import"]
        text = prompt.messages[0].content.text  # type: ignore[union-attr]
        assert "code 401 签名错误" in text
        assert 'lookup_error_code with\n   that code and vendor="xiaolanben"' in text
