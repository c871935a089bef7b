"""The bulk import against the simulators over real HTTP: exactly once, per-row outcomes."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path

import openpyxl
import pytest

from tests.bulk.conftest import (
    ACTOR,
    SE_HEADER,
    XLB_HEADER,
    Recorded,
    socialepoch_rows,
    write_csv,
    xiaolanben_rows,
)
from tests.storage.stores import select, stored_text
from tools.bulk import ImportProgress, bulk_import
from tools.errors import AuthenticationError, InputError
from tools.sandbox.stack import SANDBOX_SECRETS
from tools.services import Services
from tools.settings import Settings
from tools.storage.store import Store
from tools.transport import RetryPolicy


async def test_csv_with_bom_and_chinese_headers_lands_in_socialepoch(
    tmp_path: Path, services: Services, store: Store, sandbox: Recorded
) -> None:
    path = write_csv(tmp_path / "in.csv", SE_HEADER, socialepoch_rows(250), "utf-8-sig")
    seen: list[ImportProgress] = []

    report = await bulk_import(
        services, source=path, vendor="socialepoch", store=store, actor=ACTOR, progress=seen.append
    )

    assert (report.status, report.rows_read, report.confirmed, report.created) == (
        "ok",
        250,
        250,
        250,
    )
    assert report.requests == 3  # 100 + 100 + 50
    assert len(sandbox.socialepoch.customers) == 250
    stored = sandbox.socialepoch.customers["8613800000007"]
    assert (stored["friendName"], stored["sex"], stored["agentAccount"]) == (
        "客户7",
        "female",
        "agent01",
    )
    sending = [p for p in seen if p.phase == "sending"]
    assert sending[-1].done == sending[-1].total == 250


async def test_socialepoch_batch_size_sets_customers_per_call(
    tmp_path: Path, settings: Settings, no_wait_retry: RetryPolicy, store: Store, sandbox: Recorded
) -> None:
    # For a tenant the vendor answers 507 "data size big" at the default 100.
    settings.socialepoch.batch_size = 30
    path = write_csv(tmp_path / "in.csv", SE_HEADER, socialepoch_rows(70))

    async with Services(settings, retry=no_wait_retry) as services:
        report = await bulk_import(
            services, source=path, vendor="socialepoch", store=store, actor=ACTOR
        )

    assert (report.status, report.confirmed, report.requests) == ("ok", 70, 3)  # 30 + 30 + 10
    assert len(sandbox.socialepoch.customers) == 70


async def test_xlsx_with_chinese_headers_lands_in_xiaolanben(
    tmp_path: Path, services: Services, store: Store, sandbox: Recorded
) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(XLB_HEADER)
    for name, ent, contact, phone in xiaolanben_rows(25):
        sheet.append([name, ent, contact, int(phone)])  # Excel keeps phone numbers as numbers
    book.save(tmp_path / "in.xlsx")

    report = await bulk_import(
        services, source=tmp_path / "in.xlsx", vendor="xiaolanben", store=store, actor=ACTOR
    )

    assert (report.status, report.confirmed, report.requests) == ("ok", 25, 3)
    customer = sandbox.xiaolanben.customers["上海第3科技有限公司"]
    assert customer.customer_name == "客户3"
    assert [c.fields for c in customer.contacts] == [{"name": "联系人3", "phone": "13900000003"}]


async def test_bad_rows_are_reported_with_row_number_and_field_and_the_rest_is_sent(
    tmp_path: Path, services: Services, store: Store, sandbox: Recorded
) -> None:
    rows = socialepoch_rows(5)
    rows[1] = ["123", "坏号码", "女"]  # file row 3
    rows[3] = ["8613800000000", "重复", "女"]  # file row 5: the number of row 2
    rows[4] = ["8613800000004", "坏性别", "妖"]  # file row 6
    path = write_csv(tmp_path / "in.csv", SE_HEADER, rows)
    rejects = tmp_path / "rejects.csv"

    report = await bulk_import(
        services,
        source=path,
        vendor="socialepoch",
        store=store,
        actor=ACTOR,
        rejections_csv=rejects,
    )

    assert (report.status, report.valid, report.rejected, report.confirmed) == ("partial", 2, 3, 2)
    found = {(p.row, p.field) for p in report.problems}
    assert found == {(3, "whatsApp"), (5, "whatsApp"), (6, "sex")}
    duplicate = next(p for p in report.problems if p.row == 5)
    assert "same customer as row 2" in duplicate.reason
    with rejects.open(encoding="utf-8-sig", newline="") as handle:
        written = list(csv.DictReader(handle))
    assert [(r["row"], r["field"], r["stage"]) for r in written] == [
        ("3", "whatsApp", "input"),
        ("5", "whatsApp", "input"),
        ("6", "sex", "input"),
    ]
    assert set(sandbox.socialepoch.customers) == {"8613800000000", "8613800000002"}


async def test_partial_vendor_failures_are_reported_per_row(
    tmp_path: Path, services: Services, store: Store, sandbox: Recorded
) -> None:
    staff = sandbox.xiaolanben.add_staff("王芳", "13912340000", "销售部")
    header = [*XLB_HEADER, "负责人ID"]
    rows = [[*row, str(staff)] for row in xiaolanben_rows(12)]
    rows[4][-1] = "99999"  # file row 6: no such staff member
    rows[10][-1] = "88888"  # file row 12
    path = write_csv(tmp_path / "in.csv", header, rows)
    rejects = tmp_path / "rejects.csv"

    report = await bulk_import(
        services, source=path, vendor="xiaolanben", store=store, actor=ACTOR, rejections_csv=rejects
    )

    assert (report.status, report.confirmed, report.failed, report.rejected) == (
        "partial",
        10,
        2,
        0,
    )
    assert [(p.row, p.stage, p.identity) for p in report.problems] == [
        (6, "vendor", "上海第4科技有限公司"),
        (12, "vendor", "上海第10科技有限公司"),
    ]
    assert "员工不存在" in report.problems[0].reason
    assert "员工不存在: 88888" in rejects.read_text(encoding="utf-8-sig")


async def test_a_call_refused_as_a_whole_is_split_until_the_bad_row_stands_alone(
    tmp_path: Path, services: Services, store: Store, sandbox: Recorded
) -> None:
    header = [*SE_HEADER, "会员等级"]  # not an extended field of this tenant: 533 for the call
    rows = [[*row, ""] for row in socialepoch_rows(40)]
    rows[17][-1] = "金卡"  # file row 19
    path = write_csv(tmp_path / "in.csv", header, rows)

    report = await bulk_import(
        services, source=path, vendor="socialepoch", store=store, actor=ACTOR
    )

    assert (report.confirmed, report.failed) == (39, 1)
    (problem,) = report.problems
    assert (problem.row, problem.stage) == (19, "vendor")
    assert "533" in problem.reason
    assert report.extended_columns == ["会员等级"]


async def test_a_lost_answer_is_resent_without_creating_a_duplicate(
    tmp_path: Path, services: Services, store: Store, sandbox: Recorded
) -> None:
    sim = sandbox.xiaolanben
    sim.faults.drop_next = 1
    sim.faults.drop_after_processing = True  # the vendor acts, the answer is lost in flight
    path = write_csv(tmp_path / "in.csv", XLB_HEADER, xiaolanben_rows(30))

    report = await bulk_import(
        services, source=path, vendor="xiaolanben", store=store, actor=ACTOR, concurrency=1
    )

    assert sim.counters["dropped"] == 1
    assert (report.status, report.confirmed, report.created, report.updated) == ("ok", 30, 20, 10)
    assert len(sim.customers) == 30
    assert all(len(customer.contacts) == 1 for customer in sim.customers.values())
    assert max(sandbox.recorders["xiaolanben"].received.values()) == 2  # the lost chunk, resent


async def test_an_interrupted_import_resumes_and_every_row_lands_exactly_once(
    tmp_path: Path, settings: Settings, services: Services, store: Store, sandbox: Recorded
) -> None:
    sandbox.xiaolanben.faults.latency = 0.05
    settings.xiaolanben.rate_limit = 20
    path = write_csv(tmp_path / "in.csv", XLB_HEADER, xiaolanben_rows(200))
    halfway = asyncio.Event()

    def watch(progress: ImportProgress) -> None:
        if progress.phase == "sending" and progress.done >= 60:
            halfway.set()

    task = asyncio.create_task(
        bulk_import(
            services,
            source=path,
            vendor="xiaolanben",
            store=store,
            actor=ACTOR,
            progress=watch,
            concurrency=4,
        )
    )
    await asyncio.wait_for(halfway.wait(), timeout=20)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    recorder = sandbox.recorders["xiaolanben"]
    confirmed_first = {
        json.loads(payload)["entName"]
        for (payload,) in await select(
            store, "SELECT CAST(payload AS TEXT) FROM import_rows WHERE state = 'confirmed'"
        )
    }
    assert 60 <= len(confirmed_first) < 200
    recorder.reset()

    with pytest.raises(InputError, match="--resume"):
        await bulk_import(services, source=path, vendor="xiaolanben", store=store, actor=ACTOR)
    report = await bulk_import(
        services, source=path, vendor="xiaolanben", store=store, actor=ACTOR, resume=True
    )

    assert (report.status, report.run, report.confirmed) == ("ok", 2, 200)  # refusal: no run
    assert not confirmed_first & set(recorder.received)  # confirmed rows were not sent again
    assert len(sandbox.xiaolanben.customers) == 200
    assert all(len(c.contacts) == 1 for c in sandbox.xiaolanben.customers.values())


async def test_a_finished_import_is_reported_not_sent_again(
    tmp_path: Path, services: Services, store: Store, sandbox: Recorded
) -> None:
    path = write_csv(tmp_path / "in.csv", SE_HEADER, socialepoch_rows(3))
    await bulk_import(services, source=path, vendor="socialepoch", store=store, actor=ACTOR)
    sandbox.recorders["socialepoch"].reset()

    again = await bulk_import(services, source=path, vendor="socialepoch", store=store, actor=ACTOR)

    assert (again.status, again.confirmed, again.created, again.requests) == ("ok", 3, 3, 0)
    assert again.note is not None
    assert "already imported" in again.note
    assert not sandbox.recorders["socialepoch"].received


async def test_wrong_credentials_stop_the_import_with_rows_left_pending(
    tmp_path: Path, settings: Settings, store: Store, sandbox: Recorded
) -> None:
    from pydantic import SecretStr

    settings.xiaolanben.sign_key = SecretStr("wrong-key")
    path = write_csv(tmp_path / "in.csv", XLB_HEADER, xiaolanben_rows(30))
    async with Services(settings) as services:
        with pytest.raises(AuthenticationError):
            await bulk_import(services, source=path, vendor="xiaolanben", store=store, actor=ACTOR)
    states = dict(await select(store, "SELECT state, count(*) FROM import_rows GROUP BY state"))
    assert states.get("confirmed", 0) == 0
    assert sum(states.values()) == 30
    assert not sandbox.xiaolanben.customers


async def test_unknown_xiaolanben_columns_are_refused_before_anything_is_sent(
    tmp_path: Path, services: Services, store: Store, sandbox: Recorded
) -> None:
    path = write_csv(tmp_path / "in.csv", [*XLB_HEADER, "行业"], [[*xiaolanben_rows(1)[0], "IT"]])
    with pytest.raises(InputError, match="行业"):
        await bulk_import(services, source=path, vendor="xiaolanben", store=store, actor=ACTOR)
    assert not sandbox.recorders["xiaolanben"].received


async def test_a_dry_run_checks_everything_and_sends_nothing(
    tmp_path: Path, services: Services, store: Store, sandbox: Recorded
) -> None:
    rows = [*xiaolanben_rows(23), ["", "", "没有客户名", "13800000000"]]
    path = write_csv(tmp_path / "in.csv", XLB_HEADER, rows)

    report = await bulk_import(
        services, source=path, vendor="xiaolanben", store=None, actor=ACTOR, dry_run=True
    )

    assert (report.status, report.valid, report.rejected, report.pending) == ("dry_run", 23, 1, 23)
    assert report.requests == 3
    assert [(p.row, p.field) for p in report.problems] == [(25, "customerName")]
    assert not sandbox.recorders["xiaolanben"].received


async def test_every_call_is_audited_with_who_and_no_secret(
    tmp_path: Path, services: Services, store: Store
) -> None:
    path = write_csv(tmp_path / "in.csv", SE_HEADER, socialepoch_rows(150))
    await bulk_import(services, source=path, vendor="socialepoch", store=store, actor=ACTOR)

    entries = await store.audit.recent()
    assert [e.operation for e in entries] == ["bulk_import", "import_customer", "import_customer"]
    assert {e.actor for e in entries} == {ACTOR}
    assert sorted(len(e.sent["rows"]) for e in entries[1:]) == [50, 100]
    dump = await stored_text(store)
    assert not any(secret in dump for secret in SANDBOX_SECRETS)


async def test_a_one_chunk_import_waits_for_no_other_workers_slot(
    tmp_path: Path, settings: Settings, services: Services, store: Store, sandbox: Recorded
) -> None:
    # At one request per 100 s, every later worker's first slot is minutes away: the import
    # only finishes because the fifteen workers that get no chunk do not wait for theirs.
    settings.socialepoch.rate_limit = 0.01
    path = write_csv(tmp_path / "in.csv", SE_HEADER, socialepoch_rows(1))

    async with asyncio.timeout(30):
        report = await bulk_import(
            services, source=path, vendor="socialepoch", store=store, actor=ACTOR, concurrency=16
        )

    assert (report.status, report.confirmed, report.requests) == ("ok", 1, 1)
    assert list(sandbox.socialepoch.customers) == ["8613800000000"]
