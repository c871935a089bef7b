"""The error catalog: its data against the vendor documents, and its search."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from tools.catalog import VENDORS, Catalog, CatalogEntry, load_catalog
from tools.errors import ERROR_KINDS
from tools.settings import (
    Bangwo8Settings,
    CrmopsSettings,
    SocialEpochSettings,
    XiaolanbenSettings,
)

SOCIALEPOCH_TABLE = [str(code) for code in range(501, 539) if code != 535]
EXPECTED_KEYS = {
    "socialepoch": {*SOCIALEPOCH_TABLE, "-1", "429"},
    "xiaolanben": {"400", "401", "403", "429", "500"},
    "bangwo8": {
        *("400", "401", "403", "404", "429", "500", "100047"),
        *("invalid_client", "invalid_grant", "invalid_request", "unsupported_grant_type"),
    },
}
# Copied by hand from vendor-docs/001 (English) and 002 (Chinese); the tests must not need
# the documents, which live outside the repository.
DOC_001_MESSAGES = {
    "501": "appSecret error",
    "502": "timestamp timeout",
    "512": "send type == 1 and startTime is not null",
    "517": "database error",
    "522": "accessToken is error",
    "529": "Non-professional Edition",
    "532": "customer whats id is null",
    "537": "groupLink is not exist. Please reload it !",
    "538": "parsing group link. Please try again later",
}
DOC_001_DESCRIPTIONS = {
    "501": "appSecret does not exist",
    "502": "Request timestamp timeout",
    "531": "userName does not exist in data",
    "532": "friendWhatsId (customer WhatsApp ID) does not exist",
    "537": "groupLink not found. Please re-import it!",
}
DOC_002_DESCRIPTIONS = {
    "501": "不存在 appSecret",
    "502": "请求时间戳超时",
    "506": "添加任务 data 信息为空",
    "531": "data 中 userName 不存在",
    "538": "groupLink 解析中,请稍后再试",
}
DOC_003_MESSAGES = {"401": "请求未经过认证", "403": "请求不允许重复执行"}
SETTING_NAME = re.compile(r"\b(?:SOCIALEPOCH|XIAOLANBEN|BANGWO8|CRMOPS)_[A-Z_]+[A-Z]\b")


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def _codes(entries: list[CatalogEntry]) -> list[tuple[str, str]]:
    return [(entry.vendor, entry.code) for entry in entries]


def _setting_names() -> set[str]:
    names = set()
    for settings in (SocialEpochSettings, XiaolanbenSettings, Bangwo8Settings, CrmopsSettings):
        prefix = str(settings.model_config.get("env_prefix", ""))
        names |= {f"{prefix}{field}".upper() for field in settings.model_fields}
    return names


# --- the data ---------------------------------------------------------------------------


def test_every_vendor_has_exactly_the_agreed_codes(catalog: Catalog) -> None:
    for vendor in VENDORS:
        codes = {entry.code for entry in catalog.entries if entry.vendor == vendor}
        assert codes == EXPECTED_KEYS[vendor], vendor


@pytest.mark.parametrize("code", SOCIALEPOCH_TABLE)
def test_socialepoch_table_code_is_complete(catalog: Catalog, code: str) -> None:
    entry = catalog.get("socialepoch", code)
    assert entry is not None
    assert entry.message.strip()
    assert entry.meaning_en.strip()
    assert entry.meaning_zh.strip()
    assert entry.action.strip()
    assert entry.http_status == 200  # README: business errors come in the envelope
    assert entry.source.startswith("vendor-docs/001")


def test_there_is_no_socialepoch_535(catalog: Catalog) -> None:
    assert catalog.get("socialepoch", "535") is None


def test_no_vendor_code_appears_twice(catalog: Catalog) -> None:
    twice = [key for key, n in Counter(_codes(list(catalog.entries))).items() if n > 1]
    assert twice == []


def test_every_kind_is_an_error_kind(catalog: Catalog) -> None:
    assert {entry.kind for entry in catalog.entries} <= set(ERROR_KINDS)


def test_every_entry_says_where_it_comes_from_and_what_to_do(catalog: Catalog) -> None:
    for entry in catalog.entries:
        assert entry.source.startswith(("vendor-docs/", "crmops assumption")), entry.code
        assert len(entry.action) > 40, (entry.vendor, entry.code)
        assert entry.meaning_zh.strip(), (entry.vendor, entry.code)


@pytest.mark.parametrize(("code", "message"), DOC_001_MESSAGES.items())
def test_socialepoch_messages_are_the_vendors_own(
    catalog: Catalog, code: str, message: str
) -> None:
    entry = catalog.get("socialepoch", code)
    assert entry is not None
    assert entry.message == message


@pytest.mark.parametrize(("code", "meaning"), DOC_001_DESCRIPTIONS.items())
def test_socialepoch_english_meanings_are_001s(catalog: Catalog, code: str, meaning: str) -> None:
    entry = catalog.get("socialepoch", code)
    assert entry is not None
    assert entry.meaning_en == meaning


@pytest.mark.parametrize(("code", "meaning"), DOC_002_DESCRIPTIONS.items())
def test_socialepoch_chinese_meanings_are_002s(catalog: Catalog, code: str, meaning: str) -> None:
    entry = catalog.get("socialepoch", code)
    assert entry is not None
    assert entry.meaning_zh == meaning


@pytest.mark.parametrize(("code", "message"), DOC_003_MESSAGES.items())
def test_xiaolanben_messages_are_003s(catalog: Catalog, code: str, message: str) -> None:
    entry = catalog.get("xiaolanben", code)
    assert entry is not None
    assert entry.message == message
    assert entry.http_status == int(code)


def test_rate_limit_entries_are_marked_as_crmops_assumptions(catalog: Catalog) -> None:
    for vendor in VENDORS:
        entry = catalog.get(vendor, "429")
        assert entry is not None
        assert entry.kind == "rate_limited"
        assert entry.http_status == 429
        assert entry.source.startswith("crmops assumption")


@pytest.mark.parametrize(
    ("vendor", "code", "kind"),
    [
        ("socialepoch", "501", "auth"),
        ("socialepoch", "522", "auth"),
        ("socialepoch", "502", "rejected"),
        ("socialepoch", "525", "rejected"),
        ("socialepoch", "533", "invalid"),
        ("socialepoch", "517", "server"),
        ("xiaolanben", "401", "auth"),
        ("xiaolanben", "403", "rejected"),
        ("xiaolanben", "500", "server"),
        ("bangwo8", "404", "not_found"),
        ("bangwo8", "100047", "not_found"),
        ("bangwo8", "invalid_client", "auth"),
    ],
)
def test_kinds_pick_the_right_error_class(
    catalog: Catalog, vendor: str, code: str, kind: str
) -> None:
    entry = catalog.get(vendor, code)
    assert entry is not None
    assert entry.kind == kind


@pytest.mark.parametrize(
    ("vendor", "code", "setting"),
    [
        ("socialepoch", "501", "SOCIALEPOCH_API_KEY"),
        ("socialepoch", "502", "SOCIALEPOCH_TIMEZONE"),
        ("socialepoch", "523", "SOCIALEPOCH_TENANT_ID"),
        ("socialepoch", "530", "SOCIALEPOCH_USER_NAME"),
        ("socialepoch", "531", "SOCIALEPOCH_AGENT_ACCOUNT"),
        ("xiaolanben", "401", "XIAOLANBEN_SIGN_KEY"),
        ("xiaolanben", "401", "XIAOLANBEN_COMPANY_ID"),
        ("bangwo8", "invalid_client", "BANGWO8_CLIENT_SECRET"),
        ("bangwo8", "401", "BANGWO8_PASSWORD"),
    ],
)
def test_actions_name_the_setting_to_change(
    catalog: Catalog, vendor: str, code: str, setting: str
) -> None:
    entry = catalog.get(vendor, code)
    assert entry is not None
    assert setting in entry.action


def test_every_setting_an_action_names_exists(catalog: Catalog) -> None:
    known = _setting_names()
    named = {name for entry in catalog.entries for name in SETTING_NAME.findall(entry.action)}
    assert named, "the actions name no settings at all"
    assert named - known == set()


def test_task_codes_say_crmops_does_not_call_them(catalog: Catalog) -> None:
    for code in ("503", "512", "521", "536"):
        entry = catalog.get("socialepoch", code)
        assert entry is not None
        assert "crmops does not call" in entry.action


# --- search -----------------------------------------------------------------------------


def test_search_finds_a_message_in_any_word_order(catalog: Catalog) -> None:
    assert _codes(catalog.search("timestamp timeout"))[0] == ("socialepoch", "502")
    assert _codes(catalog.search("TIMEOUT timestamp"))[0] == ("socialepoch", "502")


def test_search_accepts_partial_and_misspelt_words(catalog: Catalog) -> None:
    assert ("socialepoch", "502") in _codes(catalog.search("timest"))
    assert _codes(catalog.search("timstamp timout"))[0] == ("socialepoch", "502")
    assert _codes(catalog.search("datbase"))[0] == ("socialepoch", "517")


def test_search_splits_camel_case(catalog: Catalog) -> None:
    assert _codes(catalog.search("access token"))[0] == ("socialepoch", "522")
    assert _codes(catalog.search("accesstoken"))[0] == ("socialepoch", "522")


def test_search_does_not_match_inside_words(catalog: Catalog) -> None:
    # `rate` is inside `createTime` (526); only whole words or their beginnings count.
    assert ("socialepoch", "526") not in _codes(catalog.search("rate", limit=50))


def test_search_finds_chinese(catalog: Catalog) -> None:
    assert ("xiaolanben", "403") in _codes(catalog.search("重复"))[:2]
    assert _codes(catalog.search("请求不允许重复执行")) == [("xiaolanben", "403")]
    assert _codes(catalog.search("时间戳超时"))[0] == ("socialepoch", "502")


def test_search_finds_a_pasted_answer_body(catalog: Catalog) -> None:
    body = '{"code":502,"message":"timestamp timeout","data":""}'
    assert _codes(catalog.search(body)) == [("socialepoch", "502")]


def test_search_returns_several_when_several_fit(catalog: Catalog) -> None:
    found = _codes(catalog.search("token"))
    assert len(found) >= 3
    assert {("socialepoch", "522"), ("socialepoch", "525")} <= set(found)


def test_search_narrows_to_a_vendor_and_respects_the_limit(catalog: Catalog) -> None:
    assert {entry.vendor for entry in catalog.search("token", vendor="bangwo8")} == {"bangwo8"}
    assert len(catalog.search("group", limit=2)) == 2


def test_search_without_a_match_is_empty(catalog: Catalog) -> None:
    assert catalog.search("xyzzy plugh") == []
    assert catalog.search("  !!  ") == []


def test_search_ranks_the_vendors_message_above_advice() -> None:
    def entry(code: str, message: str, action: str) -> CatalogEntry:
        return CatalogEntry(
            vendor="bangwo8",
            code=code,
            http_status=400,
            message=message,
            meaning_zh="含义",
            meaning_en="meaning",
            action=action,
            kind="invalid",
            source="test",
        )

    small = Catalog(
        [entry("1", "nothing here", "mentions quota once"), entry("2", "quota exceeded", "wait")]
    )
    assert _codes(small.search("quota")) == [("bangwo8", "2"), ("bangwo8", "1")]


# --- close matches ----------------------------------------------------------------------


def test_close_matches_of_a_missing_number_are_its_neighbours(catalog: Catalog) -> None:
    found = _codes(catalog.close_matches("535", vendor="socialepoch"))
    assert found[:2] == [("socialepoch", "534"), ("socialepoch", "536")]
    assert all(vendor == "socialepoch" for vendor, _ in found)


def test_close_matches_cover_every_vendor_when_none_is_given(catalog: Catalog) -> None:
    found = _codes(catalog.close_matches("599"))
    assert found[0] == ("socialepoch", "538")
    assert {("xiaolanben", "500"), ("bangwo8", "500")} <= set(found)


def test_close_matches_ignore_far_away_numbers(catalog: Catalog) -> None:
    assert ("bangwo8", "100047") not in _codes(catalog.close_matches("535"))
    assert _codes(catalog.close_matches("100048"))[0] == ("bangwo8", "100047")


def test_close_matches_of_a_misspelt_name(catalog: Catalog) -> None:
    assert _codes(catalog.close_matches("invalid_clent"))[0] == ("bangwo8", "invalid_client")
    assert _codes(catalog.close_matches("unsupported_grant"))[0] == (
        "bangwo8",
        "unsupported_grant_type",
    )


def test_close_matches_never_return_the_code_itself_and_respect_the_limit(
    catalog: Catalog,
) -> None:
    found = catalog.close_matches("502", limit=3)
    assert len(found) == 3
    assert "502" not in [entry.code for entry in found]


def test_close_matches_of_nothing_alike_are_empty(catalog: Catalog) -> None:
    assert catalog.close_matches("zzz") == []
