"""Every fault the simulators can play, against every client and the bulk import.

One row per fault: the write either lands exactly once (the simulator's state says so) or
fails with a `CrmopsError` carrying the vendor's reason; every call ends within `BOUND`
seconds and nothing but a `CrmopsError` ever escapes (a crash would fail the test).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from tests.bulk.conftest import (
    SE_HEADER,
    XLB_HEADER,
    socialepoch_rows,
    write_csv,
    xiaolanben_rows,
)
from tests.sandbox_fixtures import Sandbox
from tools.bulk import BulkImportReport, bulk_import
from tools.errors import (
    CrmopsError,
    MalformedResponseError,
    RateLimitedError,
    ServerError,
    VendorAPIError,
    VendorUnavailableError,
)
from tools.sandbox.simulation import Simulator
from tools.services import Services
from tools.settings import CrmopsSettings, Settings
from tools.storage.audit import Actor
from tools.storage.store import sqlite_store
from tools.transport import LocalRateLimiter, RetryPolicy
from tools.vendors.bangwo8.client import Bangwo8Client
from tools.vendors.socialepoch.client import SocialEpochClient
from tools.vendors.socialepoch.models import validate_customers
from tools.vendors.xiaolanben.client import XiaolanbenClient

BOUND = 20.0
"""No row may take longer than this (4 attempts; a stalled answer waits READ_TIMEOUT)."""
READ_TIMEOUT = 0.5
"""The client's timeout in the rows that stall answers (it covers connecting too)."""
TIMEOUT = 10.0
"""The client's timeout in every other row: a loaded machine must not fail a connect."""
STALL = 1.0
ATTEMPTS = 4
ACTOR = Actor("library", "reliability")

Vendor = Literal["socialepoch", "xiaolanben", "bangwo8"]


@dataclass(frozen=True)
class Fault:
    """Fault switches to set, and what must come of one write under them."""

    name: str
    switches: dict[str, Any]
    error: type[CrmopsError] | None = None
    """None: the write lands. Else the error it fails with."""
    vendor_acted: bool = False
    """For a failure: the vendor stored the record before the answer was lost."""
    says: str = ""
    """Text the error must carry (the vendor's reason)."""


TRANSIENT = [
    Fault("5xx burst", {"fail_next": 2}),
    Fault("reset before the vendor acts", {"drop_next": 2}),
    Fault("reset after the vendor acted", {"drop_next": 2, "drop_after_processing": True}),
    Fault("read timeout after the vendor acted", {"stall_next": 2, "stall_seconds": STALL}),
    Fault("rate-limit answers", {"rate_limit_next": 2}),
    Fault("HTML instead of JSON", {"malformed_next": 2}),
]
PERSISTENT = [
    Fault("5xx for good", {"fail_next": 99, "fail_status": 502}, ServerError, says="502"),
    Fault("resets before acting", {"drop_next": 99}, VendorUnavailableError, says="outcome"),
    Fault(
        "resets after acting",
        {"drop_next": 99, "drop_after_processing": True},
        VendorUnavailableError,
        vendor_acted=True,
        says="outcome is unknown",
    ),
    Fault(
        "read timeouts after acting",
        {"stall_next": 99, "stall_seconds": STALL},
        VendorUnavailableError,
        vendor_acted=True,
        says="ReadTimeout",
    ),
    Fault("rate-limited for good", {"rate_limit_next": 99}, RateLimitedError, says="429"),
    Fault("HTML for good", {"malformed_next": 99}, MalformedResponseError, says="not JSON"),
]
MATRIX = TRANSIENT + PERSISTENT


def crmops_for(fault: Fault) -> CrmopsSettings:
    stalls = "stall_next" in fault.switches
    return CrmopsSettings(http_timeout=READ_TIMEOUT if stalls else TIMEOUT, max_attempts=ATTEMPTS)


def no_wait() -> RetryPolicy:
    return RetryPolicy(attempts=ATTEMPTS, wait_initial=0, wait_max=0, wait_jitter=0, timeout=BOUND)


@dataclass
class Writer:
    """One vendor's client doing one write, and how to count what the vendor stored."""

    sim: Simulator
    path: str
    write: Callable[[], Awaitable[object]]
    stored: Callable[[], int]
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


