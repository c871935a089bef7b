"""Customer records: normalisation, doc limits, and every problem reported at once."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from tools.errors import InputError, Problem
from tools.vendors.socialepoch.models import (
    MAX_EXTENDED_FIELDS,
    CustomerRecord,
    SocialEpochCustomer,
    normalize_whatsapp,
    validate_customers,
)


@pytest.mark.parametrize(
    "raw",
    ["+86 182-2173-3141", "8618221733141", "+86 (182) 2173 3141", " 86.182.2173.3141 "],
)
def test_numbers_are_normalised_to_digits_with_country_code(raw: str) -> None:
    assert normalize_whatsapp(raw) == "8618221733141"


@pytest.mark.parametrize(
    "raw",
    [
        "18221733141",  # no country code: +182... is no valid number
        "86182217331411",  # one digit too many (the doc's own example)
        "8618221733141x",
        "８６１８２２１７３３１４１",  # full-width digits
        "1234567890123456",  # longer than E.164
        "",
    ],
)
def test_invalid_numbers_are_refused(raw: str) -> None:
    with pytest.raises(ValueError, match=r"8618221733141|digits"):
        normalize_whatsapp(raw)


def test_the_documented_sample_record_serialises_by_alias() -> None:
    customer = SocialEpochCustomer.model_validate(
        {
            "whatsApp": "15266667779",
            "friendName": "lee",
            "sex": "male",
            "birthday": "2020/03/08",
            "income": "100$",
            "desc": "",
            "tabName": "GoodMan",
            "languageTag": "Auto",
        }
    )
    assert customer.wire() == {
        "whatsApp": "15266667779",
        "friendName": "lee",
        "sex": "male",
        "birthday": "2020/03/08",
        "income": "100$",
        "desc": "",
        "tabName": "GoodMan",
        "languageTag": "Auto",
    }


def test_snake_case_names_tag_lists_dates_and_extended_fields() -> None:
    customer = SocialEpochCustomer(
        whatsapp="+86 138 0013 8000",
        friend_name="王芳",
        sex="Female",  # lower-cased
        birthday=date(1988, 5, 12),  # written yyyy/MM/dd
        tab_name=["VIP", " 复购 "],  # joined with commas
        company="上海云启",  # extended fields: any other key
        customerLevel=3,
    )
    assert customer.wire() == {
        "whatsApp": "8613800138000",
        "friendName": "王芳",
        "sex": "female",
        "birthday": "1988/05/12",
        "tabName": "VIP,复购",
        "company": "上海云启",
        "customerLevel": 3,
    }
    assert customer.extended_fields == {"company": "上海云启", "customerLevel": 3}


def test_iso_birthday_is_accepted_and_written_the_vendor_way() -> None:
    customer = SocialEpochCustomer.model_validate(
        {"whatsApp": "8613800138000", "birthday": "1990-01-31"}
    )
    assert customer.birthday == "1990/01/31"


def test_every_problem_is_listed_with_its_record_and_vendor_field() -> None:
    rows: list[dict[str, Any]] = [
        {"whatsApp": "8613800138000", "friendName": "ok"},
        {"whatsApp": "12345", "birthday": "2023/02/30", "sex": "other", "tags": {"a": 1}},
        {"friendName": "no number", "email": "not-an-email"},
        {"whatsApp": "+86 138-0013-8000", "tabName": ["a,b"]},
        {"whatsApp": "8613912345678", "score": float("nan"), "friendName": "x" * 101},
    ]
    with pytest.raises(InputError) as caught:
        validate_customers(rows)
    found = {(p.index, p.field) for p in caught.value.problems}
    assert found == {
        (1, "whatsApp"),
        (1, "birthday"),
        (1, "sex"),
        (1, "tags"),
        (2, "whatsApp"),
        (2, "email"),
        (3, "tabName"),
        (4, "score"),
        (4, "friendName"),
    }
    text = str(caught.value)
    assert "record 1: birthday: '2023/02/30' is not a real date: write yyyy/MM/dd" in text
    assert "record 1: tags: an extended field value must be text" in text


def test_the_same_number_twice_is_a_problem_naming_the_first() -> None:
    rows = [{"whatsApp": "8613800138000"}, {"whatsApp": "+86 138 0013 8000"}]
    with pytest.raises(InputError) as caught:
        validate_customers(rows)
    [problem] = caught.value.problems
    assert problem.index == 1
    assert problem.field == "whatsApp"
    assert "also record 0" in problem.message


def test_valid_rows_come_back_in_order() -> None:
    customers = validate_customers([{"whatsApp": "8613800138000"}, {"whatsApp": "14155552671"}])
    assert [c.whatsapp for c in customers] == ["8613800138000", "14155552671"]


def test_problem_renders_its_place() -> None:
    assert str(Problem("whatsApp", "bad", 2)) == "record 2: whatsApp: bad"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("birthday", 19880512, "as text yyyy/MM/dd"),
        ("birthday", "1988/13/01", "not a real date"),
        ("welcome", "你好" * 501, "1002 characters; at most 1000"),
        ("agentAccount", "a" * 101, "at most 100"),
    ],
)
def test_field_formats_and_limits(field: str, value: object, message: str) -> None:
    with pytest.raises(InputError) as caught:
        validate_customers([{"whatsApp": "8613800138000", field: value}])
    [problem] = caught.value.problems
    assert (problem.index, problem.field) == (0, field)
    assert message in problem.message


def test_a_blank_birthday_is_left_out() -> None:
    [customer] = validate_customers([{"whatsApp": "8613800138000", "birthday": " "}])
    assert customer.wire() == {"whatsApp": "8613800138000"}


def test_customer_record_is_lenient_about_vendor_data() -> None:
    record = CustomerRecord.model_validate(
        {
            "whatsApp": "8613800138000",
            "sex": "女",
            "birthday": "1988-05-12",
            "welcome": "x" * 5000,
            "createTime": "x",
        }
    )
    assert record.sex == "女"
    assert record.extended_fields == {"createTime": "x"}


def test_more_extended_fields_than_a_tenant_has_are_one_problem() -> None:
    row = {"whatsApp": "8618221733141", **{f"field{n}": "=1+1" for n in range(150)}}
    with pytest.raises(InputError) as caught:
        validate_customers([row])
    [problem] = caught.value.problems  # not 150 formula problems
    assert problem.field == "extendedFields"
    assert f"at most {MAX_EXTENDED_FIELDS}" in problem.message


def test_as_many_extended_fields_as_the_limit_are_sent() -> None:
    extended = {f"field{n}": n for n in range(MAX_EXTENDED_FIELDS)}
    [customer] = validate_customers([{"whatsApp": "8618221733141", **extended}])
    assert customer.extended_fields == extended
