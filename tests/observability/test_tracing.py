"""Spans, captured with the OpenTelemetry SDK's in-memory exporter: one per tool call and one
per vendor attempt, under the MCP SDK's `tools/call` span, continuing the caller's trace
from the request's `_meta`; names and codes only, never a secret or a phone number."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.conftest import shows_canary
from tests.observability.conftest import named
from tests.observability.processes import ROOT
from tests.observability.scraping import PHONE
from tests.sandbox_fixtures import Sandbox
from tests.server.mcp_http import MCP_HEADERS, serve_mcp_http
from tools.observability.tracing import configure_tracing, tracing_requested
from tools.sandbox.simulation import serve
from tools.settings import Settings

TOKEN = "trace-test-token-CANARY-0f1e2d3c4b5a69788796"
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
WAIT = 30


@pytest.fixture
def mcp_url(settings: Settings) -> Iterator[str]:
    with serve_mcp_http(settings, TOKEN) as url:
        yield url


def _call(url: str, tool: str, arguments: dict[str, Any], meta: dict[str, str]) -> Any:
    """One `tools/call` as a client sends it, with `_meta` carrying the caller's trace."""
    request = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments, "_meta": meta},
    }
    headers = {
        **MCP_HEADERS,
        "Authorization": f"Bearer {TOKEN}",
        "MCP-Protocol-Version": "2025-06-18",
    }
    answer = httpx.post(f"{url}/mcp", json=request, headers=headers, timeout=WAIT)
    assert answer.status_code == 200, answer.text
    for line in answer.text.splitlines():  # an SSE stream, or plain JSON
        if line.startswith("data:"):
            return json.loads(line[len("data:") :])
    return answer.json()


