"""`crmops doctor` against the simulators over real HTTP: the checks, and the command's exits."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from server.cli import app
from tests.sandbox_fixtures import SECRETS, Sandbox
from tools.doctor import DoctorReport, diagnose, diagnose_settings
from tools.settings import Settings

CRMOPS = [sys.executable, "-m", "server"]
VENDOR_PREFIXES = ("SOCIALEPOCH_", "XIAOLANBEN_", "BANGWO8_", "CRMOPS_")


def _by_vendor(report: DoctorReport) -> dict[str, str]:
    return {check.vendor: check.status for check in report.checks}


def _with(settings: Settings, vendor: str, **changes: object) -> Settings:
    own = getattr(settings, vendor).model_copy(update=changes)
    return settings.model_copy(update={vendor: own})


async def test_every_configured_vendor_answers_one_read(settings: Settings) -> None:
    report = await diagnose_settings(settings)

    assert _by_vendor(report) == {"socialepoch": "ok", "xiaolanben": "ok", "bangwo8": "ok"}
    assert report.outcome == "ok"
    assert all(check.seconds is not None for check in report.checks)


async def test_a_wrong_key_is_a_failure_explained_by_the_catalog(
    settings: Settings, sandbox: Sandbox
) -> None:
    wrong = _with(settings, "xiaolanben", sign_key=SecretStr("not-the-key"))

    report = await diagnose_settings(wrong)

    assert _by_vendor(report)["xiaolanben"] == "failing"
    assert report.outcome == "failing"
    (check,) = [check for check in report.checks if check.vendor == "xiaolanben"]
    assert check.code == "401"
    assert check.http_status == 401
    assert check.meaning is not None
    assert "Wrong signature" in check.meaning  # the catalog's meaning of xiaolanben 401
    assert check.action is not None
    assert "XIAOLANBEN_SIGN_KEY" in check.action
    assert "not-the-key" not in report.model_dump_json()
    # One harmless read, made once: no retries of a refused call.
    assert sandbox.xiaolanben.counters["requests"] == 1


async def test_a_wrong_bangwo8_secret_is_explained(settings: Settings) -> None:
    wrong = _with(settings, "bangwo8", client_secret=SecretStr("not-the-secret"))

    report = await diagnose_settings(wrong)

    (check,) = [check for check in report.checks if check.vendor == "bangwo8"]
    assert check.status == "failing"
    assert check.code == "invalid_client"
    assert check.action is not None
    assert "BANGWO8_CLIENT_SECRET" in check.action


async def test_no_answer_names_the_base_url_to_check(settings: Settings) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"  # bound, never listening
        report = await diagnose_settings(_with(settings, "bangwo8", base_url=closed))

    (check,) = [check for check in report.checks if check.vendor == "bangwo8"]
    assert check.status == "failing"
    assert closed in check.summary
    assert check.action is not None
    assert "BANGWO8_BASE_URL" in check.action


async def test_incomplete_and_unparsable_settings_are_named(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    env_file = tmp_path / "crmops.env"
    env = sandbox.env()
    env_file.write_text(
        f"XIAOLANBEN_COMPANY_ID={env['XIAOLANBEN_COMPANY_ID']}\n"  # no signing key
        "SOCIALEPOCH_TENANT_ID=10001\nSOCIALEPOCH_API_KEY=k\nSOCIALEPOCH_RATE_LIMIT=fast\n"
        f"BANGWO8_BASE_URL={env['BANGWO8_BASE_URL']}\n"
        f"BANGWO8_CLIENT_ID={env['BANGWO8_CLIENT_ID']}\n"
        f"BANGWO8_CLIENT_SECRET={env['BANGWO8_CLIENT_SECRET']}\n",
        encoding="utf-8",
    )

    report = await diagnose(env_file=env_file)

    checks = {check.vendor: check for check in report.checks}
    assert checks["xiaolanben"].status == "misconfigured"
    assert checks["xiaolanben"].missing == ["XIAOLANBEN_SIGN_KEY"]
    assert checks["socialepoch"].status == "misconfigured"
    assert checks["socialepoch"].missing == ["SOCIALEPOCH_RATE_LIMIT"]
    assert checks["bangwo8"].status == "ok"  # the others are still checked
    assert report.outcome == "misconfigured"


async def test_nothing_configured_is_a_configuration_problem(tmp_path: Path) -> None:
    report = await diagnose(env_file=tmp_path / "absent.env")

    assert set(_by_vendor(report).values()) == {"not_configured"}
    assert report.outcome == "misconfigured"


# --- the command, as a process -----------------------------------------------------------


def _doctor(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(VENDOR_PREFIXES)}
    return subprocess.run(
        [*CRMOPS, "doctor", "--env-file", str(tmp_path / "absent.env"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **clean,
            **env,
            "COLUMNS": "200",
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        },
        cwd=tmp_path,
        check=False,
    )


def test_crmops_doctor_exits_0_when_all_answer(sandbox: Sandbox, tmp_path: Path) -> None:
    done = _doctor(tmp_path, sandbox.env())

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(" ok ") == 3
    assert "every configured vendor answered" in done.stdout


def test_crmops_doctor_explains_a_wrong_key_and_exits_69(sandbox: Sandbox, tmp_path: Path) -> None:
    env = {**sandbox.env(), "SOCIALEPOCH_API_KEY": "wrong-key-123"}

    done = _doctor(tmp_path, env, "--json")

    assert done.returncode == 69, done.stdout + done.stderr
    checks = {check["vendor"]: check for check in json.loads(done.stdout)["checks"]}
    assert checks["socialepoch"]["status"] == "failing"
    assert checks["socialepoch"]["code"] is not None
    assert checks["socialepoch"]["meaning"]  # from the catalog
    assert checks["xiaolanben"]["status"] == checks["bangwo8"]["status"] == "ok"
    for secret in (*SECRETS, "wrong-key-123"):
        assert secret not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr

    table = _doctor(tmp_path, env)
    assert table.returncode == 69
    assert "what to do:" in table.stdout


def test_crmops_doctor_exits_78_when_settings_are_missing(tmp_path: Path) -> None:
    done = _doctor(tmp_path, {"XIAOLANBEN_COMPANY_ID": "company-42"})

    assert done.returncode == 78, done.stdout + done.stderr
    assert "XIAOLANBEN_SIGN_KEY" in done.stdout
    assert "Traceback" not in done.stderr


# --- plain HTTP, and where each setting came from ------------------------------------------


def _plain_http_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Bangwo8 at plain HTTP on a real host, from a `.env` file and the environment."""
    env_file = tmp_path / "crmops.env"
    env_file.write_text("BANGWO8_BASE_URL=http://api.example.com\nBANGWO8_CLIENT_ID=c-1\n")
    monkeypatch.setenv("BANGWO8_CLIENT_SECRET", "s3cret-from-the-environment")
    return env_file


