"""What the call sites record: each vendor request, each tool call, each Slack ack, each bulk
import, as metrics (`tools.observability.metrics`), spans (through `opentelemetry-api`: a
no-op until an SDK is set up) and the log context of the JSON log format.

    with VendorRequest("xiaolanben", "listStaff", "GET", "/open/staff") as request:
        async for attempt in retries:                 # (stamina's; retry hook: request.retrying)
            with attempt, request.attempt(attempt.num) as sent:
                await limiter.acquire(api)
                sent.slot_granted()                   # the wait ends, the request goes out
                response = await http.send(...)
                sent.answered(response.status_code)

    result = await observe_tool("list_staff", "slack", list_staff(services, search="王"))
    response = await timed_ack("command", next())    # a Slack middleware's `next()`
    with ImportObserver("xiaolanben", active=not dry_run) as progress.observer: ...

A span carries names, numbers and codes only (vendor, API, attempt, HTTP status, the
documented vendor code, tool, surface, outcome): never a URL's query, a body, an argument,
an error message or a secret. Each vendor attempt's span is a child of the tool call's, which
is a child of the MCP SDK's `tools/call` span (itself continuing a trace context that came
in the request's `_meta`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable
from types import TracebackType
from typing import TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from tools.errors import (
    AccessDeniedError,
    ConfigurationError,
    CrmopsError,
    InputError,
    MalformedResponseError,
    RateLimitedError,
    ServerError,
    StorageError,
    VendorAPIError,
    VendorError,
    VendorUnavailableError,
)
from tools.observability.context import REQUEST_ID, TOOL, VENDOR
from tools.observability.metrics import ImportRate, metrics

T = TypeVar("T")

TRACER = trace.get_tracer("crmops")
"""crmops's tracer: a proxy that records nothing until a TracerProvider is set."""

TOOL_OUTCOMES = (
    "ok",
    "input_error",
    "access_denied",
    "configuration_error",
    "rate_limited",
    "vendor_unavailable",
    "vendor_error",
    "storage_error",
    "error",
    "internal_error",
    "cancelled",
)
"""Every value of `crmops_tool_calls_total`'s `outcome` label."""
REQUEST_OUTCOMES = (
    "ok",
    "vendor_error",
    "rate_limited",
    "5xx",
    "transport_error",
    "malformed",
    "storage_error",
    "error",
)
"""Every value of `crmops_vendor_requests_total`'s `outcome` label (and `reason` of retries)."""
IMPORT_OUTCOMES = ("imported", "failed", "rejected")
"""Every value of `crmops_import_rows_total`'s `outcome` label."""


def request_outcome(error: BaseException) -> tuple[str, str]:
    """`(outcome, code)` of a failed vendor attempt: the code is the vendor's documented
    error code (in the catalog), `other` for one the catalog does not know, else empty."""
    if isinstance(error, VendorAPIError):
        code = error.entry.code if error.entry is not None else "other"
        if isinstance(error, RateLimitedError):
            return "rate_limited", code
        if isinstance(error, ServerError) or error.http_status >= 500:
            return "5xx", code
        return "vendor_error", code
    kinds: tuple[tuple[type[BaseException], str], ...] = (
        (VendorUnavailableError, "transport_error"),
        (MalformedResponseError, "malformed"),
        (StorageError, "storage_error"),
    )
    return next((name for kind, name in kinds if isinstance(error, kind)), "error"), ""


def tool_outcome(error: BaseException) -> str:
    """The `outcome` of a tool call that raised `error` (one of `TOOL_OUTCOMES`)."""
    kinds: tuple[tuple[type[BaseException], str], ...] = (
        (asyncio.CancelledError, "cancelled"),
        (InputError, "input_error"),
        (AccessDeniedError, "access_denied"),
        (ConfigurationError, "configuration_error"),
        (RateLimitedError, "rate_limited"),
        (VendorUnavailableError, "vendor_unavailable"),
        (VendorError, "vendor_error"),
        (StorageError, "storage_error"),
        (CrmopsError, "error"),
    )
    return next((name for kind, name in kinds if isinstance(error, kind)), "internal_error")


class VendorRequest:
    """One vendor request, retries included: the log context names the vendor while it
    runs; `attempt(n)` observes each try, `retrying(error)` counts a retry."""

    __slots__ = ("_retry_reason", "_token", "api", "method", "path", "vendor")

    def __init__(self, vendor: str, api: str, method: str, path: str) -> None:
        self.vendor = vendor
        self.api = api
        self.method = method
        self.path = path
        self._retry_reason = "error"

    def __enter__(self) -> VendorRequest:
        self._token = VENDOR.set(self.vendor)
        return self

    def __exit__(self, *_: object) -> None:
        VENDOR.reset(self._token)

    def attempt(self, number: int) -> VendorAttempt:
        """The `number`-th try (from 1), as a context manager around limiter and send; a
        try after the first counts as a retry, for what the one before it met."""
        if number > 1:
            metrics().vendor_retries.labels(self.vendor, self.api, self._retry_reason).inc()
        return VendorAttempt(self, number)

    def retrying(self, error: BaseException) -> None:
        """`error` will be retried (if attempts are left): the reason the next try counts."""
        self._retry_reason, _ = request_outcome(error)


