"""`crmops import`: exit codes, summary, rejects CSV, JSON, and a real `kill -9` mid-import."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import server.cli
from server import cli_import
from server.cli_import import standalone_app
from tests.bulk.conftest import (
    SE_HEADER,
    XLB_HEADER,
    Recorded,
    socialepoch_rows,
    write_csv,
    xiaolanben_rows,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(sandbox: Recorded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {**sandbox.env(), "CRMOPS_DB": str(tmp_path / "crmops.db")}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def test_exit_codes_match_the_rest_of_the_cli() -> None:
    assert (cli_import.EXIT_PARTIAL, cli_import.EXIT_INPUT) == (
        server.cli.EXIT_FAILED,
        server.cli.EXIT_INPUT,
    )
    assert (cli_import.EXIT_VENDOR, cli_import.EXIT_CONFIG) == (
        server.cli.EXIT_VENDOR,
        server.cli.EXIT_CONFIG,
    )
    assert cli_import.EXIT_INTERRUPTED == server.cli.EXIT_INTERRUPTED


def test_import_prints_a_summary_and_exits_0(
    tmp_path: Path, env: dict[str, str], sandbox: Recorded
) -> None:
    path = write_csv(tmp_path / "in.csv", SE_HEADER, socialepoch_rows(120), "utf-8-sig")
    result = CliRunner().invoke(standalone_app(), ["import", str(path), "--vendor", "socialepoch"])
    assert result.exit_code == 0, result.output
    assert "confirmed" in result.stdout
    assert "120" in result.stdout
    assert len(sandbox.socialepoch.customers) == 120


def test_bad_rows_exit_1_and_land_in_the_rejects_csv(tmp_path: Path, env: dict[str, str]) -> None:
    rows = [*socialepoch_rows(3), ["12", "坏", "女"]]
    path = write_csv(tmp_path / "in.csv", SE_HEADER, rows)
    rejects = tmp_path / "rejects.csv"
    result = CliRunner().invoke(
        standalone_app(),
        ["import", str(path), "--vendor", "socialepoch", "--rejects", str(rejects), "--json"],
    )
    assert result.exit_code == cli_import.EXIT_PARTIAL, result.output
    report = json.loads(result.stdout)
    assert (report["confirmed"], report["rejected"]) == (3, 1)
    assert report["problems"][0]["row"] == 5
    lines = rejects.read_text(encoding="utf-8-sig").splitlines()
    assert next(csv.reader(lines[1:]))[:2] == ["5", "whatsApp"]


def test_a_file_with_no_valid_row_is_bad_input(tmp_path: Path, env: dict[str, str]) -> None:
    path = write_csv(tmp_path / "in.csv", SE_HEADER, [["12", "坏", "女"]])
    result = CliRunner().invoke(
        standalone_app(), ["import", str(path), "--vendor", "socialepoch", "--dry-run"]
    )
    assert result.exit_code == cli_import.EXIT_INPUT


def test_an_unconfigured_vendor_is_a_configuration_error(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "in.csv", XLB_HEADER, xiaolanben_rows(1))
    result = CliRunner().invoke(standalone_app(), ["import", str(path), "--vendor", "xiaolanben"])
    assert result.exit_code == cli_import.EXIT_CONFIG
    assert "XIAOLANBEN_COMPANY_ID" in result.stderr


def test_a_bad_mapping_is_bad_input(tmp_path: Path, env: dict[str, str]) -> None:
    path = write_csv(tmp_path / "in.csv", XLB_HEADER, xiaolanben_rows(1))
    result = CliRunner().invoke(
        standalone_app(), ["import", str(path), "--vendor", "xiaolanben", "--map", "nope"]
    )
    assert result.exit_code == cli_import.EXIT_INPUT
    assert "HEADER=FIELD" in result.stderr


def _confirmed(db: Path) -> set[str]:
    with sqlite3.connect(db) as connection:
        try:
            rows = connection.execute("SELECT payload FROM import_rows WHERE state = 'confirmed'")
            return {json.loads(payload)["entName"] for (payload,) in rows}
        except sqlite3.OperationalError:  # the child has not created the tables yet
            return set()


def test_kill_9_mid_import_then_resume_lands_every_row_exactly_once(
    tmp_path: Path, env: dict[str, str], sandbox: Recorded
) -> None:
    sandbox.xiaolanben.faults.latency = 0.05
    path = write_csv(tmp_path / "in.csv", XLB_HEADER, xiaolanben_rows(300))
    db = Path(env["CRMOPS_DB"])
    command = [
        sys.executable,
        "-m",
        "server.cli_import",
        "import",
        str(path),
        "--vendor",
        "xiaolanben",
    ]
    child_env = {**os.environ, "XIAOLANBEN_RATE_LIMIT": "20", "PYTHONPATH": str(ROOT)}
    # The killed run's rows stay claimed until its lease runs out: keep the resume's wait short.
    child_env["CRMOPS_IMPORT_LEASE"] = "2"
    child = subprocess.Popen(
        command, env=child_env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while len(_confirmed(db)) < 60:
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            assert time.monotonic() < deadline, "the import did not get going"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
        if child.stderr:
            child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    confirmed_before = _confirmed(db)
    assert 60 <= len(confirmed_before) < 300
    recorder = sandbox.recorders["xiaolanben"]
    recorder.reset()

    resumed = subprocess.run(
        [*command, "--resume", "--json"],
        env=child_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert (report["confirmed"], report["run"]) == (300, 2)
    assert not confirmed_before & set(recorder.received)
    assert len(sandbox.xiaolanben.customers) == 300
    assert all(len(c.contacts) == 1 for c in sandbox.xiaolanben.customers.values())