async def test_a_plain_http_vendor_url_is_refused_and_every_setting_says_where_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = _plain_http_settings(tmp_path, monkeypatch)

    report = await diagnose(env_file=env_file)

    (check,) = [check for check in report.checks if check.vendor == "bangwo8"]
    assert check.status == "misconfigured"
    assert "BANGWO8_BASE_URL is http://api.example.com" in check.summary
    assert check.missing == ["BANGWO8_BASE_URL", "BANGWO8_ALLOW_INSECURE_HTTP"]
    assert check.action is not None
    assert "BANGWO8_ALLOW_INSECURE_HTTP=true" in check.action
    assert report.sources == {
        "SOCIALEPOCH_BASE_URL": "default",
        "XIAOLANBEN_BASE_URL": "default",
        "BANGWO8_BASE_URL": f".env file {env_file}",
        "BANGWO8_CLIENT_ID": f".env file {env_file}",
        "BANGWO8_CLIENT_SECRET": "environment",
    }
    assert "s3cret-from-the-environment" not in report.model_dump_json()


def test_crmops_doctor_prints_where_each_setting_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = _plain_http_settings(tmp_path, monkeypatch)
    monkeypatch.setenv("COLUMNS", "200")

    done = CliRunner().invoke(app, ["doctor", "--env-file", str(env_file)])

    assert done.exit_code == 78, done.output
    assert "settings read from:" in done.stdout
    assert "BANGWO8_CLIENT_SECRET: environment" in done.stdout
    assert f"BANGWO8_BASE_URL: .env file {env_file}" in done.stdout
    assert "XIAOLANBEN_BASE_URL: default" in done.stdout
    assert "plain http://" in done.stdout
    assert "s3cret-from-the-environment" not in done.output
