"""Replicas importing one file into one tenant through one PostgreSQL journal, and the
journal's server going away: real `crmops import` processes against a real Xiaolanben
simulator over HTTP.

No Redis here: each process keeps its own rate limit, set so that together they stay under
the simulator's. What is shared is the journal, and that is what these tests are about.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.bulk.conftest import XLB_HEADER, write_csv, xiaolanben_rows
from tests.storage.postgres_server import PASSWORD, start_postgres
from tests.storage.replicas import (
    Vendor,
    finish,
    served_xiaolanben,
    start_import,
    xiaolanben_environment,
)
from tools.bulk.engine import CHUNKS_AHEAD
from tools.exit_codes import EXIT_STORAGE
from tools.sandbox.stack import SANDBOX_SECRETS

ROWS = 600
PER_PROCESS_RATE = "6"
"""Requests per second each replica allows itself: 60 calls take one replica ~10 s alone,
so the second has time to start and join in; together 12/s, under the simulator's 50."""


@pytest.fixture
def vendor() -> Iterator[Vendor]:
    with served_xiaolanben() as served:
        yield served


def _environment(vendor: Vendor, database_url: str, **extra: str) -> dict[str, str]:
    return xiaolanben_environment(
        vendor,
        rate_limit=extra.pop("XIAOLANBEN_RATE_LIMIT", PER_PROCESS_RATE),
        CRMOPS_DATABASE_URL=database_url,
        **extra,
    )


def _import(path: Path, env: dict[str, str], *options: str) -> subprocess.Popen[str]:
    # --resume: whichever replica starts second finds the import begun, and joins it.
    return start_import(path, env, "--resume", *options)


