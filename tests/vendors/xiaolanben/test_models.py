"""Wire models: 003's limits, both spellings, custom fields, every problem at once."""

from __future__ import annotations

from typing import Any

import pytest

from tools.errors import InputError, Problem
from tools.vendors.xiaolanben.models import (
    MAX_CUSTOM_FIELDS,
    ImportFlags,
    ImportResult,
    Staff,
    XiaolanbenCustomer,
    validate_customer,
    validate_customers,
)


def contact(**fields: Any) -> dict[str, Any]:
    return {"thirdDataId": "u1", **fields}


def problems_of(records: list[Any]) -> list[Problem]:
    with pytest.raises(InputError) as caught:
        validate_customers(records)
    return caught.value.problems


def test_vendor_names_and_snake_case_give_the_same_wire_body() -> None:
    vendor = XiaolanbenCustomer.model_validate(
        {
            "customerName": "蓝本科技",
            "entName": "上海蓝本网络科技有限公司",
            "staffId": 10001,
            "tagIds": ["t1"],
            "contacts": [{"thirdDataId": "u1", "name": "王芳", "phone": "13909876543"}],
        }
    )
    snake = XiaolanbenCustomer.model_validate(
        {
            "customer_name": "蓝本科技",
            "ent_name": "上海蓝本网络科技有限公司",
            "staff_id": 10001,
            "tag_ids": ["t1"],
            "contacts": [{"third_data_id": "u1", "name": "王芳", "phone": "13909876543"}],
        }
    )
    assert vendor.wire() == snake.wire()
    assert vendor.wire() == {
        "customerName": "蓝本科技",
        "entName": "上海蓝本网络科技有限公司",
        "staffId": 10001,
        "tagIds": ["t1"],
        "contacts": [{"thirdDataId": "u1", "name": "王芳", "phone": "13909876543"}],
    }


def test_custom_fields_are_flat_keys_on_customer_and_contact() -> None:
    customer = XiaolanbenCustomer.model_validate(
        {
            "customerName": "蓝本科技",
            "customizeField.text_13": "测试13",
            "customizeField.bool_5": True,
            "contacts": [contact(**{"customizeField.text_2": "测试2"})],
        }
    )
    wire = customer.wire()
    assert wire["customizeField.text_13"] == "测试13"
    assert wire["customizeField.bool_5"] is True
    assert wire["contacts"][0]["customizeField.text_2"] == "测试2"
    assert customer.custom_fields == {
        "customizeField.text_13": "测试13",
        "customizeField.bool_5": True,
    }


def test_every_problem_of_every_record_is_listed_with_its_path() -> None:
    problems = problems_of(
        [
            {"customerName": "ok"},
            {
                "customerName": "",
                "contacts": [contact(), contact(thirdDataId="u2", email="x" * 101)],
            },
            {"entName": "e" * 201, "contacts": [{"name": "无ID", "gender": "M"}]},
        ]
    )
    found = {(p.index, p.field) for p in problems}
    assert found == {
        (1, "customerName"),
        (1, "contacts[1].email"),
        (2, "customerName"),
        (2, "entName"),
        (2, "contacts[0].thirdDataId"),
        (2, "contacts[0].gender"),
    }
    email = next(p for p in problems if p.field == "contacts[1].email")
    assert "at most 100" in email.message
    assert "got 101" in email.message


def test_limits_count_java_string_length() -> None:
    # 15 emoji are 30 UTF-16 units (fine); 16 are 32 (too long) though only 16 code points.
    validate_customer({"customerName": "c", "contacts": [contact(name="😀" * 15)]})
    problems = problems_of([{"customerName": "c", "contacts": [contact(name="😀" * 16)]}])
    assert [(p.field, "got 32" in p.message) for p in problems] == [("contacts[0].name", True)]


@pytest.mark.parametrize(
    ("field", "limit"),
    [("name", 30), ("position", 30), ("dept", 30), ("tel", 30), ("wechat", 30),
     ("qq", 30), ("email", 100), ("addr", 200), ("logo", 400)],
)  # fmt: skip
def test_contact_length_limits(field: str, limit: int) -> None:
    validate_customer({"customerName": "c", "contacts": [contact(**{field: "a" * limit})]})
    problems = problems_of(
        [{"customerName": "c", "contacts": [contact(**{field: "a" * (limit + 1)})]}]
    )
    assert [p.field for p in problems] == [f"contacts[0].{field}"]


def test_contact_phone_must_be_a_phone_number() -> None:
    # 003 matches contacts by phone: a garbled one would make a second contact.
    for phone in ("13912345678", "+86 139-1234-5678", "021 6288 1234"):
        validate_customer({"customerName": "c", "contacts": [contact(phone=phone)]})
    for phone in ("a" * 30, "1", "1" * 31, "139 1234 567x"):
        problems = problems_of([{"customerName": "c", "contacts": [contact(phone=phone)]}])
        assert [p.field for p in problems] == ["contacts[0].phone"]


def test_customer_name_limits() -> None:
    validate_customer({"customerName": "名" * 200})
    assert [p.field for p in problems_of([{"customerName": "名" * 201}])] == ["customerName"]
    assert [p.field for p in problems_of([{"customerName": "   "}])] == ["customerName"]
    assert [p.field for p in problems_of([{}])] == ["customerName"]