async def _writer(
    vendor: Vendor, settings: Settings, sandbox: Sandbox, crmops: CrmopsSettings
) -> Writer:
    options: dict[str, Any] = {
        "crmops": crmops,
        "retry": no_wait(),
        "rate_limiter": LocalRateLimiter(1000),
    }
    if vendor == "socialepoch":
        se = SocialEpochClient(settings.socialepoch, **options)
        record = validate_customers([{"whatsApp": "8613800000001", "friendName": "故障"}])
        return Writer(
            sandbox.socialepoch,
            "/wscrm-bus-api/customer/api/batchImport",
            lambda: se.import_customers(record),
            lambda: len(sandbox.socialepoch.customers),
            [se.aclose],
        )
    if vendor == "xiaolanben":
        xlb = XiaolanbenClient(settings.xiaolanben, **options)
        customer = {
            "customerName": "故障测试",
            "contacts": [{"thirdDataId": "c1", "name": "联系人", "phone": "13900000001"}],
        }
        return Writer(
            sandbox.xiaolanben,
            "/blue-crm/api/v1/open/customer/import/customerWithContact",
            lambda: xlb.import_customer(customer),
            lambda: sum(len(c.contacts) for c in sandbox.xiaolanben.customers.values()),
            [xlb.aclose],
        )
    bw8 = Bangwo8Client(settings.bangwo8, **options)
    return Writer(
        sandbox.bangwo8,
        "/api/v1/tickets.json",
        lambda: bw8.create_ticket({"subject": "故障", "message": "内容"}),
        lambda: len(sandbox.bangwo8.tickets),
        [bw8.aclose],
    )


async def _bounded(call: Callable[[], Awaitable[object]]) -> tuple[object, float]:
    started = time.monotonic()
    async with asyncio.timeout(BOUND):
        try:
            result: object = await call()
        except CrmopsError as exc:
            result = exc
    return result, time.monotonic() - started


@pytest.mark.parametrize("fault", MATRIX, ids=[f.name for f in MATRIX])
@pytest.mark.parametrize("vendor", ["socialepoch", "xiaolanben", "bangwo8"])
async def test_one_write_lands_once_or_fails_with_the_vendors_reason(
    vendor: Vendor, fault: Fault, settings: Settings, sandbox: Sandbox
) -> None:
    writer = await _writer(vendor, settings, sandbox, crmops_for(fault))
    writer.sim.faults = writer.sim.faults.model_copy(update={**fault.switches, "path": writer.path})
    try:
        result, seconds = await _bounded(writer.write)
    finally:
        for close in writer.closers:
            await close()

    assert seconds < BOUND
    if fault.error is None:
        assert not isinstance(result, CrmopsError), result
        assert writer.stored() == 1  # exactly once, though the call was sent several times
        assert writer.sim.counters["requests"] > 1
        return
    assert isinstance(result, fault.error), result
    assert fault.says in str(result)
    assert writer.stored() == (1 if fault.vendor_acted else 0)
    if isinstance(result, VendorAPIError):
        assert result.vendor == vendor
        assert result.vendor_message
    api_calls = writer.sim.counters["requests"] - writer.sim.counters["token_requests"]
    if "stall_next" in fault.switches:  # a short timeout: a slow connect may use an attempt
        assert 2 <= api_calls <= ATTEMPTS
    else:
        assert api_calls == ATTEMPTS  # retried, and then given up


@pytest.mark.parametrize("vendor", ["socialepoch", "xiaolanben", "bangwo8"])
async def test_a_vendor_that_is_down_is_reported_as_never_reached(
    vendor: Vendor, settings: Settings, sandbox: Sandbox
) -> None:
    with socket.socket() as probe:  # a port nothing listens on any more
        probe.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{probe.getsockname()[1]}"
    for config in (settings.socialepoch, settings.xiaolanben, settings.bangwo8):
        config.base_url = down
    writer = await _writer(vendor, settings, sandbox, crmops_for(TRANSIENT[0]))
    try:
        result, seconds = await _bounded(writer.write)
    finally:
        for close in writer.closers:
            await close()
    assert isinstance(result, VendorUnavailableError)
    assert not result.request_sent
    assert "did not reach the vendor" in str(result)
    assert writer.stored() == 0
    assert seconds < BOUND


