"""`/metrics` of a running `crmops mcp --http` and `crmops slack`, scraped after real calls
against the simulators: a plain one, one refused as over the limit (then retried), one
answered 5xx (then retried), one refused with a documented vendor code (failed)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from bots.fake_slack import FakeSlack
from tests.bots.conftest import BOT_TOKEN, CHANNEL, SIGNING_SECRET, TEAM, WRITER, fake_slack, sign
from tests.bots.waiting import wait_until
from tests.conftest import shows_canary
from tests.observability.processes import (
    MCP_ARGS,
    MCP_TOKEN,
    SLACK_ARGS,
    Running,
    crmops_process,
)
from tests.observability.scraping import METRICS_TOKEN, PHONE, Scrape, scrape
from tests.sandbox_fixtures import Sandbox

__all__ = ["fake_slack"]

WAIT = 60
STAFF = "list staff"  # the Xiaolanben API's name (tools/vendors/xiaolanben/client.py)


@pytest.fixture
def crmops_mcp(sandbox: Sandbox, tmp_path: Path) -> Iterator[Running]:
    env = {
        **sandbox.env(),
        "CRMOPS_MCP_TOKEN": MCP_TOKEN,
        "CRMOPS_METRICS_TOKEN": METRICS_TOKEN,
        "CRMOPS_LOG_FORMAT": "json",
    }
    with crmops_process(MCP_ARGS, env, tmp_path, name="mcp") as running:
        yield running


async def _call_tools(url: str, sandbox: Sandbox) -> list[bool]:
    """Each call's `isError`: plain, rate-limited once, 5xx once, refused (403), by phone."""
    sandbox.xiaolanben.seed()
    errors = []
    headers = {"Authorization": f"Bearer {MCP_TOKEN}"}
    with anyio.fail_after(WAIT):
        async with (
            httpx2.AsyncClient(headers=headers, timeout=WAIT) as http_client,
            Client(streamable_http_client(f"{url}/mcp", http_client=http_client)) as client,
        ):
            errors.append((await client.call_tool("list_staff", {"limit": 2})).is_error)
            sandbox.xiaolanben.faults.rate_limit_next = 1
            errors.append((await client.call_tool("list_staff", {"limit": 2})).is_error)
            sandbox.xiaolanben.faults.fail_next = 1
            errors.append((await client.call_tool("list_staff", {"limit": 2})).is_error)
            sandbox.xiaolanben.window = -1.0  # every signature is out of its window: 403
            errors.append((await client.call_tool("list_staff", {"limit": 2})).is_error)
            sandbox.xiaolanben.window = 10.0
            customer = await client.call_tool("query_customer", {"whatsapp": PHONE})
            errors.append(customer.is_error)
    return errors


async def test_mcp_metrics_count_each_vendor_request_and_tool_call(
    crmops_mcp: Running, sandbox: Sandbox
) -> None:
    assert await _call_tools(crmops_mcp.url, sandbox) == [False, False, False, True, False]
    got = scrape(crmops_mcp.url)

    requests = "crmops_vendor_requests_total"
    xlb = {"vendor": "xiaolanben", "api": STAFF}
    assert got.value(requests, **xlb, outcome="ok") == 3
    assert got.value(requests, **xlb, outcome="rate_limited", code="429") == 1
    assert got.value(requests, **xlb, outcome="5xx") == 1
    assert got.value(requests, **xlb, outcome="vendor_error", code="403") == 1
    assert got.value(requests, vendor="socialepoch", api="query", outcome="ok") == 1
    retries = "crmops_vendor_retries_total"
    assert got.value(retries, **xlb, reason="rate_limited") == 1
    assert got.value(retries, **xlb, reason="5xx") == 1
    assert got.value(retries, **xlb) == 2
    # Every attempt waited for a slot and, sent, was timed.
    assert got.value("crmops_rate_limit_wait_seconds_count", **xlb) == 6
    assert got.value("crmops_vendor_request_seconds_count", **xlb) == 6
    assert got.value("crmops_vendor_request_seconds_bucket", **xlb, le="+Inf") == 6

    calls = "crmops_tool_calls_total"
    assert got.value(calls, tool="list_staff", surface="mcp", outcome="ok") == 3
    assert got.value(calls, tool="list_staff", surface="mcp", outcome="vendor_error") == 1
    assert got.value(calls, tool="query_customer", surface="mcp", outcome="ok") == 1
    assert got.value("crmops_tool_call_seconds_count", tool="list_staff", surface="mcp") == 4
    assert got.value("process_resident_memory_bytes") > 0  # the process's own figures too
    _assert_no_personal_data_or_secrets(got)


def _assert_no_personal_data_or_secrets(got: Scrape) -> None:
    assert not shows_canary(got.text)
    assert PHONE not in got.text
    assert PHONE[2:] not in got.text  # nor the national number
    for value in got.label_values():
        assert len(value) <= 40, value  # names and codes, never free text