def test_unknown_keys_are_refused_but_custom_fields_pass() -> None:
    problems = problems_of(
        [
            {
                "customerName": "c",
                "customerNmae": "typo",
                "customizeField.": "no id",
                "contacts": [contact(mobile="139")],
            }
        ]
    )
    assert sorted(p.field for p in problems) == [
        "contacts[0].mobile",
        "customerNmae",
        "customizeField.",
    ]
    assert all("unknown field" in p.message for p in problems)


def test_gender_and_birthday() -> None:
    ok = validate_customer(
        {"customerName": "c", "contacts": [contact(gender="女", birthday="1990-05-17")]}
    )
    assert ok.contacts[0].gender == "女"
    empty = validate_customer({"customerName": "c", "contacts": [contact(gender="", birthday="")]})
    assert empty.wire()["contacts"][0] == {"thirdDataId": "u1"}
    problems = problems_of(
        [{"customerName": "c", "contacts": [contact(gender="male", birthday="1990/05/17")]}]
    )
    assert {p.field for p in problems} == {"contacts[0].gender", "contacts[0].birthday"}
    impossible = problems_of([{"customerName": "c", "contacts": [contact(birthday="2023-02-30")]}])
    assert [p.field for p in impossible] == ["contacts[0].birthday"]


def test_at_most_ten_contacts_and_distinct_third_data_ids() -> None:
    eleven = [contact(thirdDataId=f"u{n}") for n in range(11)]
    problems = problems_of([{"customerName": "c", "contacts": eleven}])
    assert [p.field for p in problems] == ["contacts"]
    assert "at most 10" in problems[0].message
    twice = problems_of([{"customerName": "c", "contacts": [contact(), contact()]}])
    assert [p.field for p in twice] == ["contacts[1].thirdDataId"]


def test_two_records_for_one_customer_in_a_batch_are_a_problem() -> None:
    problems = problems_of(
        [
            {"customerName": "甲", "entName": "甲公司"},
            {"customerName": "甲2", "entName": "甲公司"},
            {"customerName": "乙"},
            {"customerName": "乙"},
            {"customerName": "丙", "entName": "丙一"},
            {"customerName": "丙", "entName": "丙二"},
        ]
    )
    assert [(p.index, p.field) for p in problems] == [
        (1, "entName"),
        (3, "customerName"),
        (5, "customerName"),
    ]
    assert "record 0" in problems[0].message
    # Outside one batch call, the same customer twice is allowed (the second updates).
    assert len(validate_customers([{"customerName": "乙"}] * 2, distinct=False)) == 2


def test_numbers_are_accepted_for_phone_and_qq() -> None:
    customer = validate_customer({"customerName": "c", "contacts": [contact(phone=13909876543)]})
    assert customer.contacts[0].phone == "13909876543"


def test_non_mapping_record_is_a_problem() -> None:
    problems = problems_of([{"customerName": "c"}, "not a customer"])
    assert [(p.index, p.field) for p in problems] == [(1, "")]


def test_import_flags_render_true_false_and_omit_unset() -> None:
    assert ImportFlags().as_params() == {}
    flags = ImportFlags.model_validate({"ownerConflictUpdate": True, "auto_unlock": False})
    assert flags.as_params() == {"ownerConflictUpdate": "true", "autoUnlock": "false"}
    with pytest.raises(ValueError, match="duplicateControl"):
        ImportFlags.model_validate({"duplicateControl": "NEVER"})


def test_answers_parse_vendor_names_and_nulls() -> None:
    staff = Staff.model_validate(
        {"staffId": 1, "realName": "王芳", "mobile": "139", "department": "销售部", "extra": 1}
    )
    assert (staff.staff_id, staff.real_name, staff.role) == (1, "王芳", None)
    failed = ImportResult.model_validate(
        {"success": False, "customerId": None, "contactIdMap": None, "failedReason": "x"}
    )
    assert failed.contact_id_map == {}


@pytest.mark.parametrize(
    ("phone", "ascii_form"),
    [
        ("１３７１２３４５６７８", "13712345678"),
        ("＋８６ １３７１２３４５６７８", "+86 13712345678"),
    ],
)
def test_a_full_width_phone_is_refused_with_its_ascii_spelling(phone: str, ascii_form: str) -> None:
    [problem] = problems_of([{"customerName": "蓝本科技", "contacts": [contact(phone=phone)]}])
    assert problem.field == "contacts[0].phone"
    assert f"{ascii_form!r}" in problem.message
    assert "0-9" in problem.message


def test_a_phone_in_other_non_ascii_digits_is_refused() -> None:
    arabic_indic = "١٣٧١٢٣٤٥٦٧٨"
    [problem] = problems_of(
        [{"customerName": "蓝本科技", "contacts": [contact(phone=arabic_indic)]}]
    )
    assert problem.field == "contacts[0].phone"
    assert "non-ASCII" in problem.message


def test_more_custom_fields_than_the_limit_are_one_problem() -> None:
    fields = {f"customizeField.text_{n}": "v" for n in range(MAX_CUSTOM_FIELDS + 1)}
    [problem] = problems_of([{"customerName": "蓝本科技", **fields}])
    assert f"{MAX_CUSTOM_FIELDS + 1} custom fields; at most {MAX_CUSTOM_FIELDS}" in problem.message
    limit = {f"customizeField.text_{n}": "v" for n in range(MAX_CUSTOM_FIELDS)}
    assert validate_customer({"customerName": "蓝本科技", **limit}).custom_fields == limit
