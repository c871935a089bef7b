"""`import_customer` and `query_customer` against the SocialEpoch and Xiaolanben simulators."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.sandbox_fixtures import SE_AGENT, Sandbox, unconfigured_settings
from tools.customers import import_customer, query_customer
from tools.errors import ConfigurationError, InputError, VendorError
from tools.services import Services
from tools.settings import Settings
from tools.storage.audit import Actor
from tools.vendors.xiaolanben.client import XiaolanbenClient
from tools.vendors.xiaolanben.models import ImportFlags


def xiaolanben_rows(count: int) -> list[dict[str, Any]]:
    return [
        {
            "customerName": f"客户{number:03d}",
            "contacts": [{"thirdDataId": f"c{number}", "name": "王芳", "phone": "13909876543"}],
        }
        for number in range(count)
    ]


# --- SocialEpoch ------------------------------------------------------------------------------


async def test_socialepoch_import_takes_vendor_and_snake_case_names(
    services: Services, sandbox: Sandbox
) -> None:
    result = await import_customer(
        services,
        vendor="socialepoch",
        customers=[
            {"whatsApp": "+86 182-2173-3141", "friendName": "李雷", "tabName": ["VIP", "展会"]},
            {"whatsapp": "8613800138000", "friend_name": "韩梅梅", "sex": "female"},
        ],
    )
    assert result.dry_run is False
    assert (result.total, result.batches, result.failed) == (2, 1, 0)
    assert [o.key for o in result.outcomes] == ["8618221733141", "8613800138000"]
    stored = sandbox.socialepoch.customers
    assert stored["8618221733141"]["friendName"] == "李雷"
    assert stored["8618221733141"]["agentAccount"] == SE_AGENT
    assert stored["8613800138000"]["friendName"] == "韩梅梅"


async def test_every_bad_record_is_reported_and_nothing_is_sent(
    services: Services, sandbox: Sandbox
) -> None:
    with pytest.raises(InputError) as raised:
        await import_customer(
            services,
            vendor="socialepoch",
            customers=[
                {"whatsApp": "8618221733141"},
                {"whatsApp": "not a number"},
                {"whatsApp": "8613800138000", "birthday": "2020/13/45"},
            ],
        )
    where = {(p.index, p.field) for p in raised.value.problems}
    assert where == {(1, "whatsApp"), (2, "birthday")}
    assert sandbox.socialepoch.counters["requests"] == 0


async def test_dry_run_shows_the_wire_records_without_sending(
    services: Services, sandbox: Sandbox
) -> None:
    result = await import_customer(
        services,
        vendor="socialepoch",
        customers=[{"whatsapp": "+86 182 2173 3141", "friend_name": "李雷"}],
        dry_run=True,
    )
    assert result.dry_run is True
    assert result.outcomes == []
    assert result.would_send == [
        {"whatsApp": "8618221733141", "friendName": "李雷", "agentAccount": SE_AGENT}
    ]
    assert sandbox.socialepoch.counters["requests"] == 0


async def test_a_record_without_an_agent_is_refused_before_any_batch(
    sandbox: Sandbox, services: Services
) -> None:
    services.settings.socialepoch.agent_account = None
    rows = [{"whatsApp": "8618221733141", "agentAccount": SE_AGENT}] + [
        {"whatsApp": f"86139000{n:05d}"} for n in range(150)
    ]
    with pytest.raises(InputError) as raised:
        await import_customer(services, vendor="socialepoch", customers=rows)
    assert {p.field for p in raised.value.problems} == {"agentAccount"}
    assert raised.value.problems[0].index == 1
    assert sandbox.socialepoch.counters["requests"] == 0


async def test_a_record_the_vendor_refuses_fails_alone_with_the_vendor_code(
    services: Services, sandbox: Sandbox
) -> None:
    result = await import_customer(
        services,
        vendor="socialepoch",
        customers=[
            {"whatsApp": "8618221733141"},
            {"whatsApp": "8613800138000", "agentAccount": "ghost"},
        ],
    )
    assert (result.created, result.failed) == (1, 1)
    refused = result.outcomes[1]
    assert (refused.key, refused.status) == ("8613800138000", "failed")
    assert refused.reason is not None
    assert "code 508" in refused.reason
    assert "What to do" in refused.reason
    assert set(sandbox.socialepoch.customers) == {"8618221733141"}


async def test_query_finds_imported_customers_and_lists_unknown_numbers(
    services: Services,
) -> None:
    await import_customer(services, vendor="socialepoch", customers=[{"whatsApp": "8618221733141"}])
    found = await query_customer(services, whatsapp=["+86 182 2173 3141", "8613800138000"])
    assert [c.whatsapp for c in found.customers] == ["8618221733141"]
    assert found.not_found == ["8613800138000"]
    single = await query_customer(services, whatsapp="8618221733141")
    assert len(single.customers) == 1


async def test_query_refuses_bad_numbers_before_asking(
    services: Services, sandbox: Sandbox
) -> None:
    with pytest.raises(InputError) as raised:
        await query_customer(services, whatsapp=["8618221733141", "12"])
    assert [(p.index, p.field) for p in raised.value.problems] == [(1, "whatsapp")]
    assert sandbox.socialepoch.counters["requests"] == 0


# --- Xiaolanben -------------------------------------------------------------------------------


async def test_xiaolanben_import_is_chunked_and_reports_progress(
    services: Services, sandbox: Sandbox
) -> None:
    reported: list[tuple[int, int]] = []

    async def progress(done: int, total: int) -> None:
        reported.append((done, total))

    result = await import_customer(
        services, vendor="xiaolanben", customers=xiaolanben_rows(23), progress=progress
    )
    assert XiaolanbenClient.MAX_BATCH == 10
    # Chunks go out concurrently, so they settle in any order: 10, 3 and 10 rows.
    assert len(reported) == 3
    assert [total for _, total in reported] == [23, 23, 23]
    assert [done for done, _ in reported] == sorted(done for done, _ in reported)
    assert reported[-1] == (23, 23)
    assert (result.batches, result.created, result.failed) == (3, 23, 0)
    assert len(sandbox.xiaolanben.customers) == 23
    again = await import_customer(services, vendor="xiaolanben", customers=xiaolanben_rows(2))
    assert again.updated == 2


async def test_a_one_record_import_waits_for_no_idle_workers_slot(
    settings: Settings, services: Services, sandbox: Sandbox
) -> None:
    # The MCP tool's usual call: one record, one request. At one request per 100 s the
    # engine's later workers start minutes apart; none of them may hold this call up.
    settings.xiaolanben.rate_limit = 0.01

    async with asyncio.timeout(30):
        result = await import_customer(services, vendor="xiaolanben", customers=xiaolanben_rows(1))

    assert (result.batches, result.created) == (1, 1)
    assert list(sandbox.xiaolanben.customers) == ["客户000"]


async def test_lost_answers_are_resent_by_the_same_call_again_without_duplicates(
    services: Services, sandbox: Sandbox
) -> None:
    rows = xiaolanben_rows(25)
    # The vendor imports every chunk, and every answer is lost: each retry's too.
    sandbox.xiaolanben.faults.drop_next = 1000
    sandbox.xiaolanben.faults.drop_after_processing = True
    with pytest.raises(VendorError, match="nothing was imported"):
        await import_customer(services, vendor="xiaolanben", customers=rows)
    assert len(sandbox.xiaolanben.customers) == 25

    sandbox.xiaolanben.faults.drop_next = 0
    again = await import_customer(services, vendor="xiaolanben", customers=rows)
    assert again.not_confirmed == 0
    assert len(again.outcomes) == 25
    assert {o.status for o in again.outcomes} == {"updated"}  # not a second customer
    assert len(sandbox.xiaolanben.customers) == 25

    third = await import_customer(services, vendor="xiaolanben", customers=rows)
    assert third.outcomes == []
    assert third.updated == 25
    assert third.note is not None
    assert "already imported" in third.note
    assert sandbox.xiaolanben.counters["dropped"] > 3


async def test_a_call_whose_every_request_fails_raises_with_the_vendor_error(
    services: Services, sandbox: Sandbox
) -> None:
    sandbox.xiaolanben.faults.fail_next = 100
    with pytest.raises(VendorError, match="nothing was imported") as raised:
        await import_customer(services, vendor="xiaolanben", customers=xiaolanben_rows(3))
    assert "503" in str(raised.value)
    assert "call again with the same records" in str(raised.value)


async def test_a_xiaolanben_contact_without_a_phone_is_refused_before_sending(
    services: Services, sandbox: Sandbox
) -> None:
    rows = xiaolanben_rows(2)
    rows[1]["contacts"] = [{"thirdDataId": "c1", "name": "无电话"}]
    with pytest.raises(InputError) as raised:
        await import_customer(services, vendor="xiaolanben", customers=rows)
    [problem] = raised.value.problems
    assert (problem.index, problem.field) == (1, "contacts[0].phone")
    assert "matches contacts by phone" in problem.message
    assert sandbox.xiaolanben.counters["requests"] == 0


async def test_each_import_is_audited_with_its_actor_and_rows(
    services: Services, sandbox: Sandbox
) -> None:
    actor = Actor("mcp", "Claude Desktop")
    await import_customer(
        services, vendor="socialepoch", customers=[{"whatsApp": "8618221733141"}], actor=actor
    )
    entries = await services.store.audit.recent()
    assert {entry.actor for entry in entries} == {actor}
    chunk = next(e for e in entries if e.operation == "import_customer")
    assert (chunk.vendor, chunk.outcome) == ("socialepoch", "ok")
    assert chunk.sent["identities"] == ["8618221733141"]
    assert chunk.target.startswith("import_customer")
    run = next(e for e in entries if e.operation == "bulk_import")
    assert run.sent["confirmed"] == 1


async def test_xiaolanben_problems_name_the_record_and_the_contact_field(
    services: Services, sandbox: Sandbox
) -> None:
    rows = xiaolanben_rows(3)
    rows[1]["contacts"][0]["email"] = "x" * 101
    rows[2] = {"entName": "没有名字"}
    with pytest.raises(InputError) as raised:
        await import_customer(services, vendor="xiaolanben", customers=rows)
    where = {(p.index, p.field) for p in raised.value.problems}
    assert where == {(1, "contacts[0].email"), (2, "customerName")}
    assert sandbox.xiaolanben.counters["requests"] == 0


async def test_xiaolanben_dry_run_counts_the_batches(services: Services) -> None:
    result = await import_customer(
        services, vendor="xiaolanben", customers=xiaolanben_rows(11), dry_run=True
    )
    assert (result.batches, len(result.would_send)) == (2, 11)
    assert result.would_send[0]["contacts"][0]["thirdDataId"] == "c0"


async def test_flags_belong_to_xiaolanben_only(services: Services) -> None:
    with pytest.raises(InputError, match="xiaolanben_flags"):
        await import_customer(
            services,
            vendor="socialepoch",
            customers=[{"whatsApp": "8618221733141"}],
            xiaolanben_flags=ImportFlags(auto_draw=True),
        )


async def test_an_unconfigured_vendor_fails_only_when_sending() -> None:
    async with Services(unconfigured_settings()) as services:
        dry = await import_customer(
            services, vendor="xiaolanben", customers=xiaolanben_rows(1), dry_run=True
        )
        assert dry.total == 1
        with pytest.raises(ConfigurationError, match="XIAOLANBEN_COMPANY_ID"):
            await import_customer(services, vendor="xiaolanben", customers=xiaolanben_rows(1))
