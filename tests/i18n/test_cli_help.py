"""The CLI's help and its input problems in each language: `crmops --help`, a command's own
`--help` (translated when the command is fetched, never at import), the generic result
renderer's field names, and a file problem, each run as the real `crmops`."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from server.render import FIELD_NAMES, field_name, render
from tests.i18n.test_cli_languages import crmops
from tools.i18n import tr, use_locale


def test_the_command_list_in_chinese(tmp_path: Path) -> None:
    done = crmops(tmp_path, "--help", LANG="zh_CN.UTF-8")
    assert done.returncode == 0, done.stderr
    assert "一套工具统一使用 SocialEpoch、小蓝本和帮我吧" in done.stdout
    assert "crmops 显示的语言:zh-CN、en 或 id" in done.stdout
    assert "解释供应商错误码:含义(中文、英文)和处理方法。" in done.stdout
    assert "列出小蓝本员工" in done.stdout  # a tool command's line
    assert "运行 Slack 机器人" in done.stdout  # the plugin's (bots/cli.py)
    assert "Explain a vendor error code" not in done.stdout


def test_a_commands_help_in_indonesian(tmp_path: Path) -> None:
    done = crmops(tmp_path, "staff", "--help", "--lang", "id")
    assert done.returncode == 0, done.stderr
    assert "Tampilkan staf Xiaolanben (小蓝本)" in done.stdout
    assert "potongan nama atau nomor ponsel lengkap" in done.stdout
    assert "cetak hasil sebagai JSON (untuk skrip)" in done.stdout


def test_help_is_english_by_default(tmp_path: Path) -> None:
    done = crmops(tmp_path, "--help")
    assert "Explain a vendor error code: its meaning (zh, en) and what to do." in done.stdout
    assert "the language crmops shows you" in done.stdout


def test_a_missing_file_is_explained_in_chinese(tmp_path: Path) -> None:
    done = crmops(
        tmp_path, "import", "nowhere.csv", "--vendor", "xiaolanben", "--dry-run", "--lang", "zh"
    )
    assert "nowhere.csv 不存在:请检查路径" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_the_generic_renderer_names_fields_in_the_language() -> None:
    console = Console(record=True, width=120)
    with use_locale("zh-CN"):
        render(console, {"rows_read": 11, "rejected": 1, "dry_run": True, "not_a_field": 2})
    shown = console.export_text()
    assert "已读取行数" in shown
    assert "已拒绝" in shown
    assert "not_a_field" in shown  # a name it does not know: as it is
    assert field_name("rows_read") == "rows_read"  # English: the field's own name, as --json
    for name in FIELD_NAMES:  # each one has a Chinese word
        assert tr(name, locale="zh-CN") != name, name
