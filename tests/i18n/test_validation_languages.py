"""Validation messages in each language: the rejected rows of `crmops import --dry-run`
against the simulators, and pydantic's own messages (`tools.models.validation_message`)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError
from typer.testing import CliRunner, Result

from server.cli import app
from tests.sandbox_fixtures import Sandbox
from tools.bulk.readers import read_rows
from tools.errors import InputError
from tools.i18n import Locale, current_locale, use_locale
from tools.models import validation_message
from tools.vendors.bangwo8.models import TicketFilters, validate_ticket
from tools.vendors.socialepoch.models import validate_customers
from tools.vendors.xiaolanben.models import validate_customer

_NO_LANGUAGE: dict[str, str | None] = dict.fromkeys(
    ("CRMOPS_LOCALE", "LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE")
)
"""The language variables, unset (None) unless a test sets one."""


def _bad_socialepoch_rows(tmp_path: Path) -> Path:
    """A good row, a bad phone, a sex that is no literal, and a row without its phone."""
    source = tmp_path / "customers.csv"
    source.write_text(
        "手机号,姓名,性别\n"
        "8613800000001,好客户,女\n"
        "12345,坏号码,女\n"
        "8613800000002,怪性别,maybe\n"
        ",没有号码,男\n",
        encoding="utf-8",
    )
    return source


def _dry_run(source: Path, **env: str) -> Result:
    arguments = ["import", str(source), "--vendor", "socialepoch", "--dry-run"]
    return CliRunner().invoke(app, arguments, env={**_NO_LANGUAGE, "COLUMNS": "200", **env})


def test_rejected_rows_of_a_chinese_dry_run_are_chinese(
    configured: Sandbox, tmp_path: Path
) -> None:
    result = _dry_run(_bad_socialepoch_rows(tmp_path), LANG="zh_CN.UTF-8")
    shown = result.stdout + result.stderr
    assert (
        "第 3 行 whatsApp: '12345' 不是带国家代码的有效号码:请填写带国家代码的数字,"
        "如 8618221733141(86 = 中国)"
    ) in shown
    assert "第 4 行 sex: 应为 'unknown', 'male' 或 'female' 之一" in shown
    assert "第 5 行 whatsApp: 必填项,请填写" in shown
    for english in ("is not a valid number", "Input should be", "Field required"):
        assert english not in shown
    assert current_locale() == "en"


def test_rejected_rows_of_an_indonesian_dry_run_are_indonesian(
    configured: Sandbox, tmp_path: Path
) -> None:
    result = _dry_run(_bad_socialepoch_rows(tmp_path), LANG="id_ID.UTF-8")
    shown = result.stdout + result.stderr
    assert "'12345' bukan nomor yang valid dengan kode negaranya: berikan digit" in shown
    assert "Masukan harus salah satu dari 'unknown', 'male' atau 'female'" in shown
    assert "whatsApp: Wajib diisi" in shown
    assert "is not a valid number" not in shown


def test_rejected_rows_in_english_are_as_before(configured: Sandbox, tmp_path: Path) -> None:
    result = _dry_run(_bad_socialepoch_rows(tmp_path))
    shown = result.stdout + result.stderr
    assert "'12345' is not a valid number with its country code: give digits" in shown
    assert "Input should be 'unknown', 'male' or 'female'" in shown
    assert "Field required" in shown


# --- pydantic's own messages, by error type ------------------------------------------------


class _Everything(BaseModel):
    """One field for each pydantic error type the table translates."""

    model_config = ConfigDict(extra="forbid")

    required: str
    text: str
    choice: Literal["unknown", "male", "female"]
    whole: int
    fraction: int
    number: float
    flag: bool
    short: str = Field(max_length=2)
    long: str = Field(min_length=3)
    few: list[int] = Field(max_length=1)
    many: list[int] = Field(min_length=2)
    positive: int = Field(gt=0)
    at_least: int = Field(ge=1)
    negative: int = Field(lt=0)
    at_most: int = Field(le=0)
    day: date
    moment: datetime


_BAD = {
    "text": 1,
    "choice": "maybe",
    "whole": "x",
    "fraction": 1.5,
    "number": "x",
    "flag": "x",
    "short": "abc",
    "long": "ab",
    "few": [1, 2],
    "many": [1],
    "positive": 0,
    "at_least": 0,
    "negative": 1,
    "at_most": 1,
    "day": "x",
    "moment": "x",
    "stray": 1,
}


def _messages(locale: Locale) -> dict[str, str]:
    """Each field's (or `stray`'s) message in `locale`."""
    with pytest.raises(ValidationError) as caught:
        _Everything.model_validate(_BAD)
    with use_locale(locale):
        return {
            str(error["loc"][0]): validation_message(error)
            for error in caught.value.errors(include_url=False)
        }


def test_in_english_every_message_is_pydantics_own() -> None:
    with pytest.raises(ValidationError) as caught:
        _Everything.model_validate(_BAD)
    english = _messages("en")
    assert english == {str(e["loc"][0]): e["msg"] for e in caught.value.errors()}
    assert english["long"] == "String should have at least 3 characters"
    assert len(english) == len(_BAD) + 1  # `required` is missing too


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        (
            "zh-CN",
            {
                "required": "必填项,请填写",
                "stray": "不允许多余的字段",
                "text": "应为文本",
                "choice": "应为 'unknown', 'male' 或 'female' 之一",
                "whole": "应为整数,无法将该文本解析为整数",
                "fraction": "应为整数,但收到的是带小数的数字",
                "number": "应为数字,无法将该文本解析为数字",
                "flag": "应为布尔值(true/false),无法识别该输入",
                "short": "文本最多 2 个字符",
                "long": "文本至少需要 3 个字符",
                "few": "List 最多 1 项,实际为 2 项",
                "many": "List 至少需要 2 项,实际为 1 项",
                "positive": "应大于 0",
                "at_least": "应大于或等于 1",
                "negative": "应小于 0",
                "at_most": "应小于或等于 0",
            },
        ),
        (
            "id",
            {
                "required": "Wajib diisi",
                "stray": "Masukan tambahan tidak diizinkan",
                "choice": "Masukan harus salah satu dari 'unknown', 'male' atau 'female'",
                "whole": (
                    "Masukan harus berupa bilangan bulat; teks ini tidak dapat dibaca "
                    "sebagai bilangan bulat"
                ),
                "flag": (
                    "Masukan harus berupa boolean (true/false); masukan ini tidak dapat dikenali"
                ),
                "short": "Teks paling banyak 2 karakter",
                "many": "List harus berisi paling sedikit 2 item, bukan 1",
                "at_least": "Masukan harus lebih besar dari atau sama dengan 1",
            },
        ),
    ],
)
def test_pydantics_messages_are_translated(locale: Locale, expected: dict[str, str]) -> None:
    messages = _messages(locale)
    assert {name: messages[name] for name in expected} == expected
    assert not any(text.startswith(("Input should", "String should")) for text in messages.values())
    # the dates keep pydantic's own English detail, inside a translated sentence
    assert messages["day"].endswith("(input is too short)")


def test_a_type_the_table_lacks_is_pydantics_english() -> None:
    class Link(BaseModel):
        url: HttpUrl

    with pytest.raises(ValidationError) as caught:
        Link.model_validate({"url": "no url"})
    (error,) = caught.value.errors()
    with use_locale("zh-CN"):
        assert validation_message(error) == error["msg"]


# --- the vendors' own checks ---------------------------------------------------------------


def test_socialepoch_checks_speak_chinese() -> None:
    with use_locale("zh-CN"), pytest.raises(InputError) as caught:
        validate_customers(
            [
                {"whatsApp": "abc", "tabName": ["a,b"], "email": "nope", "birthday": "2020/02/30"},
                {"whatsApp": "8613800000001", "x" * 70: "v"},
                {"whatsApp": "8613800000001"},
                {"whatsApp": "+86 138-0000-0001"},
            ]
        )
    text = str(caught.value)
    assert text.startswith("SocialEpoch 客户数据无效(共 6 个问题):")
    assert "'abc' 不是电话号码:请填写带国家代码的数字" in text
    assert "标签中不能包含逗号" in text
    assert "'nope' 不是电子邮件地址" in text
    assert "'2020/02/30' 不是真实存在的日期:请写成 yyyy/MM/dd" in text
    assert "扩展字段名须为 1-64 个字符" in text
    assert "第 3 条记录:whatsApp: 8613800000001 也是第 2 条记录的号码" in text


def test_bangwo8_checks_speak_indonesian() -> None:
    with use_locale("id"), pytest.raises(InputError) as caught:
        validate_ticket({"subject": " ", "message": "hi", "ticketStatus": -1, "custUserId": 1.5})
    text = str(caught.value)
    assert "-1 di bawah 0: berikan bilangan bulat >= 0" in text
    assert "1.5 bukan ID pengguna yang valid: berikan nomor pengguna Bangwo8" in text
    with use_locale("zh-CN"), pytest.raises(ValidationError) as filters:
        TicketFilters(created_start=date(2025, 2, 1), created_end=date(2025, 1, 1))
    with use_locale("zh-CN"):
        assert "created_start 晚于 created_end:请对调" in str(filters.value)


def test_xiaolanben_checks_speak_chinese() -> None:
    record = {
        "customerName": "=HYPERLINK(1)",
        "contacts": [
            {"thirdDataId": "u1", "phone": "１３７００００００００", "birthday": "1990-13-01"},
            {"thirdDataId": "u1", "gender": "?"},
        ],
        "oops": 1,
    }
    with use_locale("zh-CN"), pytest.raises(InputError) as caught:
        validate_customer(record)
    text = str(caught.value)
    assert "以电子表格公式开头('=HYPERLINK(1)'...)" in text
    assert "含有全角或其他非 ASCII 字符:请用半角数字 0-9 输入号码(即 '13700000000')" in text
    assert "请使用 yyyy-MM-dd 格式的真实日期" in text
    assert "contacts[1].gender: 必须是 '男', '女' 或 '未知' 之一(收到 '?')" in text
    assert "oops: 未知字段" in text


def test_a_csv_row_problem_is_in_the_language(tmp_path: Path) -> None:
    source = tmp_path / "rows.csv"
    source.write_text("a,b\n1,2,3\n", encoding="utf-8")
    with use_locale("id"):
        (row,) = read_rows(source)
    assert row.error == "3 sel tetapi hanya ada 2 kolom"


def test_an_unknown_xiaolanben_column_is_explained_in_chinese(
    configured: Sandbox, tmp_path: Path
) -> None:
    source = tmp_path / "companies.csv"
    source.write_text("customerName,颜色\n云帆软件,蓝\n", encoding="utf-8")
    arguments = ["import", str(source), "--vendor", "xiaolanben", "--dry-run", "--lang", "zh"]
    result = CliRunner().invoke(app, arguments, env={**_NO_LANGUAGE, "COLUMNS": "200"})
    shown = result.stdout + result.stderr
    assert "颜色: 不对应任何小蓝本字段:请把列名改为字段名" in shown, shown
    assert "未知列" in shown