def test_metrics_need_the_metrics_token(crmops_mcp: Running) -> None:
    url = f"{crmops_mcp.url}/metrics"
    assert httpx.get(url, timeout=10).status_code == 401
    wrong = {"Authorization": "Bearer " + "x" * len(METRICS_TOKEN)}
    assert httpx.get(url, headers=wrong, timeout=10).status_code == 401
    # The MCP token is not the metrics token.
    mcp = {"Authorization": f"Bearer {MCP_TOKEN}"}
    assert httpx.get(url, headers=mcp, timeout=10).status_code == 401
    # Nor does the metrics token open /mcp.
    metrics = {"Authorization": f"Bearer {METRICS_TOKEN}", "Accept": "application/json"}
    assert httpx.post(f"{crmops_mcp.url}/mcp", headers=metrics, timeout=10).status_code == 401


async def test_log_lines_are_json_with_the_tool_and_the_vendor(
    crmops_mcp: Running, sandbox: Sandbox
) -> None:
    await _call_tools(crmops_mcp.url, sandbox)
    crmops_mcp.process.terminate()
    crmops_mcp.process.wait(20)
    lines = [json.loads(line) for line in crmops_mcp.stderr().splitlines() if line.strip()]

    assert lines
    for line in lines:
        keys = {"time", "level", "logger", "message", "request_id", "vendor", "tool"}
        assert keys <= line.keys(), line
    retries = [line for line in lines if "retrying after" in line["message"]]
    assert len(retries) == 2
    for line in retries:
        shown = (line["level"], line["vendor"], line["tool"])
        assert shown == ("WARNING", "xiaolanben", "list_staff")
        assert line["request_id"]
    assert not shows_canary(crmops_mcp.stderr())
    assert PHONE not in crmops_mcp.stderr()


def test_without_a_metrics_token_there_is_no_metrics_route(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    env = {**sandbox.env(), "CRMOPS_MCP_TOKEN": MCP_TOKEN}
    with crmops_process(MCP_ARGS, env, tmp_path, name="bare") as running:
        answer = httpx.get(
            f"{running.url}/metrics",
            headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
            timeout=10,
        )
    assert answer.status_code == 404


def test_a_short_metrics_token_stops_the_server_at_start(sandbox: Sandbox, tmp_path: Path) -> None:
    env = {**sandbox.env(), "CRMOPS_MCP_TOKEN": MCP_TOKEN, "CRMOPS_METRICS_TOKEN": "short-one"}
    with (
        pytest.raises(AssertionError) as refused,
        crmops_process(MCP_ARGS, env, tmp_path, name="short"),
    ):
        pass  # pragma: no cover - it must not start
    stderr = (tmp_path / "short.stderr").read_text(encoding="utf-8")
    assert "CRMOPS_METRICS_TOKEN is too short" in stderr, refused.value
    assert "Traceback" not in stderr


@pytest.fixture
def crmops_slack(sandbox: Sandbox, fake_slack: FakeSlack, tmp_path: Path) -> Iterator[Running]:
    env = {
        **sandbox.env(),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.api_url,
        "CRMOPS_SLACK_WRITE_USERS": WRITER,
        "CRMOPS_METRICS_TOKEN": METRICS_TOKEN,
    }
    with crmops_process(SLACK_ARGS, env, tmp_path, name="slack") as running:
        yield running


def _command(text: str, hook: str, fake: FakeSlack, trigger: str) -> str:
    return (
        f"command=%2Fcrm&text={text}&team_id={TEAM}&user_id={WRITER}&channel_id={CHANNEL}"
        f"&response_url={fake.hook_url(hook)}&trigger_id={trigger}"
    )


async def test_slack_metrics_count_acks_tool_calls_and_vendor_requests(
    crmops_slack: Running, fake_slack: FakeSlack, sandbox: Sandbox
) -> None:
    sandbox.xiaolanben.add_staff("王小明", "13912340001", "销售一部")
    async with httpx.AsyncClient(timeout=WAIT) as http:
        events = f"{crmops_slack.url}/slack/events"
        plain = _command("staff", "plain", fake_slack, "t-1")
        assert (await http.post(events, content=plain, headers=sign(plain))).status_code == 200
        await wait_until(lambda: bool(fake_slack.hook_posts["plain"]), within=WAIT)
        sandbox.xiaolanben.faults.rate_limit_next = 1
        limited = _command("staff", "limited", fake_slack, "t-2")
        assert (await http.post(events, content=limited, headers=sign(limited))).status_code == 200
        await wait_until(lambda: bool(fake_slack.hook_posts["limited"]), within=WAIT)
        lookup = _command("error+502", "lookup", fake_slack, "t-3")
        assert (await http.post(events, content=lookup, headers=sign(lookup))).status_code == 200
        unsigned = await http.get(f"{crmops_slack.url}/metrics")
    assert unsigned.status_code == 401

    got = scrape(crmops_slack.url)
    assert got.value("crmops_slack_ack_seconds_count", kind="command") == 3
    assert got.value("crmops_slack_ack_seconds_bucket", kind="command", le="3.0") == 3
    calls = "crmops_tool_calls_total"
    assert got.value(calls, tool="list_staff", surface="slack", outcome="ok") == 2
    assert got.value(calls, tool="lookup_error_code", surface="slack", outcome="ok") == 1
    xlb = {"vendor": "xiaolanben", "api": STAFF}
    assert got.value("crmops_vendor_requests_total", **xlb, outcome="ok") == 2
    assert got.value("crmops_vendor_requests_total", **xlb, outcome="rate_limited") == 1
    assert got.value("crmops_vendor_retries_total", **xlb, reason="rate_limited") == 1
    _assert_no_personal_data_or_secrets(got)
