"""The CLI in each language: `crmops errors 502 --lang zh`, `LANG=zh_CN.UTF-8 crmops
staff` against the simulators, the tour with `--lang id`, doctor, errors, the rejected
rows' CSV. Each runs the real `crmops` (a child process, or in this process with the
environment it reads)."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from server.cli import EXIT_CONFIG, EXIT_USAGE, app
from tests.sandbox_fixtures import Sandbox
from tools.i18n import current_locale

ROOT = Path(__file__).resolve().parents[2]
CRMOPS = [sys.executable, "-m", "server"]
WAIT = 120
_LANGUAGE_VARIABLES = ("LANG", "LC_ALL", "LC_MESSAGES", "LANGUAGE")


def crmops(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`crmops ARGS` in a child process: no vendor settings, no language variables but
    `env`, a database of its own."""
    clean = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("SOCIALEPOCH_", "XIAOLANBEN_", "BANGWO8_", "CRMOPS_", "SLACK_"))
        and name not in _LANGUAGE_VARIABLES
    }
    clean |= {
        "PYTHONPATH": str(ROOT),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "CRMOPS_DB": str(tmp_path / "crmops.db"),
        "COLUMNS": "200",
        **env,
    }
    return subprocess.run(
        [*CRMOPS, *args],
        capture_output=True,
        text=True,
        env=clean,
        cwd=tmp_path,
        timeout=WAIT,
        check=False,
    )


def in_process(*args: str, **env: str) -> Result:
    """`crmops ARGS` in this process, with `env` added to the environment."""
    return CliRunner().invoke(app, list(args), env=env)


# --- crmops errors ----------------------------------------------------------------------


def test_errors_502_with_lang_zh_is_chinese(tmp_path: Path) -> None:
    done = crmops(tmp_path, "errors", "502", "--lang", "zh")
    assert done.returncode == 0, done.stderr
    assert "socialepoch 错误码 502 见于" in done.stdout
    assert "含义:请求时间戳超时" in done.stdout
    assert "处理方法:签名时间超出了供应商允许的时间窗口" in done.stdout
    assert "来源:" in done.stdout
    assert "What to do" not in done.stdout


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (("--lang", "id", "errors", "502"), {}),  # before the command's name too
        (("errors", "502", "--lang=id-ID"), {"LANG": "zh_CN.UTF-8"}),  # --lang wins
        (("errors", "502"), {"CRMOPS_LOCALE": "id", "LC_ALL": "zh_CN.UTF-8"}),
        (("errors", "502"), {"LC_MESSAGES": "id_ID.UTF-8", "LANG": "zh_CN.UTF-8"}),
    ],
)
def test_errors_in_indonesian_however_it_is_chosen(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str]
) -> None:
    done = crmops(tmp_path, *args, **env)
    assert done.returncode == 0, done.stderr
    assert "Arti: Stempel waktu permintaan kedaluwarsa / 请求时间戳超时" in done.stdout
    assert "Yang harus dilakukan: Waktu yang ditandatangani" in done.stdout


def test_errors_with_no_language_set_is_english(tmp_path: Path) -> None:
    done = crmops(tmp_path, "errors", "502")
    assert "Meaning: Request timestamp timeout / 请求时间戳超时" in done.stdout


def test_the_json_result_carries_every_locale(tmp_path: Path) -> None:
    done = crmops(tmp_path, "errors", "502", "--json", "--lang", "zh")
    assert done.returncode == 0, done.stderr
    assert '"zh-CN": {' in done.stdout
    assert '"meaning": "Stempel waktu permintaan kedaluwarsa"' in done.stdout
    assert '"action": "The signed time is outside' in done.stdout


def test_an_unknown_language_is_a_usage_error(tmp_path: Path) -> None:
    done = crmops(tmp_path, "errors", "502", "--lang", "fr")
    assert done.returncode == EXIT_USAGE
    assert "'fr' is not a language crmops speaks; use one of zh-CN, en, id" in done.stderr
    assert "Traceback" not in done.stderr
    wrong = crmops(tmp_path, "errors", "502", CRMOPS_LOCALE="xx")
    assert wrong.returncode == EXIT_CONFIG
    assert wrong.stderr == (
        "error: CRMOPS_LOCALE: 'xx' is not a language crmops speaks; use one of zh-CN, en, id\n"
    )


def test_lang_after_a_double_dash_is_an_argument() -> None:
    result = in_process("errors", "--", "--lang")
    assert result.exit_code == 0, result.output
    assert "No documented error of any vendor matches '--lang'" in result.stdout


# --- the tool commands against the simulators ------------------------------------------


def test_staff_with_a_chinese_lang_is_a_chinese_table(configured: Sandbox) -> None:
    configured.xiaolanben.seed()
    result = in_process("staff", "--limit", "3", LANG="zh_CN.UTF-8")
    assert result.exit_code == 0, result.output
    assert "小蓝本员工" in result.stdout
    for header in ("姓名", "手机号", "部门", "角色"):
        assert header in result.stdout
    assert "还有更多员工符合条件" in result.stdout  # the caption: more staff match
    assert current_locale() == "en"  # the run leaves the language as it found it


def test_a_failure_is_one_line_in_the_language(tmp_path: Path) -> None:
    result = in_process("staff", "--lang", "zh")
    assert result.exit_code == EXIT_CONFIG
    assert result.stderr.startswith("错误:xiaolanben 尚未配置:请设置 XIAOLANBEN_COMPANY_ID")
    assert result.stderr.count("\n") == 1


def test_doctor_explains_in_indonesian(tmp_path: Path) -> None:
    done = crmops(tmp_path, "doctor", "--lang", "id")
    assert done.returncode == EXIT_CONFIG
    assert "belum dikonfigurasi" in done.stdout
    assert "belum ada vendor yang dikonfigurasi" in done.stdout


def test_the_rejected_rows_csv_has_chinese_headers(tmp_path: Path) -> None:
    source = tmp_path / "companies.csv"
    source.write_text("客户名称,企业名称\n云帆软件,深圳云帆软件有限公司\n,无名\n", encoding="utf-8")
    rejects = tmp_path / "rejects.csv"
    result = in_process(
        "import",
        str(source),
        "--vendor",
        "xiaolanben",
        "--dry-run",
        "--rejects",
        str(rejects),
        "--lang",
        "zh",
    )
    assert "已读取行数" in result.stdout + result.stderr, result.output
    with rejects.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["行号", "字段", "原因", "标识", "阶段"]
    assert rows[1][0] == "3"


# --- the tour ------------------------------------------------------------------------------


def test_the_tour_in_indonesian(tmp_path: Path) -> None:
    done = crmops(tmp_path, "sandbox", "--tour", "--lang", "id")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("Tur crmops: setiap alat dipanggil")
    assert re.search(r"^\d+\. lookup_error_code: arti galat SocialEpoch 502", done.stdout, re.M)
    assert "coba: crmops errors 502" in done.stdout
    assert "Arti: Stempel waktu permintaan kedaluwarsa" in done.stdout
    assert "ditolak, sesuai harapan:" in done.stdout
    assert "Staf Xiaolanben" in done.stdout
    assert "Tiket Bangwo8" in done.stdout
    assert "setiap alat menjawab sesuai harapan" in done.stdout
    assert "Traceback" not in done.stderr
