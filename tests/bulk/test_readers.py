"""Reading CSV (BOM, GB18030), XLSX and JSON lines, and mapping their columns."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import openpyxl
import pytest

from tests.bulk.conftest import write_csv
from tools.bulk import ColumnMap, Records, read_rows, readers
from tools.errors import InputError


def test_csv_with_bom_and_chinese_headers_maps_to_socialepoch_fields(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "in.csv",
        ["手机号", "姓名", "性别", "公司"],
        [
            ["8613800138000", "王芳", "女", "蓝本"],
            ["", "", "", ""],
            ["8613900139000", "李雷", "", ""],
        ],
        encoding="utf-8-sig",
    )
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    rows = list(read_rows(path))
    columns = ColumnMap("socialepoch")
    assert [row.number for row in rows] == [2, 4]  # the blank row 3 is skipped
    assert columns.record(rows[0].cells) == {
        "whatsApp": "8613800138000",
        "friendName": "王芳",
        "sex": "female",
        "公司": "蓝本",  # no such field: a tenant extended field
    }
    assert columns.record(rows[1].cells) == {"whatsApp": "8613900139000", "friendName": "李雷"}
    assert columns.unknown_columns(rows[0].cells) == ["公司"]


def test_csv_saved_by_chinese_excel_as_gb18030_is_read(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "in.csv", ["客户名称"], [["蓝本科技"]], encoding="gb18030")
    assert [row.cells for row in read_rows(path)] == [{"客户名称": "蓝本科技"}]


def test_xlsx_numbers_and_dates_come_out_as_the_vendor_wants(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["客户名称", "企业名称", "联系人", "手机号", "生日", "contact2.phone"])
    sheet.append(
        [
            "蓝本",
            "上海蓝本网络科技有限公司",
            "王芳",
            13800138001.0,
            datetime.date(1990, 5, 17),
            13900139002,
        ]
    )
    book.save(tmp_path / "in.xlsx")

    (row,) = read_rows(tmp_path / "in.xlsx")
    record = ColumnMap("xiaolanben").record(row.cells)

    assert row.number == 2
    assert record == {
        "customerName": "蓝本",
        "entName": "上海蓝本网络科技有限公司",
        "contacts": [
            {"name": "王芳", "phone": 13800138001, "birthday": "1990-05-17"},
            {"phone": 13900139002},
        ],
    }


def test_xlsx_sheet_by_name_and_a_missing_sheet(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    book.create_sheet("客户").append(["customerName"])
    book["客户"].append(["蓝本"])
    book.save(tmp_path / "in.xlsx")
    assert [r.cells for r in read_rows(tmp_path / "in.xlsx", sheet="客户")] == [
        {"customerName": "蓝本"}
    ]
    with pytest.raises(InputError, match="no sheet 'nope'"):
        list(read_rows(tmp_path / "in.xlsx", sheet="nope"))


def test_json_lines_keep_nesting_and_report_a_broken_line(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(
        '{"customer_name": "蓝本", "contacts": [{"thirdDataId": "a", "phone": "138"}]}\n'
        "\n"
        '{"customerName": "broken"\n'
        "[1, 2]\n",
        encoding="utf-8",
    )
    rows = list(read_rows(path))
    assert [(row.number, row.error is None) for row in rows] == [(1, True), (3, False), (4, False)]
    assert ColumnMap("xiaolanben").record(rows[0].cells) == {
        "customerName": "蓝本",
        "contacts": [{"thirdDataId": "a", "phone": "138"}],
    }
    assert rows[2].error == "each line must be a JSON object of fields"


def test_header_mapping_wins_and_snake_case_works(tmp_path: Path) -> None:
    columns = ColumnMap("socialepoch", {"WA号": "whatsApp", "备注": "welcome"})
    record = columns.record({"WA号": "86138", "备注": "你好", "friend_name": "x", "Tab Name": "a"})
    assert record == {"whatsApp": "86138", "welcome": "你好", "friendName": "x", "tabName": "a"}


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ([], "no header row"),
        (["客户名称", "客户名称"], "appears twice"),
    ],
)
def test_bad_headers_are_input_errors(tmp_path: Path, header: list[str], problem: str) -> None:
    path = write_csv(tmp_path / "in.csv", header, [["x"]]) if header else tmp_path / "in.csv"
    if not header:
        path.write_text("", encoding="utf-8")
    with pytest.raises(InputError, match=problem):
        list(read_rows(path))


def test_an_unknown_file_type_is_refused(tmp_path: Path) -> None:
    (tmp_path / "in.xls").write_bytes(b"")
    with pytest.raises(InputError, match="unknown file type"):
        read_rows(tmp_path / "in.xls")


def test_records_in_memory_are_checked_as_json_lines_are() -> None:
    deep: list[object] = []
    for _ in range(40):
        deep = [deep]
    records = Records(
        "import_customer",
        [
            {"whatsApp": "8613800138000", "age": float("nan")},
            {f"k{n}": n for n in range(readers.MAX_COLUMNS + 1)},
            {"contacts": deep},
            {"whatsApp": "8613800138001"},
        ],
    )
    rows = list(read_rows(records))
    assert [row.error is None for row in rows] == [False, False, False, True]
    assert rows[0].error is not None
    assert "age: nan is not a number" in rows[0].error
    assert rows[3].cells == {"whatsApp": "8613800138001"}


def test_a_quoted_cell_over_two_lines_is_read_as_one_cell(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "in.csv",
        ["客户名称", "地址", "备注", "联系人"],
        [["蓝本", "上海市\n浦东新区, 世纪大道 1 号", "a, b\nc", "王芳"]],
    )
    (row,) = read_rows(path)
    assert row.error is None
    assert row.cells["地址"] == "上海市\n浦东新区, 世纪大道 1 号"


@pytest.mark.timeout(5)
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "in.csv")
    with pytest.raises(InputError, match="a pipe"):
        read_rows(tmp_path / "in.csv")
