"""`lookup_error_code` and its plain-text rendering."""

from __future__ import annotations

import pytest

from tools.errors import InputError
from tools.lookup import ErrorLookup, lookup_error_code, render_text


def _codes(result: ErrorLookup) -> list[tuple[str, str]]:
    return [(entry.vendor, entry.code) for entry in result.matches]


def _close(result: ErrorLookup) -> list[tuple[str, str]]:
    return [(entry.vendor, entry.code) for entry in result.close_matches]


async def test_a_code_finds_its_entry() -> None:
    result = await lookup_error_code(code="502")
    assert result.found
    assert result.matched_by == "code"
    assert _codes(result) == [("socialepoch", "502")]
    assert result.close_matches == []
    assert result.matches[0].meaning_zh == "请求时间戳超时"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (" 401 ", [("xiaolanben", "401"), ("bangwo8", "401")]),
        ("-1", [("socialepoch", "-1")]),
        ("invalid_client", [("bangwo8", "invalid_client")]),
        ("INVALID_CLIENT", [("bangwo8", "invalid_client")]),
        ("100047", [("bangwo8", "100047")]),
        ("errcode: 100047", [("bangwo8", "100047")]),
        ("HTTP 404", [("bangwo8", "404")]),
    ],
)
async def test_codes_in_the_forms_people_paste(code: str, expected: list[tuple[str, str]]) -> None:
    result = await lookup_error_code(code=code)
    assert result.found
    assert result.matched_by == "code"
    assert _codes(result) == expected
    assert result.query == code.strip()


async def test_a_colliding_code_lists_every_vendor_and_says_how_to_narrow() -> None:
    result = await lookup_error_code(code="401")
    assert [entry.vendor for entry in result.matches] == ["xiaolanben", "bangwo8"]
    assert "pass vendor" in result.note


async def test_vendor_narrows_a_colliding_code() -> None:
    result = await lookup_error_code(code="401", vendor="bangwo8")
    assert result.vendor == "bangwo8"
    assert _codes(result) == [("bangwo8", "401")]
    assert "BANGWO8_" in result.matches[0].action


async def test_a_vendor_typed_loosely_still_narrows() -> None:
    result = await lookup_error_code(code="403", vendor=" Xiaolanben ")  # type: ignore[arg-type]
    assert _codes(result) == [("xiaolanben", "403")]


async def test_an_assumed_code_says_it_is_not_the_vendors() -> None:
    result = await lookup_error_code(code="429", vendor="socialepoch")
    assert result.found
    assert "assumed by crmops" in result.note


async def test_english_text_finds_the_code() -> None:
    result = await lookup_error_code(code="timestamp timeout")
    assert result.found
    assert result.matched_by == "text"
    assert _codes(result)[0] == ("socialepoch", "502")


async def test_chinese_text_finds_the_code() -> None:
    result = await lookup_error_code(code="请求不允许重复执行")
    assert result.found
    assert _codes(result)[0] == ("xiaolanben", "403")


async def test_text_search_narrows_to_a_vendor() -> None:
    result = await lookup_error_code(code="token", vendor="socialepoch")
    assert result.found
    assert {entry.vendor for entry in result.matches} == {"socialepoch"}


async def test_an_unknown_code_is_an_answer_with_close_matches() -> None:
    result = await lookup_error_code(code="535")
    assert not result.found
    assert result.matches == []
    assert _close(result)[:2] == [("socialepoch", "534"), ("socialepoch", "536")]
    assert result.note.startswith("Code 535 is not documented by any vendor; close matches:")
    assert "socialepoch 534" in result.note


async def test_a_code_of_another_vendor_is_pointed_out() -> None:
    result = await lookup_error_code(code="404", vendor="xiaolanben")
    assert not result.found
    assert _close(result)[0] == ("bangwo8", "404")
    assert "(it is by bangwo8)" in result.note


async def test_unknown_text_is_an_answer_too() -> None:
    result = await lookup_error_code(code="xyzzy plugh")
    assert not result.found
    assert result.matched_by == "text"
    assert result.close_matches == []
    assert "No documented error" in result.note


@pytest.mark.parametrize("code", ["", "   ", "\n\t"])
async def test_a_blank_code_is_refused(code: str) -> None:
    with pytest.raises(InputError) as caught:
        await lookup_error_code(code=code)
    assert [problem.field for problem in caught.value.problems] == ["code"]
    assert "502" in str(caught.value)


async def test_an_overlong_code_is_refused() -> None:
    with pytest.raises(InputError) as caught:
        await lookup_error_code(code="x" * 1001)
    assert [problem.field for problem in caught.value.problems] == ["code"]


async def test_an_unknown_vendor_is_refused_with_every_problem() -> None:
    with pytest.raises(InputError) as caught:
        await lookup_error_code(code=" ", vendor="salesforce")  # type: ignore[arg-type]
    assert [problem.field for problem in caught.value.problems] == ["code", "vendor"]
    assert "socialepoch, xiaolanben, bangwo8" in str(caught.value)


async def test_render_text_of_a_match_shows_meaning_and_action() -> None:
    result = await lookup_error_code(code="502")
    text = render_text(result)
    lines = text.splitlines()
    assert lines[0] == result.note
    assert "socialepoch 502 (HTTP 200, rejected): timestamp timeout" in lines
    assert "  Meaning: Request timestamp timeout / 请求时间戳超时" in lines
    assert "SOCIALEPOCH_TIMEZONE" in text
    assert "Close matches" not in text


async def test_render_text_of_a_miss_lists_the_close_matches() -> None:
    text = render_text(await lookup_error_code(code="535", vendor="socialepoch"))
    assert "Close matches:" in text
    assert "  socialepoch 534: whatsid list null (whatsid list is empty)" in text.splitlines()


async def test_the_result_schema_explains_every_field() -> None:
    schema = ErrorLookup.model_json_schema()
    undocumented = [
        name for name, field in schema["properties"].items() if not field.get("description")
    ]
    assert undocumented == []
    entry = schema["$defs"]["CatalogEntry"]["properties"]
    assert entry["meaning_en"]["description"]


async def test_the_result_round_trips_as_json() -> None:
    result = await lookup_error_code(code="401")
    assert ErrorLookup.model_validate_json(result.model_dump_json()) == result
