"""Bangwo8 wire models: what we send, what we accept from the vendor, filter rendering."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from pydantic import SecretStr, ValidationError

from tools.errors import InputError
from tools.vendors.bangwo8.auth import basic_header
from tools.vendors.bangwo8.models import (
    CHINA_TIME,
    SUBJECT_MAX,
    Ticket,
    TicketCreate,
    TicketFilters,
    validate_ticket,
)


def test_the_wire_body_matches_the_documented_sample() -> None:
    ticket = TicketCreate(subject="产品咨询", message="你好,我想咨询下帮我吧产品")
    assert ticket.wire() == {
        "ticket": {"subject": "产品咨询", "ticketReply": {"replyMsg": "你好,我想咨询下帮我吧产品"}}
    }


def test_vendor_names_and_snake_case_both_work() -> None:
    vendor = validate_ticket(
        {
            "subject": "账号无法登录",
            "ticketReply": {"replyMsg": "提示密码错误"},
            "descript": "VIP 客户",
            "ticketStatus": 1,
            "priorityLevel": "3",
            "custUserId": 880103,
            "servicerUserId": "30001",
            "ccUserIdList": [30002, 30003],
            "ticketType": 2,
            "custom_fields": [{"key": "pm", "value": "张伟"}],
        }
    )
    snake = TicketCreate(
        subject="账号无法登录",
        message="提示密码错误",
        description="VIP 客户",
        ticket_status=1,
        priority_level="3",
        cust_user_id=880103,
        servicer_user_id="30001",
        cc_user_id_list=[30002, 30003],
        ticket_type=2,
        custom_fields=[{"key": "pm", "value": "张伟"}],
    )
    assert vendor == snake
    assert vendor.wire()["ticket"] == {
        "subject": "账号无法登录",
        "ticketReply": {"replyMsg": "提示密码错误"},
        "descript": "VIP 客户",
        "ticketStatus": 1,
        "priorityLevel": "3",
        "custUserId": 880103,
        "servicerUserId": "30001",
        "ccUserIdList": [30002, 30003],
        "ticketType": 2,
        "custom_fields": [{"key": "pm", "value": "张伟"}],
    }


def test_every_problem_is_reported_with_its_field() -> None:
    with pytest.raises(InputError) as caught:
        validate_ticket(
            {
                "subject": "x" * (SUBJECT_MAX + 1),
                "message": "",
                "ticketStatus": 1.5,
                "priorityLevel": True,
                "custom_fields": [{"key": " ", "value": 1}],
                "assignee": "王芳",
            }
        )
    fields = {problem.field.split(".")[0] for problem in caught.value.problems}
    assert fields == {
        "subject",
        "message",
        "ticketStatus",
        "priorityLevel",
        "custom_fields",
        "assignee",
    }
    assert "shorten it to 255" in str(caught.value)


@pytest.mark.parametrize("status", [1.0, [1], {"id": 1}, "", -1])
def test_nonsense_status_values_are_refused(status: object) -> None:
    with pytest.raises(InputError, match="ticketStatus"):
        validate_ticket({"subject": "s", "message": "m", "ticketStatus": status})


def test_vendor_ticket_answers_are_read_leniently() -> None:
    ticket = Ticket.model_validate(
        {
            "ticketId": "2751235",
            "subject": "呼叫中心来电无声音",
            "ticketStatus": 3,
            "priorityLevel": 4,
            "ticketTemplateId": 17,
            "custom_fields": None,
            "created_at": "2024-04-20 09:30:00",
            "updatedAt": "2024-04-21T10:00:00Z",
        }
    )
    assert ticket.id == 2751235
    assert ticket.status == 3
    assert ticket.priority == 4
    assert ticket.model_extra == {"ticketTemplateId": 17}
    assert ticket.created_at == datetime(2024, 4, 20, 9, 30, tzinfo=CHINA_TIME)
    assert ticket.updated_at == datetime(2024, 4, 21, 10, 0, tzinfo=UTC)


def test_filters_render_as_china_time_and_dates_cover_whole_days() -> None:
    filters = TicketFilters(
        created_start=date(2024, 4, 1),
        created_end=date(2024, 4, 30),
        updated_start=datetime(2024, 4, 1, 1, 2, 3, tzinfo=UTC),
        updated_end=datetime(2024, 4, 2, 8, 0, 0),
        updated_order="desc",
    )
    assert filters.params() == {
        "created_start": "2024-04-01 00:00:00",
        "created_end": "2024-04-30 23:59:59",
        "updated_start": "2024-04-01 09:02:03",
        "updated_end": "2024-04-02 08:00:00",
        "updated_order": "desc",
    }


def test_a_range_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(ValidationError, match="swap them"):
        TicketFilters(created_start=date(2024, 5, 2), created_end=date(2024, 5, 1))


def test_basic_header_is_base64_of_utf8() -> None:
    header = basic_header("客服", SecretStr("密码"))
    assert header.get_secret_value() == "Basic 5a6i5pyNOuWvhueggQ=="


def test_a_year_below_1000_is_written_in_four_digits() -> None:
    filters = TicketFilters(created_start=date(1, 1, 1), created_end=datetime(999, 12, 31, 8, 5))
    assert filters.params() == {
        "created_start": "0001-01-01 00:00:00",
        "created_end": "0999-12-31 08:05:00",
    }


@pytest.mark.parametrize(
    "moment",
    [
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),  # year 0 in China time
        datetime(9999, 12, 31, 23, tzinfo=UTC),  # year 10000 in China time
    ],
)
def test_a_time_china_time_cannot_hold_is_refused_clearly(moment: datetime) -> None:
    with pytest.raises(ValidationError, match="outside years 1-9999 in China time"):
        TicketFilters(created_start=moment)
