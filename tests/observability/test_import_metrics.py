"""A bulk import's figures: rows by outcome and the running imports' rows/s while it sends,
and `crmops import --metrics-file` for node_exporter's textfile collector."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry

from tests.bulk.conftest import XLB_HEADER, write_csv, xiaolanben_rows
from tests.conftest import shows_canary
from tests.observability.processes import ROOT
from tests.observability.scraping import parse
from tests.sandbox_fixtures import Sandbox
from tools.bulk import ImportProgress, bulk_import
from tools.observability.metrics import metrics
from tools.services import Services
from tools.storage.audit import Actor
from tools.storage.store import sqlite_store

ACTOR = Actor("library", "pytest")
XLB = {"vendor": "xiaolanben"}


def _rows_with_a_duplicate(count: int) -> list[list[str]]:
    rows = xiaolanben_rows(count)
    return [*rows, rows[0]]  # the same company again: rejected, never sent


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_a_running_import_shows_its_rows_per_second_and_its_rows(
    tmp_path: Path, services: Services, sandbox: Sandbox
) -> None:
    registry = metrics().registry
    before = {
        outcome: _sample(registry, "crmops_import_rows_total", **XLB, outcome=outcome)
        for outcome in ("imported", "failed", "rejected")
    }
    sandbox.xiaolanben.faults.latency = 0.05
    source = write_csv(tmp_path / "in.csv", XLB_HEADER, _rows_with_a_duplicate(40))
    while_sending: list[tuple[float, float]] = []

    def sample(progress: ImportProgress) -> None:
        if progress.phase == "sending":
            running = _sample(registry, "crmops_imports_running", **XLB)
            rate = _sample(registry, "crmops_import_rows_per_second", **XLB)
            while_sending.append((running, rate))

    async with sqlite_store(tmp_path / "crmops.db") as store:
        report = await bulk_import(
            services, source=source, vendor="xiaolanben", store=store, actor=ACTOR, progress=sample
        )

    assert (report.confirmed, report.rejected) == (40, 1)
    assert while_sending
    assert all(running == 1 for running, _ in while_sending)
    assert while_sending[-1][1] > 0
    assert _sample(registry, "crmops_imports_running", **XLB) == 0
    after = {
        outcome: _sample(registry, "crmops_import_rows_total", **XLB, outcome=outcome) - count
        for outcome, count in before.items()
    }
    assert after == {"imported": 40, "failed": 0, "rejected": 1}


async def test_a_dry_run_counts_no_rows(
    tmp_path: Path, services: Services, sandbox: Sandbox
) -> None:
    registry = metrics().registry
    before = _sample(registry, "crmops_import_rows_total", **XLB, outcome="rejected")
    source = write_csv(tmp_path / "in.csv", XLB_HEADER, _rows_with_a_duplicate(5))

    report = await bulk_import(
        services, source=source, vendor="xiaolanben", store=None, actor=ACTOR, dry_run=True
    )

    assert report.rejected == 1
    assert _sample(registry, "crmops_import_rows_total", **XLB, outcome="rejected") == before


def _crmops_import(
    sandbox: Sandbox, tmp_path: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **sandbox.env(),
        "PYTHONPATH": str(ROOT),
        "CRMOPS_DB": str(tmp_path / "crmops.db"),
    }
    return subprocess.run(
        [sys.executable, "-m", "server", "import", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_metrics_file_holds_the_runs_figures(sandbox: Sandbox, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", XLB_HEADER, _rows_with_a_duplicate(25))
    sandbox.xiaolanben.faults.rate_limit_next = 1
    target = tmp_path / "textfile" / "crmops_import.prom"
    target.parent.mkdir()

    done = _crmops_import(
        sandbox, tmp_path, str(source), "--vendor", "xiaolanben", "--metrics-file", str(target)
    )

    assert done.returncode == 1, done.stderr  # one row rejected: partial
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temporary left
    got = parse(target.read_text(encoding="utf-8"))
    assert got.value("crmops_import_rows_total", **XLB, outcome="imported") == 25
    assert got.value("crmops_import_rows_total", **XLB, outcome="rejected") == 1
    assert got.value("crmops_import_rows_total", **XLB, outcome="failed") == 0
    batch = {**XLB, "api": "import customers"}
    assert got.value("crmops_vendor_requests_total", **batch, outcome="ok") == 3  # 10 a call
    assert got.value("crmops_vendor_requests_total", **batch, outcome="rate_limited") == 1
    assert got.value("crmops_vendor_retries_total", **batch) == 1
    assert got.value("crmops_run_succeeded") == 1
    assert got.value("crmops_run_finished_timestamp_seconds") > 1.7e9
    assert not shows_canary(got.text)
    assert "13900000001" not in got.text  # a contact's phone number


def test_a_metrics_file_that_cannot_be_written_is_refused_before_sending(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    source = write_csv(tmp_path / "in.csv", XLB_HEADER, xiaolanben_rows(3))

    done = _crmops_import(
        sandbox, tmp_path, str(source), "--vendor", "xiaolanben", "--metrics-file", str(tmp_path)
    )

    assert done.returncode == 65
    assert "--metrics-file" in done.stderr
    assert "is a folder" in done.stderr
    assert "Traceback" not in done.stderr
    assert not sandbox.xiaolanben.customers