def _attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def _parent(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def _one(finished: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    found = named(finished, name)
    assert len(found) == 1, [span.name for span in finished]
    return found[0]


def test_a_tool_call_continues_the_callers_trace_down_to_each_vendor_attempt(
    mcp_url: str, sandbox: Sandbox, spans: InMemorySpanExporter
) -> None:
    sandbox.xiaolanben.seed()
    sandbox.xiaolanben.faults.rate_limit_next = 1
    traceparent = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"

    answer = _call(mcp_url, "list_staff", {"limit": 2}, {"traceparent": traceparent})

    assert answer["result"]["isError"] is False
    finished = spans.get_finished_spans()
    sdk = _one(finished, "tools/call list_staff")  # the MCP SDK's own server span
    tool = _one(finished, "tool list_staff")
    attempts = sorted(
        named(finished, "xiaolanben list staff"), key=lambda s: _attributes(s)["crmops.attempt"]
    )
    assert f"{sdk.context.trace_id:032x}" == CALLER_TRACE
    assert f"{_parent(sdk) or 0:016x}" == CALLER_SPAN
    assert sdk.kind is SpanKind.SERVER
    assert _parent(tool) == sdk.context.span_id
    shown = _attributes(tool)
    assert [shown[k] for k in ("crmops.tool", "crmops.surface", "crmops.outcome")] == [
        "list_staff",
        "mcp",
        "ok",
    ]
    assert len(attempts) == 2
    for attempt in attempts:
        assert attempt.kind is SpanKind.CLIENT
        assert _parent(attempt) == tool.context.span_id
        assert attempt.context.trace_id == sdk.context.trace_id
        shown = _attributes(attempt)
        assert (shown["crmops.vendor"], shown["crmops.api"]) == ("xiaolanben", "list staff")
        assert shown["http.request.method"] == "GET"
    refused, answered = (_attributes(attempt) for attempt in attempts)
    assert refused["crmops.attempt"] == 1
    assert refused["http.response.status_code"] == 429
    assert refused["crmops.outcome"] == "rate_limited"
    assert refused["crmops.vendor.code"] == "429"
    assert attempts[0].status.status_code is StatusCode.ERROR
    assert answered["crmops.attempt"] == 2
    assert answered["http.response.status_code"] == 200
    assert answered["crmops.outcome"] == "ok"
    assert "crmops.rate_limit.wait_seconds" in answered


def test_a_failed_call_is_an_error_span_without_the_message(
    mcp_url: str, sandbox: Sandbox, spans: InMemorySpanExporter
) -> None:
    sandbox.xiaolanben.window = -1.0  # every signature out of its window: 403

    answer = _call(mcp_url, "list_staff", {"limit": 2}, {})

    assert answer["result"]["isError"] is True
    finished = spans.get_finished_spans()
    tool = _one(finished, "tool list_staff")
    attempt = _one(finished, "xiaolanben list staff")
    assert tool.status.status_code is StatusCode.ERROR
    assert _attributes(tool)["crmops.outcome"] == "vendor_error"
    shown = _attributes(attempt)
    assert shown["crmops.vendor.code"] == "403"
    assert shown["http.response.status_code"] == 403
    assert shown["error.type"] == "RequestRejectedError"
    for span in finished:
        assert not span.events, span.events  # no exception event: its message may quote input


def test_no_span_carries_a_secret_or_a_phone_number(
    mcp_url: str, sandbox: Sandbox, spans: InMemorySpanExporter
) -> None:
    sandbox.socialepoch.faults.fail_next = 1  # a retried attempt too

    _call(mcp_url, "query_customer", {"whatsapp": f"+{PHONE}"}, {})

    finished = spans.get_finished_spans()
    assert _attributes(_one(finished, "tool query_customer"))["crmops.outcome"] == "ok"
    assert len(named(finished, "socialepoch query")) == 2
    for span in finished:
        shown = json.dumps(
            {
                "name": span.name,
                "attributes": dict(span.attributes or {}),
                "events": [(e.name, dict(e.attributes or {})) for e in span.events],
                "status": span.status.description,
                "resource": dict(span.resource.attributes),
            },
            default=str,
        )
        assert not shows_canary(shown), shown
        assert PHONE[2:] not in shown, shown


def test_tracing_is_asked_for_by_the_standard_variables() -> None:
    assert not tracing_requested({})
    assert not tracing_requested({"OTEL_SERVICE_NAME": "crmops"})
    assert tracing_requested({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing_requested({"OTEL_TRACES_EXPORTER": "console"})
    disabled = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}
    assert not tracing_requested(disabled)
    assert not configure_tracing({"OTEL_TRACES_EXPORTER": "none"})


@pytest.fixture
def collector() -> Iterator[tuple[str, list[ExportTraceServiceRequest]]]:
    """An OTLP/HTTP trace receiver on loopback: `POST /v1/traces` (protobuf)."""
    received: list[ExportTraceServiceRequest] = []

    async def traces(request: Request) -> Response:
        export = ExportTraceServiceRequest()
        export.ParseFromString(await request.body())
        received.append(export)
        return Response(b"", media_type="application/x-protobuf")

    app = Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])
    with serve(app) as served:
        yield served.url, received


def test_crmops_exports_its_spans_over_otlp_when_the_variables_say_so(
    collector: tuple[str, list[ExportTraceServiceRequest]], sandbox: Sandbox, tmp_path: Path
) -> None:
    url, received = collector
    sandbox.xiaolanben.seed()
    env = {
        **os.environ,
        **sandbox.env(),
        "PYTHONPATH": str(ROOT),
        "OTEL_EXPORTER_OTLP_ENDPOINT": url,
        "OTEL_SERVICE_NAME": "crmops-cli-test",
    }
    done = subprocess.run(
        [sys.executable, "-m", "server", "staff", "--json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    exported = [
        (resource, span)
        for export in received
        for resource in export.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    names = {span.name for _, span in exported}
    assert {"tool list_staff", "xiaolanben list staff"} <= names
    services = {
        attribute.value.string_value
        for resource, _ in exported
        for attribute in resource.resource.attributes
        if attribute.key == "service.name"
    }
    assert services == {"crmops-cli-test"}
    tool = next(span for _, span in exported if span.name == "tool list_staff")  # protobuf
    surface = {a.key: a.value.string_value for a in tool.attributes}["crmops.surface"]
    assert surface == "cli"