# --- the bulk import ---------------------------------------------------------------------

ROWS = 30
BULK_PATHS = {
    "socialepoch": "/wscrm-bus-api/customer/api/batchImport",
    "xiaolanben": "/blue-crm/api/v1/open/customer/import/customersWithContact",
}


def _source(tmp_path: Path, vendor: str) -> Path:
    if vendor == "socialepoch":
        return write_csv(tmp_path / "se.csv", SE_HEADER, socialepoch_rows(ROWS))
    return write_csv(tmp_path / "xlb.csv", XLB_HEADER, xiaolanben_rows(ROWS))


def _stored(sandbox: Sandbox, vendor: str) -> int:
    if vendor == "socialepoch":
        return len(sandbox.socialepoch.customers)
    return sum(len(c.contacts) for c in sandbox.xiaolanben.customers.values())


def _sim(sandbox: Sandbox, vendor: str) -> Simulator:
    return sandbox.socialepoch if vendor == "socialepoch" else sandbox.xiaolanben


async def _import(
    settings: Settings, fault: Fault, source: Path, vendor: Any, db: Path, *, resume: bool = False
) -> BulkImportReport:
    settings.crmops = crmops_for(fault)
    settings.xiaolanben.rate_limit = 50
    async with Services(settings, retry=no_wait()) as services, sqlite_store(db) as store:
        async with asyncio.timeout(BOUND * 3):
            return await bulk_import(
                services, source=source, vendor=vendor, store=store, actor=ACTOR, resume=resume
            )


@pytest.mark.parametrize("fault", TRANSIENT, ids=[f.name for f in TRANSIENT])
@pytest.mark.parametrize("vendor", ["socialepoch", "xiaolanben"])
async def test_bulk_import_lands_every_row_exactly_once_through_transient_faults(
    vendor: str, fault: Fault, settings: Settings, sandbox: Sandbox, tmp_path: Path
) -> None:
    sim = _sim(sandbox, vendor)
    sim.faults = sim.faults.model_copy(update={**fault.switches, "path": BULK_PATHS[vendor]})

    report = await _import(settings, fault, _source(tmp_path, vendor), vendor, tmp_path / "j.db")

    assert (report.status, report.confirmed, report.unknown, report.pending) == ("ok", ROWS, 0, 0)
    assert _stored(sandbox, vendor) == ROWS
    assert report.requests >= -(-ROWS // (100 if vendor == "socialepoch" else 10))


@pytest.mark.parametrize("fault", PERSISTENT, ids=[f.name for f in PERSISTENT])
@pytest.mark.parametrize("vendor", ["socialepoch", "xiaolanben"])
async def test_bulk_import_reports_a_persistent_fault_then_resumes_exactly_once(
    vendor: str, fault: Fault, settings: Settings, sandbox: Sandbox, tmp_path: Path
) -> None:
    sim = _sim(sandbox, vendor)
    sim.faults = sim.faults.model_copy(update={**fault.switches, "path": BULK_PATHS[vendor]})
    source, db = _source(tmp_path, vendor), tmp_path / "j.db"

    first = await _import(settings, fault, source, vendor, db)

    assert first.status == "partial"
    assert first.confirmed == 0
    assert first.unknown + first.pending == ROWS  # nothing lost: every row left to resume
    async with sqlite_store(db) as store:
        errors = [entry.error or "" for entry in await store.audit.recent()]
    assert errors
    assert any(fault.says in error for error in errors)
    assert _stored(sandbox, vendor) == (ROWS if fault.vendor_acted else 0)

    sim.faults = type(sim.faults)()
    await asyncio.sleep(STALL)  # let held answers of the first run finish
    again = await _import(settings, TRANSIENT[0], source, vendor, db, resume=True)

    assert (again.status, again.confirmed, again.unknown, again.pending) == ("ok", ROWS, 0, 0)
    assert _stored(sandbox, vendor) == ROWS
