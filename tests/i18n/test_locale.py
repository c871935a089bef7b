"""Which language crmops speaks: locale names as people and systems write them, the CLI's
order (`--lang`, CRMOPS_LOCALE, LC_ALL / LC_MESSAGES / LANG, English), and times shown in
this machine's zone."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tools.i18n import (
    UnknownLocaleError,
    current_locale,
    from_environment,
    local_time,
    parse_locale,
    tr,
    use_locale,
)
from tools.settings import CrmopsSettings


@pytest.mark.parametrize(
    ("text", "locale"),
    [
        ("zh", "zh-CN"),
        ("zh-CN", "zh-CN"),
        ("zh_CN.UTF-8", "zh-CN"),
        ("zh-Hans", "zh-CN"),
        ("ZH_cn.gb18030", "zh-CN"),
        ("id", "id"),
        ("id_ID", "id"),
        ("id-ID", "id"),
        ("in_ID", "id"),
        ("en_US.UTF-8", "en"),
        ("C", "en"),
        ("POSIX", "en"),
        ("C.UTF-8", "en"),
        ("fr_FR.UTF-8", None),
        ("", None),
    ],
)
def test_parse_locale(text: str, locale: str | None) -> None:
    assert parse_locale(text) == locale


@pytest.mark.parametrize(
    ("environ", "locale"),
    [
        ({}, "en"),
        ({"LANG": "zh_CN.UTF-8"}, "zh-CN"),
        ({"LANG": "zh_CN.UTF-8", "LC_MESSAGES": "id_ID.UTF-8"}, "id"),
        ({"LANG": "zh_CN.UTF-8", "LC_MESSAGES": "id_ID", "LC_ALL": "en_US"}, "en"),
        ({"LC_ALL": "fr_FR.UTF-8", "LANG": "zh_CN.UTF-8"}, "en"),  # LC_ALL wins, unknown: en
        ({"LC_ALL": "", "LANG": "id_ID"}, "id"),  # an empty variable is not set
        ({"CRMOPS_LOCALE": "id", "LC_ALL": "zh_CN.UTF-8"}, "id"),
    ],
)
def test_the_cli_reads_crmops_locale_then_the_posix_variables(
    environ: dict[str, str], locale: str
) -> None:
    assert from_environment(environ) == locale


def test_an_unknown_crmops_locale_says_what_it_may_be() -> None:
    with pytest.raises(UnknownLocaleError, match=r"CRMOPS_LOCALE: 'fr' .* zh-CN, en, id"):
        from_environment({"CRMOPS_LOCALE": "fr"})


def test_the_setting_reads_what_people_write(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMOPS_LOCALE", "id_ID.UTF-8")
    assert CrmopsSettings().locale == "id"
    monkeypatch.setenv("CRMOPS_LOCALE", "klingon")
    with pytest.raises(ValueError, match="CRMOPS_LOCALE: 'klingon' is not a language"):
        CrmopsSettings()


def test_a_locale_holds_inside_its_block_only() -> None:
    assert current_locale() == "en"
    with use_locale("zh-CN"):
        assert tr("Xiaolanben staff") == "小蓝本员工"
        with use_locale("id"):
            assert tr("Xiaolanben staff") == "Staf Xiaolanben"
        assert current_locale() == "zh-CN"
    assert tr("Xiaolanben staff") == "Xiaolanben staff"
    assert tr("not translated anywhere {x}", x=1) == "not translated anywhere 1"
    assert tr("{vendor} is not configured", vendor="bangwo8", locale="id") == (
        "bangwo8 belum dikonfigurasi"
    )


@pytest.fixture
def jakarta() -> Iterator[None]:
    """This process's system zone is Asia/Jakarta (UTC+7) for the test."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Jakarta"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


@pytest.mark.usefixtures("jakarta")
def test_times_are_shown_in_the_system_zone() -> None:
    china = timezone(timedelta(hours=8))
    assert local_time(datetime(2025, 1, 31, 14, 5, 59, tzinfo=china)) == "2025-01-31 13:05+07:00"
    assert local_time(datetime(2025, 1, 31, 6, 5, tzinfo=UTC)) == "2025-01-31 13:05+07:00"
    assert local_time(datetime(2025, 1, 31, 14, 5)) == "2025-01-31 14:05"  # naive: as it is
