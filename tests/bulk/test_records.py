"""The bulk import of records in memory (the MCP tool's list): the same engine as a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.bulk.conftest import ACTOR, XLB_HEADER, Recorded, write_csv, xiaolanben_rows
from tools.bulk import ColumnMap, Records, RowCallbacks, bulk_import
from tools.bulk.columns import MAX_UNMATCHED_COLUMNS
from tools.errors import InputError
from tools.models import RecordOutcome
from tools.services import Services
from tools.storage.store import Store


def companies(count: int) -> list[dict[str, Any]]:
    return [
        {"customer_name": f"客户{n}", "contacts": [{"name": "王芳", "phone": f"1390000{n:04d}"}]}
        for n in range(count)
    ]


async def test_records_are_journaled_sent_once_and_told_row_by_row(
    services: Services, store: Store, sandbox: Recorded
) -> None:
    told: dict[int, RecordOutcome] = {}
    valid: dict[int, dict[str, Any]] = {}
    records = Records("import_customer", companies(25))
    callbacks = RowCallbacks(on_valid=valid.__setitem__, on_outcome=told.__setitem__)

    report = await bulk_import(
        services, source=records, vendor="xiaolanben", store=store, actor=ACTOR, rows=callbacks
    )

    assert (report.source, report.confirmed, report.requests) == ("import_customer", 25, 3)
    assert sorted(told) == list(range(1, 26))  # record i is row i + 1
    assert told[1].key == "客户0"
    assert valid[1]["contacts"][0]["thirdDataId"] == "13900000000"  # the phone, by default
    assert set(sandbox.recorders["xiaolanben"].received.values()) == {1}

    again = await bulk_import(
        services, source=records, vendor="xiaolanben", store=store, actor=ACTOR, resume=True
    )
    assert again.note is not None  # the same records: nothing left to send
    assert again.rows_sent == 0
    assert set(sandbox.recorders["xiaolanben"].received.values()) == {1}


async def test_other_records_are_another_import(
    services: Services, store: Store, sandbox: Recorded
) -> None:
    first = Records("import_customer", companies(2))
    changed = Records("import_customer", [{**companies(2)[0], "tag": "展会"}, companies(2)[1]])
    one = await bulk_import(services, source=first, vendor="xiaolanben", store=store, actor=ACTOR)
    two = await bulk_import(services, source=changed, vendor="xiaolanben", store=store, actor=ACTOR)
    assert one.fingerprint != two.fingerprint
    assert (two.rows_sent, two.updated) == (2, 2)


async def test_refuse_invalid_names_each_record_and_sends_nothing(
    services: Services, store: Store, sandbox: Recorded
) -> None:
    rows = companies(3)
    rows[1]["contacts"] = [{"name": "无电话"}]
    rows[2] = {"entName": "没有客户名称"}
    with pytest.raises(InputError) as raised:
        await bulk_import(
            services,
            source=Records("import_customer", rows),
            vendor="xiaolanben",
            store=store,
            actor=ACTOR,
            rows=RowCallbacks(refuse_invalid=True),
        )
    where = {(p.index, p.field) for p in raised.value.problems}
    assert where == {(1, "contacts[0].phone"), (2, "customerName")}
    assert sandbox.xiaolanben.counters["requests"] == 0


async def test_a_file_row_with_a_contact_but_no_phone_is_rejected_with_the_fix(
    tmp_path: Path, services: Services, store: Store, sandbox: Recorded
) -> None:
    # The Slack import and `crmops import` read files through this same check.
    rows = xiaolanben_rows(3)
    rows[1][3] = ""  # 联系人 given, 手机号 empty
    path = write_csv(tmp_path / "in.csv", XLB_HEADER, rows)
    report = await bulk_import(services, source=path, vendor="xiaolanben", store=store, actor=ACTOR)
    assert (report.confirmed, report.rejected) == (2, 1)
    [problem] = report.problems
    assert (problem.row, problem.field) == (3, "contacts[0].phone")
    assert "matches contacts by phone" in problem.reason
    assert "客户1" not in sandbox.recorders["xiaolanben"].received


def test_the_column_map_lists_each_unmatched_header_once_in_the_order_met() -> None:
    columns = ColumnMap("socialepoch")
    for cells in ({"whatsApp": "1", "会员等级": "A", "渠道": "x"}, {"渠道": "y", "城市": "沪"}):
        columns.record(cells)
    assert columns.unmatched == ["会员等级", "渠道", "城市"]
    assert columns.unknown_columns(["姓名", "城市"]) == ["城市"]


def test_more_unmatched_columns_than_the_limit_are_refused_naming_the_first() -> None:
    columns = ColumnMap("socialepoch")
    columns.record({f"extra{n}": "v" for n in range(MAX_UNMATCHED_COLUMNS)})
    with pytest.raises(InputError) as caught:
        columns.record({"whatsApp": "1", "one_too_many": "v"})
    [problem] = caught.value.problems
    assert f"more than {MAX_UNMATCHED_COLUMNS} different columns" in problem.message
    assert "'extra0'" in problem.message
