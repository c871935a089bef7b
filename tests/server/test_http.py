"""The MCP server over streamable HTTP on loopback: bearer token, DNS-rebinding protection."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from pydantic import SecretStr
from starlette.types import Receive, Scope, Send

from server.http_app import build_http_app, transport_security
from server.http_auth import BearerTokenMiddleware
from server.mcp_server import build_server
from tests.sandbox_fixtures import Sandbox
from tests.server.mcp_http import INITIALIZE, MCP_HEADERS, serve_mcp_http
from tools.errors import ConfigurationError
from tools.lookup import ErrorLookup
from tools.settings import Settings
from tools.staff import StaffList

TOKEN = "test-token-5b0f3c9e8d7a-1c2e4a6b8d0f"
WAIT = 30


@pytest.fixture
def http_settings(settings: Settings) -> Settings:
    settings.crmops.mcp_token = SecretStr(TOKEN)
    return settings


@pytest.fixture
def base_url(http_settings: Settings) -> Iterator[str]:
    """The whole HTTP app, served by uvicorn (lifespan on) on loopback in a thread."""
    with serve_mcp_http(http_settings, TOKEN) as url:
        yield url


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=WAIT) as client:
        yield client


def test_health_needs_no_token(base_url: str, http: httpx.Client) -> None:
    answer = http.get(f"{base_url}/healthz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok"}


@pytest.mark.parametrize(
    "authorization",
    [None, f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x", f"Basic {TOKEN}", "Bearer", TOKEN],
)
def test_mcp_without_the_right_token_is_401(
    base_url: str, http: httpx.Client, authorization: str | None
) -> None:
    headers = dict(MCP_HEADERS)
    if authorization is not None:
        headers["Authorization"] = authorization
    answer = http.post(f"{base_url}/mcp", json=INITIALIZE, headers=headers)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert TOKEN not in answer.text


def test_a_foreign_host_header_is_refused_even_with_the_token(
    base_url: str, http: httpx.Client
) -> None:
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {TOKEN}", "Host": "evil.example:80"}
    answer = http.post(f"{base_url}/mcp", json=INITIALIZE, headers=headers)
    assert answer.status_code == 421


def test_a_foreign_origin_is_refused(base_url: str, http: httpx.Client) -> None:
    headers = {
        **MCP_HEADERS,
        "Authorization": f"Bearer {TOKEN}",
        "Origin": "http://evil.example",
    }
    answer = http.post(f"{base_url}/mcp", json=INITIALIZE, headers=headers)
    assert answer.status_code == 403


def test_the_token_and_a_loopback_host_get_through(base_url: str, http: httpx.Client) -> None:
    headers = {**MCP_HEADERS, "Authorization": f"bearer {TOKEN}", "Origin": "http://localhost:3000"}
    answer = http.post(f"{base_url}/mcp", json=INITIALIZE, headers=headers)
    assert answer.status_code == 200


async def test_a_real_client_with_the_token_calls_tools(base_url: str, sandbox: Sandbox) -> None:
    sandbox.xiaolanben.seed()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with anyio.fail_after(WAIT):
        async with (
            httpx2.AsyncClient(headers=headers, timeout=WAIT) as http_client,
            Client(streamable_http_client(f"{base_url}/mcp", http_client=http_client)) as client,
        ):
            tools = await client.list_tools()
            staff = await client.call_tool("list_staff", {"limit": 2})
            lookup = await client.call_tool("lookup_error_code", {"code": "invalid_client"})
    assert len(tools.tools) == 6
    assert len(StaffList.model_validate(staff.structured_content).staff) == 2
    assert ErrorLookup.model_validate(lookup.structured_content).matches[0].vendor == "bangwo8"


def test_no_token_no_server(settings: Settings) -> None:
    with pytest.raises(ConfigurationError, match="CRMOPS_MCP_TOKEN"):
        build_http_app(build_server(settings), token=None, host="127.0.0.1")
    with pytest.raises(ConfigurationError, match="CRMOPS_MCP_TOKEN"):
        build_http_app(build_server(settings), token=SecretStr(""), host="127.0.0.1")


def test_the_middleware_never_shows_the_token() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:  # pragma: no cover
        raise AssertionError

    middleware = BearerTokenMiddleware(app, token=SecretStr(TOKEN), open_paths={"/healthz"})
    assert TOKEN not in repr(middleware)


def test_allowed_hosts_cover_the_bound_host_and_extra_names() -> None:
    public = transport_security("10.0.0.5", ["crmops.example.com"])
    assert "10.0.0.5:*" in public.allowed_hosts
    assert "crmops.example.com" in public.allowed_hosts
    assert "localhost:*" not in public.allowed_hosts
    loopback = transport_security("::1")
    assert "[::1]:*" in loopback.allowed_hosts
    assert "http://127.0.0.1:*" in loopback.allowed_origins
