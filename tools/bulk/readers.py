"""Reading customer rows from a file, one at a time, without loading the file whole::

    for row in read_rows(Path("customers.xlsx")):
        row.number   # where a person finds it: the spreadsheet row (header = row 1) or JSONL line
        row.cells    # {"手机号": "8613800138000", ...}; empty cells are left out
        row.error    # set when the row itself is unreadable (e.g. broken JSON)

Records already in memory (an MCP tool's list) are read the same way, as JSON lines would be:
`read_rows(Records("import_customer", [{...}, {...}]))` numbers them 1, 2, ...

Formats by file suffix: `.csv`/`.txt` (UTF-8 with or without BOM; GB18030 when the file is
not UTF-8, as Excel on a Chinese Windows saves it), `.tsv`, `.xlsx`/`.xlsm` (the first sheet
or `sheet`), `.jsonl`/`.ndjson` (one JSON object a line; values may nest, e.g. `contacts`).
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Literal

from tools.errors import InputError, Problem

FileFormat = Literal["csv", "tsv", "xlsx", "jsonl"]

_SUFFIXES: dict[str, FileFormat] = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "tsv",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
_SNIFF_BYTES = 1 << 16
_HEADER_ROW = 1


@dataclass(frozen=True)
class SourceRow:
    """One row of the input: its `number` as a person would find it, and its non-empty cells."""

    number: int
    cells: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class Records:
    """Customer records in memory, as an input: record `i` (from 0) is row `i + 1`.

    `name` stands for a file name in reports and the audit log (e.g. the tool's name).
    """

    name: str
    items: Sequence[Mapping[str, Any]]

    def digest(self) -> bytes:
        """The records' canonical JSON: what identifies this input across calls."""
        text = json.dumps(list(self.items), ensure_ascii=False, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).digest()


Source = Path | Records
"""What a bulk import reads: a file, or records in memory."""


def file_format(path: Source) -> FileFormat:
    """The format `path`'s suffix names, or `InputError` listing the ones read.

    `Records` read as JSON lines: each one an object of fields, which may nest."""
    if isinstance(path, Records):
        return "jsonl"
    found = _SUFFIXES.get(path.suffix.lower())
    if found is None:
        known = ", ".join(sorted(_SUFFIXES))
        raise InputError(
            [Problem("file", f"{path.name}: unknown file type; give one of {known}")],
            summary="cannot read the input file",
        )
    return found


def read_rows(path: Source, *, sheet: str | None = None) -> Iterator[SourceRow]:
    """The data rows of `path`, streamed; blank rows are skipped (their numbers are not reused).

    Raises `InputError` for a missing file, an unknown type, a missing header or sheet.
    """
    if isinstance(path, Records):
        return _record_rows(path)
    kind = file_format(path)
    if not path.is_file():
        raise InputError(
            [Problem("file", f"{path} does not exist or is not a file")],
            summary="cannot read the input file",
        )
    if kind == "xlsx":
        return _xlsx_rows(path, sheet)
    if kind == "jsonl":
        return _jsonl_rows(path)
    return _csv_rows(path, "\t" if kind == "tsv" else ",")


def text_encoding(path: Path) -> str:
    """`utf-8-sig` (drops a BOM) when the file's start is UTF-8, else `gb18030`."""
    with path.open("rb") as handle:
        start = handle.read(_SNIFF_BYTES)
    try:
        start.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the sniff boundary is still UTF-8.
        if exc.start < len(start) - 3:
            return "gb18030"
    return "utf-8-sig"


def _csv_rows(path: Path, delimiter: str) -> Iterator[SourceRow]:
    encoding = text_encoding(path)
    with path.open(newline="", encoding=encoding) as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        try:
            header = _header(next(reader, None), path)
            for offset, values in enumerate(reader, start=_HEADER_ROW + 1):
                row = _row(offset, header, values)
                if row is not None:
                    yield row
        except UnicodeDecodeError as exc:
            raise InputError(
                [Problem("file", f"the text is not {encoding} throughout: save it as UTF-8")],
                summary="cannot read the input file",
            ) from exc


def _xlsx_rows(path: Path, sheet: str | None) -> Iterator[SourceRow]:
    # openpyxl takes ~140 ms to import: only an XLSX import pays for it, not every process
    # that loads the bulk engine (`crmops mcp`, the Slack bot).
    import openpyxl  # noqa: PLC0415 - start-up cost

    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        if sheet is not None and sheet not in book.sheetnames:
            raise InputError(
                [Problem("sheet", f"no sheet {sheet!r}; the sheets are {book.sheetnames}")],
                summary="cannot read the input file",
            )
        worksheet = book[sheet] if sheet is not None else book.worksheets[0]
        values = worksheet.iter_rows(values_only=True)
        first = next(values, None)
        header = _header(None if first is None else [_cell(v) for v in first], path)
        for offset, cells in enumerate(values, start=_HEADER_ROW + 1):
            row = _row(offset, header, [_cell(value) for value in cells])
            if row is not None:
                yield row
    finally:
        book.close()


def _jsonl_rows(path: Path) -> Iterator[SourceRow]:
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                yield SourceRow(number, error=f"not JSON ({exc.msg} at column {exc.colno})")
                continue
            if not isinstance(value, dict):
                yield SourceRow(number, error="each line must be a JSON object of fields")
                continue
            yield SourceRow(number, {k: v for k, v in value.items() if not _blank(v)})


def _record_rows(records: Records) -> Iterator[SourceRow]:
    for number, record in enumerate(records.items, start=1):
        if not isinstance(record, Mapping):
            yield SourceRow(number, error="each record must be an object of fields")
            continue
        yield SourceRow(number, {str(k): v for k, v in record.items() if not _blank(v)})


def _header(values: list[Any] | None, path: Path) -> list[str]:
    names = [str(value).strip() if value is not None else "" for value in values or []]
    problems = []
    if not any(names):
        problems.append(Problem("header", f"{path.name} has no header row: add one"))
    seen: set[str] = set()
    for position, name in enumerate(names, start=1):
        if name and name in seen:
            problems.append(Problem("header", f"column {position}: {name!r} appears twice"))
        seen.add(name)
    if problems:
        raise InputError(problems, summary="cannot read the input file")
    return names


def _row(number: int, header: list[str], values: list[Any]) -> SourceRow | None:
    if all(_blank(value) for value in values):
        return None
    if len(values) > len(header) and any(not _blank(v) for v in values[len(header) :]):
        return SourceRow(number, error=f"{len(values)} cells but only {len(header)} columns")
    cells = {
        name: value
        for name, value in zip(header, values, strict=False)
        if name and not _blank(value)
    }
    return SourceRow(number, cells)


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _cell(value: object) -> object:
    """A spreadsheet value as the vendors want it: dates as yyyy-MM-dd, 8.61e12 as digits."""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat(" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
