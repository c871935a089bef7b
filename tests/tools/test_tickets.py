"""`create_ticket` and `list_tickets` against the Bangwo8 simulator."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from tests.sandbox_fixtures import SECRETS, Sandbox
from tools.errors import ConfigurationError, InputError, VendorError
from tools.services import Services
from tools.settings import Bangwo8Settings
from tools.storage.audit import Actor
from tools.tickets import code_value, create_ticket, list_tickets, ticket_to_create


async def test_create_sends_every_field_and_returns_the_ticket(
    services: Services, sandbox: Sandbox
) -> None:
    created = await create_ticket(
        services,
        subject="无法登录",
        message="客户说登录页报错 502",
        description="VIP 客户",
        status=3,
        priority=2,
        customer_user_id=501,
        servicer_user_id=9,
        cc_user_ids=[10, 11],
        custom_fields={"渠道": "微信"},
    )
    stored = sandbox.bangwo8.tickets[created.ticket.id]
    assert stored["subject"] == "无法登录"
    assert (stored["ticketStatus"], stored["priorityLevel"]) == (3, 2)
    assert stored["ccUserIdList"] == [10, 11]
    assert stored["custom_fields"] == [{"key": "渠道", "value": "微信"}]
    assert sandbox.bangwo8.create_request_ids == [created.request_id]


async def test_the_same_request_id_does_not_create_twice(
    services: Services, sandbox: Sandbox
) -> None:
    first = await create_ticket(services, subject="退款", message="请退款", request_id="r-1")
    again = await create_ticket(services, subject="退款", message="请退款", request_id="r-1")
    assert again.ticket.id == first.ticket.id
    assert len(sandbox.bangwo8.tickets) == 1


async def test_a_blank_subject_is_refused_before_sending(
    services: Services, sandbox: Sandbox
) -> None:
    with pytest.raises(InputError) as raised:
        await create_ticket(services, subject="  ", message="")
    assert {p.field for p in raised.value.problems} == {"subject", "message"}
    assert sandbox.bangwo8.counters["requests"] == 0


async def test_list_is_paged_and_bounded(services: Services) -> None:
    for number in range(7):
        await create_ticket(services, subject=f"工单 {number}", message="内容")
    first = await list_tickets(services, limit=3)
    assert (len(first.tickets), first.count, first.more_available) == (3, 7, True)
    last = await list_tickets(services, limit=3, page=3)
    assert (len(last.tickets), last.more_available) == (1, False)


async def test_filters_reach_the_vendor(services: Services, sandbox: Sandbox) -> None:
    sandbox.bangwo8.seed()
    everything = await list_tickets(services, limit=100)
    today = date.today()
    recent = await list_tickets(services, created_start=today - timedelta(days=1), limit=100)
    assert 0 < recent.count < everything.count


async def test_a_reversed_range_is_an_input_error(services: Services, sandbox: Sandbox) -> None:
    with pytest.raises(InputError, match="created_start is after created_end"):
        await list_tickets(services, created_start=date(2025, 2, 1), created_end=date(2025, 1, 1))
    assert sandbox.bangwo8.counters["requests"] == 0


# --- the audit log ----------------------------------------------------------------------------


async def test_a_create_with_an_actor_is_audited_with_what_was_sent(
    services: Services, sandbox: Sandbox
) -> None:
    actor = Actor("cli", "alice")
    created = await create_ticket(
        services, subject="无法登录", message="报错 502", priority=2, actor=actor
    )
    [entry] = await services.store.audit.recent()
    assert (entry.actor, entry.vendor, entry.operation) == (actor, "bangwo8", "create_ticket")
    assert (entry.outcome, entry.target) == ("ok", f"ticket {created.ticket.id}")
    assert entry.sent["subject"] == "无法登录"
    assert entry.sent["priorityLevel"] == 2
    assert entry.sent["request_id"] == created.request_id
    stored = json.dumps(entry.sent, ensure_ascii=False)
    assert not any(secret in stored for secret in SECRETS)


async def test_a_failed_create_is_audited_as_failed(services: Services, sandbox: Sandbox) -> None:
    sandbox.bangwo8.faults.fail_next = 100
    with pytest.raises(VendorError):
        await create_ticket(services, subject="s", message="m", actor=Actor("mcp", "cursor"))
    [entry] = await services.store.audit.recent()
    assert (entry.outcome, entry.actor.name) == ("failed", "cursor")
    assert entry.error is not None
    assert "503" in entry.error


async def test_a_create_whose_answer_is_lost_is_audited_as_unknown(
    services: Services, sandbox: Sandbox
) -> None:
    sandbox.bangwo8.faults.drop_next = 100
    sandbox.bangwo8.faults.drop_after_processing = True
    with pytest.raises(VendorError):
        await create_ticket(services, subject="s", message="m", actor=Actor("slack", "U1"))
    [entry] = await services.store.audit.recent()
    assert entry.outcome == "unknown"
    assert entry.sent["request_id"]  # what to retry with


async def test_a_create_without_an_actor_is_audited_as_the_os_user(
    services: Services, sandbox: Sandbox
) -> None:
    await create_ticket(services, subject="s", message="m")
    [entry] = await services.store.audit.recent()
    assert (entry.actor, entry.operation) == (Actor.local_user("library"), "create_ticket")


async def test_a_create_without_credentials_is_audited_as_failed(
    services: Services, sandbox: Sandbox
) -> None:
    no_credentials = dict.fromkeys(Bangwo8Settings.credentials)
    bangwo8 = services.settings.bangwo8.model_copy(update=no_credentials)
    settings = services.settings.model_copy(update={"bangwo8": bangwo8})
    async with Services(settings, store=services.store) as unconfigured:
        with pytest.raises(ConfigurationError):
            await create_ticket(unconfigured, subject="s", message="m", actor=Actor("cli", "a"))
    [entry] = await services.store.audit.recent()
    assert (entry.outcome, entry.target) == ("failed", "ticket not created")
    assert sandbox.bangwo8.counters["requests"] == 0


def test_a_ticket_is_checked_without_sending_it() -> None:
    ticket = ticket_to_create(subject="退款", message="请退款", priority=code_value("2"))
    assert ticket.wire()["ticket"]["priorityLevel"] == 2
    with pytest.raises(InputError, match="subject"):
        ticket_to_create(subject=" ", message="m")


def test_an_id_typed_by_a_person_is_a_number_when_it_is_digits() -> None:
    assert [code_value("2"), code_value("high"), code_value(None)] == [2, "high", None]