def _rows(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as connection:
        return connection.execute(query).fetchall()


def _everything(url: str) -> str:
    tables = _rows(url, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    assert {"imports", "import_rows", "audit_log", "crmops_schema"} <= {t for (t,) in tables}
    return "\n".join(
        text
        for (table,) in tables
        for (text,) in _rows(url, f"SELECT t::text FROM {table} AS t")  # noqa: S608 - ours
    )


def test_two_replicas_importing_one_file_send_every_row_exactly_once(
    tmp_path: Path, vendor: Vendor, postgres_url: str
) -> None:
    path = write_csv(tmp_path / "customers.csv", XLB_HEADER, xiaolanben_rows(ROWS))
    env = _environment(vendor, postgres_url)

    # Four calls in flight each: a replica claims only a few chunks ahead of its sending.
    replicas = [_import(path, env, "--concurrency", "4") for _ in range(2)]
    results = [finish(process) for process in replicas]

    reports = []
    for code, out, err in results:
        assert code == 0, err
        reports.append(json.loads(out))
    for report in reports:  # either replica reports the whole import, the same way
        assert (report["status"], report["confirmed"], report["created"]) == ("ok", ROWS, ROWS)
        assert (report["unknown"], report["pending"], report["failed"]) == (0, 0, 0)
    assert sorted(report["run"] for report in reports) == [1, 2]
    sent = [report["rows_sent"] for report in reports]
    assert sum(sent) == ROWS
    assert min(sent) > 0, f"one replica did everything ({sent}): they did not overlap"

    assert len(vendor.recorder.received) == ROWS
    assert set(vendor.recorder.received.values()) == {1}  # every row sent exactly once
    assert len(vendor.simulator.customers) == ROWS
    assert all(len(c.contacts) == 1 for c in vendor.simulator.customers.values())
    assert _rows(postgres_url, "SELECT state, max(attempts) FROM import_rows GROUP BY state") == [
        ("confirmed", 1)
    ]

    # The audit log has each replica's calls, and between them every row once.
    calls = _rows(
        postgres_url,
        "SELECT target, sent FROM audit_log WHERE operation = 'import_customer' AND outcome = 'ok'",
    )
    assert {target.rsplit("run ", 1)[1] for target, _ in calls} == {"1)", "2)"}
    audited = sorted(number for _, sent in calls for number in sent["rows"])
    assert audited == list(range(2, ROWS + 2))
    runs = _rows(postgres_url, "SELECT count(*) FROM audit_log WHERE operation = 'bulk_import'")
    assert runs == [(2,)]

    stored = _everything(postgres_url)
    assert not [s for s in (*SANDBOX_SECRETS, PASSWORD) if s in stored]
    assert "上海第0科技有限公司" in stored  # the dump does hold the rows


def test_a_killed_replicas_rows_are_taken_over_by_the_live_one(
    tmp_path: Path, vendor: Vendor, postgres_url: str
) -> None:
    path = write_csv(tmp_path / "customers.csv", XLB_HEADER, xiaolanben_rows(ROWS))
    env = _environment(vendor, postgres_url, CRMOPS_IMPORT_LEASE="2")
    # Two calls in flight: a replica claims a few chunks ahead, leaving rows for the other.
    doomed = _import(path, env, "--concurrency", "2")
    try:
        _wait_for(lambda: len(vendor.simulator.customers) >= 50, doomed)
        survivor = _import(path, env, "--concurrency", "2")
        _wait_for(lambda: _held_by_two_runs(postgres_url), survivor)
        doomed.send_signal(signal.SIGKILL)  # its claimed rows stay `sent`, held by no one alive
        doomed.wait(10)
    finally:
        finish(doomed)
    code, out, err = finish(survivor)

    assert code == 0, err
    report = json.loads(out)
    assert (report["status"], report["confirmed"], report["unknown"]) == ("ok", ROWS, 0)
    assert len(vendor.simulator.customers) == ROWS
    assert all(len(c.contacts) == 1 for c in vendor.simulator.customers.values())
    (taken_over,) = _rows(postgres_url, "SELECT count(*) FROM import_rows WHERE attempts > 1")
    assert taken_over[0] > 0  # the killed replica's rows, claimed again after its lease
    # Only rows the killed replica had in flight can have gone out twice (an update then).
    assert sum(count - 1 for count in vendor.recorder.received.values()) <= 2 * 10


def _held_by_two_runs(url: str) -> bool:
    (owners,) = _rows(url, "SELECT count(DISTINCT held_by) FROM import_rows")
    return int(owners[0]) >= 2


def _wait_for(
    condition: Callable[[], bool], process: subprocess.Popen[str], timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "the import did not get going"
        time.sleep(0.05)


def test_losing_postgresql_mid_import_stops_clearly_and_resume_lands_every_row(
    tmp_path: Path, vendor: Vendor
) -> None:
    server = start_postgres()  # the test's own: it crashes
    try:
        url = server.create_database()
        path = write_csv(tmp_path / "customers.csv", XLB_HEADER, xiaolanben_rows(ROWS))
        # The stopped run cannot give its rows up: the resume waits for its lease to run out.
        env = _environment(vendor, url, CRMOPS_IMPORT_LEASE="2", XIAOLANBEN_RATE_LIMIT="20")
        process = _import(path, env, "--concurrency", "4")
        _wait_for(lambda: len(vendor.simulator.customers) >= 50, process)
        server.crash()
        code, out, err = finish(process)

        assert code == EXIT_STORAGE, err
        assert "postgresql://crmops:***@127.0.0.1" in err
        assert "CRMOPS_DATABASE_URL" in err
        assert "Traceback" not in err
        assert PASSWORD not in out + err
        landed_before = len(vendor.simulator.customers)
        assert landed_before < ROWS

        server.restart()
        code, out, err = finish(_import(path, env, "--concurrency", "4"))
    finally:
        server.stop()

    assert code == 0, err
    report = json.loads(out)
    assert (report["status"], report["confirmed"], report["run"]) == ("ok", ROWS, 2)
    assert len(vendor.simulator.customers) == ROWS
    assert all(len(c.contacts) == 1 for c in vendor.simulator.customers.values())
    # Resent: at most the chunks in flight or already claimed when the journal went away
    # (they go out while the first failed write waits for the pool); updates, not doubles.
    resent = sum(count - 1 for count in vendor.recorder.received.values())
    assert resent <= (4 + CHUNKS_AHEAD) * 10
