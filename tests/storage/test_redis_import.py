"""Replicas importing for one tenant through one Redis: real `crmops import` processes against
a real Xiaolanben simulator over HTTP, with its strict per-API limit switched on."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bulk.conftest import XLB_HEADER, write_csv, xiaolanben_rows
from tests.storage.redis_server import start_redis
from tests.storage.replicas import (
    Vendor,
    finish,
    served_xiaolanben,
    start_import,
    xiaolanben_environment,
)

VENDOR_LIMIT = 20.0
"""Requests per second per API the simulator allows (the real vendor: 50; kept low so that
~100 requests take seconds)."""


@pytest.fixture
def vendor() -> Iterator[Vendor]:
    with served_xiaolanben(rate_limit=VENDOR_LIMIT) as served:
        yield served


def _environment(vendor: Vendor, db: Path, redis_url: str | None, **extra: str) -> dict[str, str]:
    env = xiaolanben_environment(
        vendor,
        rate_limit=str(VENDOR_LIMIT),
        CRMOPS_RATE_HEADROOM="0.85",
        CRMOPS_DB=str(db),
        **extra,
    )
    if redis_url is not None:
        env["CRMOPS_REDIS_URL"] = redis_url
    return env


def _two_concurrent_imports(
    tmp_path: Path, vendor: Vendor, redis_url: str | None
) -> list[tuple[int, str, str]]:
    """Two replicas import 500 rows each (50 calls each) at once for the same tenant."""
    processes = []
    for replica in range(2):
        folder = tmp_path / f"replica-{replica}"
        folder.mkdir()
        rows = xiaolanben_rows(500, start=replica * 500)
        path = write_csv(folder / "customers.csv", XLB_HEADER, rows)
        env = _environment(vendor, folder / "crmops.db", redis_url)
        processes.append(start_import(path, env))
    return [finish(process) for process in processes]


def test_two_replicas_together_stay_under_the_vendor_limit(
    tmp_path: Path, vendor: Vendor, redis_url: str
) -> None:
    results = _two_concurrent_imports(tmp_path, vendor, redis_url)

    for code, out, err in results:
        assert code == 0, err
        assert json.loads(out)["confirmed"] == 500
    assert vendor.simulator.counters["rate_limited"] == 0
    assert vendor.simulator.counters["requests"] == 100
    assert len(vendor.recorder.received) == 1000
    assert set(vendor.recorder.received.values()) == {1}  # every row sent exactly once
    assert len(vendor.simulator.customers) == 1000


def test_without_redis_the_same_two_replicas_are_refused(tmp_path: Path, vendor: Vendor) -> None:
    # The control: each process keeps its own 17 req/s, together 34 against a limit of 20.
    _two_concurrent_imports(tmp_path, vendor, redis_url=None)

    assert vendor.simulator.counters["rate_limited"] > 0


def test_losing_redis_mid_import_stops_clearly_and_resume_lands_every_row_once(
    tmp_path: Path, vendor: Vendor
) -> None:
    redis = start_redis(tmp_path / "redis")
    try:
        path = write_csv(tmp_path / "customers.csv", XLB_HEADER, xiaolanben_rows(300))
        env = _environment(vendor, tmp_path / "crmops.db", redis.url, CRMOPS_MAX_ATTEMPTS="2")
        env["XIAOLANBEN_RATE_LIMIT"] = "10"
        process = start_import(path, env)
        _wait_for(lambda: len(vendor.simulator.customers) >= 50, process)
        redis.kill()
        code, out, err = finish(process)

        assert code == 1, err  # partial: stopped, resumable
        report = json.loads(out)
        assert "Redis at redis://127.0.0.1" in report["stopped"]
        assert "CRMOPS_REDIS_URL" in report["stopped"]
        assert "Traceback" not in err
        assert 50 <= report["confirmed"] < 300
        assert report["confirmed"] + report["pending"] + report["unknown"] == 300
        assert len(vendor.simulator.customers) == report["confirmed"]

        redis.restart()
        code, out, err = finish(start_import(path, env, "--resume"))
    finally:
        redis.stop()

    assert code == 0, err
    assert json.loads(out)["confirmed"] == 300
    assert len(vendor.simulator.customers) == 300
    assert all(len(c.contacts) == 1 for c in vendor.simulator.customers.values())
    assert max(vendor.recorder.received.values()) == 1  # nothing was sent twice


def _wait_for(condition: object, process: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not callable(condition) or not condition():
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "the import did not get going"
        time.sleep(0.02)
