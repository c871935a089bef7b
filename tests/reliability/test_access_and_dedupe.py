"""Who gets in, and what happens twice: the gaps left by tests/server and tests/bots.

MCP over HTTP: empty and malformed bearer tokens, look-alike hosts and origins, and the
read-only server over HTTP. Slack: unsigned requests, retried deliveries (X-Slack-Retry-Num)
and a confirm button pressed twice at the same moment.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.bots.conftest import (
    CHANNEL,
    TEAM,
    WRITER,
    SlackEndpoint,
    access,
    endpoint,
    fake_slack,
    sign,
    slack_settings,
    store,
)
from tests.bots.waiting import wait_until
from tests.sandbox_fixtures import Sandbox
from tests.server.mcp_http import INITIALIZE, MCP_HEADERS, serve_mcp_http
from tools.settings import Settings

__all__ = ["access", "endpoint", "fake_slack", "slack_settings", "store"]

TOKEN = "mcp-token-CANARY-0d9e8f7a6b5c4d3e2f1a"
WAIT = 30
WRITE_TOOLS = {"import_customer", "create_ticket"}


@pytest.fixture
def mcp_url(settings: Settings) -> Iterator[str]:
    with serve_mcp_http(settings, TOKEN) as url:
        yield url


@pytest.fixture
def read_only_url(settings: Settings) -> Iterator[str]:
    with serve_mcp_http(settings, TOKEN, read_only=True) as url:
        yield url


def _post(url: str, headers: dict[str, str]) -> httpx.Response:
    with httpx.Client(timeout=WAIT) as http:
        return http.post(f"{url}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **headers})


@pytest.mark.parametrize(
    "authorization",
    ["", "bearer", f"Bearer {TOKEN} extra", f"Bearer {TOKEN.upper()}", f"Token {TOKEN}",
     f"Bearer {TOKEN[:8]}", f"Bearer {TOKEN},{TOKEN}"],
)  # fmt: skip
def test_mcp_refuses_empty_and_malformed_bearer_tokens(mcp_url: str, authorization: str) -> None:
    answer = _post(mcp_url, {"Authorization": authorization})
    assert answer.status_code == 401
    assert TOKEN not in answer.text


@pytest.mark.parametrize("value", [b"Bearer ", b"Bearer \t ", b" ", b'Bearer ""'])
def test_mcp_refuses_a_bearer_with_an_empty_token_sent_raw(mcp_url: str, value: bytes) -> None:
    """httpx will not send trailing blanks in a header, so these go over a plain socket."""
    host, port = mcp_url.removeprefix("http://").split(":")
    body = json.dumps(INITIALIZE).encode()
    request = (
        b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: " + value + b"\r\n"
        b"Accept: application/json, text/event-stream\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
    )
    with socket.create_connection((host, int(port)), timeout=WAIT) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "127.0.0.1.evil.example"},
        {"Host": "localhost.evil.example:80"},
        {"Host": "evil.example"},
        {"Origin": "http://127.0.0.1.evil.example"},
        {"Origin": "http://localhost.evil.example:3000"},
        {"Origin": "null"},
        {"Origin": "https://evil.example"},
    ],
)
def test_mcp_refuses_look_alike_hosts_and_origins_even_with_the_token(
    mcp_url: str, headers: dict[str, str]
) -> None:
    answer = _post(mcp_url, {"Authorization": f"Bearer {TOKEN}", **headers})
    assert answer.status_code in {400, 403, 421}


async def test_read_only_over_http_lists_and_runs_no_write_tool(
    read_only_url: str, sandbox: Sandbox
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with anyio.fail_after(WAIT):
        async with (
            httpx2.AsyncClient(headers=headers, timeout=WAIT) as http_client,
            Client(streamable_http_client(f"{read_only_url}/mcp", http_client=http_client)) as mcp,
        ):
            listed = {tool.name for tool in (await mcp.list_tools()).tools}
            attempt = await mcp.call_tool("create_ticket", {"subject": "写", "message": "入"})
    assert listed
    assert not listed & WRITE_TOOLS
    assert attempt.is_error
    assert sandbox.bangwo8.tickets == {}
    assert sandbox.bangwo8.counters["requests"] == 0


# --- Slack --------------------------------------------------------------------------------


def _command_body(endpoint: SlackEndpoint, text: str, trigger: str, hook: str) -> str:
    return urlencode(
        {
            "command": "/crm",
            "text": text,
            "team_id": TEAM,
            "user_id": WRITER,
            "channel_id": CHANNEL,
            "response_url": endpoint.fake.hook_url(hook),
            "trigger_id": trigger,
        }
    )


@pytest.mark.parametrize(
    "drop", ["X-Slack-Signature", "X-Slack-Request-Timestamp", "both", "scheme"]
)
async def test_slack_refuses_unsigned_requests(
    endpoint: SlackEndpoint, sandbox: Sandbox, drop: str
) -> None:
    body = _command_body(endpoint, "staff", "trigger-unsigned", "unsigned")
    headers = sign(body)
    if drop == "both":
        headers = {"Content-Type": headers["Content-Type"]}
    elif drop == "scheme":
        headers["X-Slack-Signature"] = headers["X-Slack-Signature"].replace("v0=", "v1=")
    else:
        del headers[drop]
    response = await endpoint.post(body, headers)
    assert response.status_code == 401
    await asyncio.sleep(0.2)
    assert endpoint.fake.hook_posts["unsigned"] == []
    assert sandbox.xiaolanben.counters["requests"] == 0


async def test_slack_retries_of_one_delivery_are_processed_once(
    endpoint: SlackEndpoint, sandbox: Sandbox
) -> None:
    """Slack resends a delivery it thinks timed out, with X-Slack-Retry-Num 1, 2, 3."""
    sandbox.xiaolanben.seed()
    body = _command_body(endpoint, "staff", "trigger-retried", "retried")
    answers = [await endpoint.post(body, sign(body))]
    for number in (1, 2, 3):
        headers = {
            **sign(body),
            "X-Slack-Retry-Num": str(number),
            "X-Slack-Retry-Reason": "http_timeout",
        }
        answers.append(await endpoint.post(body, headers))
    assert [a.status_code for a in answers] == [200] * 4
    await wait_until(lambda: bool(endpoint.fake.hook_posts["retried"]), within=10)
    await asyncio.sleep(0.3)  # time for a wrongly handled retry to show
    assert len(endpoint.fake.hook_posts["retried"]) == 1
    assert sandbox.xiaolanben.counters["requests"] == 1


def _confirmation(ask: dict[str, Any]) -> str:
    actions = next(block for block in ask["blocks"] if block["type"] == "actions")
    return str(actions["elements"][0]["value"])


async def test_a_double_clicked_confirm_writes_once(
    endpoint: SlackEndpoint, sandbox: Sandbox
) -> None:
    """Two presses of one confirm button at the same moment (two deliveries, two trigger ids),
    then a retried delivery of a press: one ticket."""
    ask = (await endpoint.command('ticket "双击" "只建一次"')).json()
    confirmation = _confirmation(ask)
    presses = await asyncio.gather(
        endpoint.press("crm_confirm", confirmation, hook="click1"),
        endpoint.press("crm_confirm", confirmation, hook="click2"),
    )
    assert [p.status_code for p in presses] == [200, 200]
    await wait_until(
        lambda: (
            bool(endpoint.fake.hook_posts["click1"]) and bool(endpoint.fake.hook_posts["click2"])
        ),
        within=10,
    )
    await wait_until(lambda: len(sandbox.bangwo8.tickets) == 1, within=10)
    await asyncio.sleep(0.3)
    assert len(sandbox.bangwo8.tickets) == 1
    assert len(sandbox.bangwo8.create_request_ids) == 1
