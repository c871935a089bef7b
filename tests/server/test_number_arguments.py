"""A code or phone number may come as a JSON number (issue 15): the MCP Inspector's
`--tool-arg code=502` sends `502`, not `"502"`. A real MCP client, in memory, against the
simulators on loopback; the schemas say integer or string."""

from __future__ import annotations

from typing import Any

import anyio
from mcp import Client
from mcp.types import CallToolResult

from server.mcp_server import build_server
from tests.sandbox_fixtures import Sandbox
from tools.customers import CustomerQuery
from tools.lookup import ErrorLookup
from tools.services import Services
from tools.staff import StaffList

WAIT = 30
INTEGER_OR_STRING = [{"type": "integer"}, {"type": "string"}]


async def _calls(services: Services, *calls: tuple[str, dict[str, Any]]) -> list[CallToolResult]:
    server = build_server(services.settings, services=services)
    with anyio.fail_after(WAIT):
        async with Client(server) as client:
            return [await client.call_tool(name, arguments) for name, arguments in calls]


async def test_the_schemas_take_an_integer_or_a_string(services: Services) -> None:
    with anyio.fail_after(WAIT):
        async with Client(build_server(services.settings, services=services)) as client:
            tools = {tool.name: tool.input_schema for tool in (await client.list_tools()).tools}
    assert tools["lookup_error_code"]["properties"]["code"]["anyOf"] == INTEGER_OR_STRING
    whatsapp = tools["query_customer"]["properties"]["whatsapp"]["anyOf"]
    assert whatsapp[:2] == INTEGER_OR_STRING
    assert whatsapp[2] == {"type": "array", "items": {"anyOf": INTEGER_OR_STRING}}
    search = tools["list_staff"]["properties"]["search"]["anyOf"]
    assert search == [{"type": "integer"}, {"type": "string", "maxLength": 50}, {"type": "null"}]


async def test_an_error_code_as_a_number_is_looked_up_as_its_digits(services: Services) -> None:
    as_number, as_text, negative = await _calls(
        services,
        ("lookup_error_code", {"code": 502}),
        ("lookup_error_code", {"code": "502"}),
        ("lookup_error_code", {"code": -1, "vendor": "socialepoch"}),
    )
    assert not as_number.is_error, as_number
    assert as_number.structured_content == as_text.structured_content
    found = ErrorLookup.model_validate(as_number.structured_content)
    assert found.query == "502"
    assert found.found
    assert ErrorLookup.model_validate(negative.structured_content).query == "-1"


async def test_a_whatsapp_number_as_a_number_finds_the_customer(
    services: Services, sandbox: Sandbox
) -> None:
    sandbox.socialepoch.seed()
    one, several = await _calls(
        services,
        ("query_customer", {"whatsapp": 8613800138000}),
        ("query_customer", {"whatsapp": [8613800138000, "8613900000000"]}),
    )
    assert not one.is_error, one
    found = CustomerQuery.model_validate(one.structured_content)
    assert [customer.whatsapp for customer in found.customers] == ["8613800138000"]
    both = CustomerQuery.model_validate(several.structured_content)
    assert both.not_found == ["8613900000000"]


async def test_a_mobile_number_as_a_number_finds_the_staff_member(
    services: Services, sandbox: Sandbox
) -> None:
    sandbox.xiaolanben.seed()
    (result,) = await _calls(services, ("list_staff", {"search": 13912340003}))
    assert not result.is_error, result
    staff = StaffList.model_validate(result.structured_content).staff
    assert [member.mobile for member in staff] == ["13912340003"]


async def test_a_boolean_or_a_fraction_is_no_code_and_says_what_is_expected(
    services: Services,
) -> None:
    for value in (True, 502.5):
        (result,) = await _calls(services, ("lookup_error_code", {"code": value}))
        assert result.is_error
        text = str(result.content[0])
        assert "code" in text
        assert "valid string" in text
        assert "Traceback" not in text