class VendorAttempt:
    """One try of a vendor request: its span (`"{vendor} {api}"`, a client span), the wait
    for its rate-limit slot, and once sent its latency and outcome."""

    __slots__ = ("_otel_token", "_request", "_sent", "_span", "_started", "_status", "number")

    def __init__(self, request: VendorRequest, number: int) -> None:
        self._request = request
        self.number = number

    def __enter__(self) -> VendorAttempt:
        request = self._request
        self._started = time.perf_counter()
        self._sent: float | None = None
        self._status: int | None = None
        self._span = TRACER.start_span(
            f"{request.vendor} {request.api}",
            kind=SpanKind.CLIENT,
            attributes={
                "crmops.vendor": request.vendor,
                "crmops.api": request.api,
                "crmops.attempt": self.number,
                "http.request.method": request.method,
                "url.template": request.path,
            },
        )
        self._otel_token = otel_context.attach(trace.set_span_in_context(self._span))
        return self

    def slot_granted(self) -> None:
        """The rate limiter granted the slot: the request goes out now."""
        self._sent = now = time.perf_counter()
        waited = now - self._started
        request = self._request
        metrics().rate_limit_wait_seconds.labels(request.vendor, request.api).observe(waited)
        if self._span.is_recording():
            self._span.set_attribute("crmops.rate_limit.wait_seconds", round(waited, 6))

    def answered(self, status: int) -> None:
        """The vendor answered with HTTP `status` (an answer that is not an error)."""
        self._status = status

    def __exit__(
        self,
        _type: type[BaseException] | None,
        error: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        try:
            self._record(error)
        finally:
            otel_context.detach(self._otel_token)
            self._span.end()

    def _record(self, error: BaseException | None) -> None:
        outcome, code = ("ok", "") if error is None else request_outcome(error)
        request, span = self._request, self._span
        if self._sent is not None:
            m = metrics()
            seconds = time.perf_counter() - self._sent
            m.vendor_request_seconds.labels(request.vendor, request.api).observe(seconds)
            m.vendor_requests.labels(request.vendor, request.api, outcome, code).inc()
        if not span.is_recording():
            return
        status = self._status if error is None else getattr(error, "http_status", None)
        if isinstance(status, int):
            span.set_attribute("http.response.status_code", status)
        span.set_attribute("crmops.outcome", outcome)
        if code:
            span.set_attribute("crmops.vendor.code", code)
        if error is not None:
            span.set_attribute("error.type", type(error).__name__)
            span.set_status(StatusCode.ERROR, outcome)


async def observe_tool(tool: str, surface: str, call: Awaitable[T]) -> T:
    """Await `call` (the tool function's coroutine) as one tool call of `tool` on `surface`
    (`mcp`, `slack`, `cli`): a span `tool {tool}`, `crmops_tool_calls_total` by outcome,
    `crmops_tool_call_seconds`, and a request id and the tool's name in the log context."""
    request_id = uuid.uuid4().hex[:16]
    tokens = TOOL.set(tool), REQUEST_ID.set(request_id)
    started = time.perf_counter()
    outcome = "ok"
    attributes = {"crmops.tool": tool, "crmops.surface": surface, "crmops.request_id": request_id}
    try:
        with TRACER.start_as_current_span(
            f"tool {tool}",
            attributes=attributes,
            record_exception=False,  # an error's message may quote the arguments
            set_status_on_exception=False,
        ) as span:
            try:
                return await call
            except BaseException as exc:
                outcome = tool_outcome(exc)
                span.set_attribute("error.type", type(exc).__name__)
                span.set_status(StatusCode.ERROR, outcome)
                raise
            finally:
                span.set_attribute("crmops.outcome", outcome)
    finally:
        m = metrics()
        m.tool_calls.labels(tool, surface, outcome).inc()
        m.tool_call_seconds.labels(tool, surface).observe(time.perf_counter() - started)
        TOOL.reset(tokens[0])
        REQUEST_ID.reset(tokens[1])


async def timed_ack(kind: str, acked: Awaitable[T]) -> T:
    """Await `acked` (what answers a Slack request: bolt's middleware `next()`) and record
    how long it took in `crmops_slack_ack_seconds{kind}`."""
    started = time.perf_counter()
    try:
        return await acked
    finally:
        metrics().slack_ack_seconds.labels(kind).observe(time.perf_counter() - started)


class ImportObserver:
    """A bulk import's rows in `crmops_import_rows_total` and, while it sends, in
    `crmops_imports_running` and `crmops_import_rows_per_second`.

    `with ImportObserver(vendor, active=not dry_run) as meter.observer:` gives None for an
    inactive one (a dry run sends nothing, so counts nothing)."""

    def __init__(self, vendor: str, *, active: bool = True) -> None:
        self.vendor = vendor
        self.active = active
        self._rate: ImportRate | None = None

    def __enter__(self) -> ImportObserver | None:
        if not self.active:
            return None
        rows = metrics().import_rows
        for outcome in IMPORT_OUTCOMES:  # every series exists from the start: rate() sees 0
            rows.labels(self.vendor, outcome).inc(0)
        return self

    def __exit__(self, *_: object) -> None:
        if self._rate is not None:
            metrics().imports.stop(self._rate)
            self._rate = None

    def sending(self) -> None:
        """The import starts sending rows: it counts as running."""
        if self._rate is None:
            self._rate = metrics().imports.start(self.vendor)

    def settled(self, rows: int, *, failed: int) -> None:
        """`rows` more rows settled, `failed` of them refused by the vendor."""
        counter = metrics().import_rows
        if rows > failed:
            counter.labels(self.vendor, "imported").inc(rows - failed)
        if failed:
            counter.labels(self.vendor, "failed").inc(failed)
        if self._rate is not None:
            self._rate.settled(rows)

    def rejected(self, rows: int) -> None:
        """`rows` more rows refused by crmops's checks (never sent)."""
        if rows:
            metrics().import_rows.labels(self.vendor, "rejected").inc(rows)
