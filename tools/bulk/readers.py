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

Every input is bounded before it is read whole, and anything else is an `InputError` naming
the line or row, never a wait or a traceback: only a regular file is opened (a FIFO, a
device such as /dev/zero or a folder is refused at once), of at most `MAX_FILE_BYTES`; a
CSV/JSONL line is at most `MAX_LINE_CHARS` (a header holds no NUL), a CSV field at most
`MAX_FIELD_CHARS`; a header or record has at most `MAX_COLUMNS` fields; JSON nests at most
`MAX_JSON_DEPTH` deep and has no NaN/Infinity; an XLSX unpacks to at most `MAX_XLSX_BYTES`,
has no DTD, and its sheet at most `MAX_ROWS` rows and `MAX_CELLS` cells (blank ones too).
A CSV quoted field that runs over lines which look like rows of their own (a stray `"`) makes
its row an error that names the lines, instead of swallowing the rows silently.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import math
import os
import re
import stat
import zipfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import IO, Any, Literal
from xml.etree.ElementTree import ParseError

from tools.errors import InputError, Problem
from tools.i18n import marked, tr

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
MAX_FILE_BYTES = 1 << 30
"""An input file's size at most (1 GiB: ~10 million CSV rows)."""
MAX_LINE_CHARS = 1 << 20
"""A CSV/JSONL line's length at most, in characters (1 Mi)."""
MAX_FIELD_CHARS = csv.field_size_limit()
"""A CSV field's length at most, in characters: the csv module's own limit (128 Ki)."""
MAX_COLUMNS = 1000
"""Columns in a header, fields in a JSON line or record, at most."""
MAX_JSON_DEPTH = 32
"""How deep the values of a JSON line or record may nest."""
MAX_ROWS = 1_048_576
"""An XLSX sheet's rows at most, blank ones included: Excel's own limit."""
MAX_CELLS = 10_000_000
"""Cells (or shared strings) in an XLSX sheet at most, blank ones included."""
MAX_XLSX_BYTES = 128 << 20
"""An XLSX file's size unpacked at most (the sum of its parts: 128 MiB)."""

_SNIFF_BYTES = 1 << 16
_XML_PROLOG_BYTES = 1 << 16
_HEADER_ROW = 1
_UNREADABLE = marked("cannot read the input file")
_TOO_DEEP = marked("nested more than {most} levels deep")


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
        """The records' canonical JSON: what identifies this input across calls.

        A record with more fields than a row may have (`MAX_COLUMNS`) is refused as its row
        anyway, so it counts by its size alone: a hostile 60,000-key record costs nothing to
        hash (sorting and encoding it held the event loop ~0.1 s)."""
        canonical = [_canonical(record) for record in self.items]
        text = json.dumps(canonical, ensure_ascii=False, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).digest()


def _canonical(record: object) -> object:
    if isinstance(record, Mapping) and len(record) > MAX_COLUMNS:
        return {"fields refused, too many": len(record)}
    return record


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
            [
                Problem(
                    "file",
                    tr(
                        "{name}: unknown file type; give one of {known}",
                        name=path.name,
                        known=known,
                    ),
                )
            ],
            summary=tr(_UNREADABLE),
        )
    return found


def read_rows(path: Source, *, sheet: str | None = None) -> Iterator[SourceRow]:
    """The data rows of `path`, streamed; blank rows are skipped (their numbers are not reused).

    Raises `InputError` for a missing file, an unknown type, a missing header or sheet, and
    for any limit in the module docstring passed (the file at once; a line, a field or a
    cell as the reading gets there).
    """
    if isinstance(path, Records):
        return _record_rows(path)
    kind = file_format(path)
    open_input(path).close()  # refuse a missing file, a folder or a FIFO now, not at first row
    if kind == "xlsx":
        return _xlsx_rows(path, sheet)
    if kind == "jsonl":
        return _jsonl_rows(path)
    return _csv_rows(path, "\t" if kind == "tsv" else ",")


def open_input(path: Path) -> IO[bytes]:
    """`path` opened for reading in binary, once it is known to be a regular file of at most
    `MAX_FILE_BYTES`; else `InputError` at once, saying what it is instead.

    A FIFO is opened without waiting for a writer, and a device (`/dev/zero`, a terminal)
    or a folder is never read: either would hang the reading or fill the memory."""
    nonblocking = getattr(os, "O_NONBLOCK", 0)
    try:
        descriptor = os.open(path, os.O_RDONLY | nonblocking)
    except FileNotFoundError:
        raise _unreadable(tr("{path} does not exist: check the path", path=path)) from None
    except OSError as exc:
        raise _unreadable(tr("cannot open {path}: {why}", path=path, why=exc.strerror)) from None
    try:
        _check_opened(descriptor, path)
        if nonblocking:
            os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def _check_opened(descriptor: int, path: Path) -> None:
    info = os.fstat(descriptor)
    if not stat.S_ISREG(info.st_mode):
        raise _unreadable(
            tr(
                "{path} is {kind}, not a file: give a file",
                path=path,
                kind=tr(_file_kind(info.st_mode)),
            )
        )
    if info.st_size > MAX_FILE_BYTES:
        raise _unreadable(
            tr(
                "{path} is {size} bytes; crmops reads at most {most}: split it into smaller files",
                path=path,
                size=format(info.st_size, ","),
                most=format(MAX_FILE_BYTES, ","),
            )
        )


def _file_kind(mode: int) -> str:
    kinds = {
        stat.S_ISDIR: marked("a folder"),
        stat.S_ISFIFO: marked("a pipe (FIFO)"),
        stat.S_ISCHR: marked("a device"),
        stat.S_ISBLK: marked("a device"),
        stat.S_ISSOCK: marked("a socket"),
    }
    return next((name for test, name in kinds.items() if test(mode)), marked("not a regular file"))


def _unreadable(message: str) -> InputError:
    return InputError([Problem("file", message)], summary=tr(_UNREADABLE))


def text_encoding(path: Path) -> str:
    """`utf-8-sig` (drops a BOM) when the file's start is UTF-8, else `gb18030`."""
    with open_input(path) as handle:
        return _sniffed_encoding(handle.read(_SNIFF_BYTES))


def _sniffed_encoding(start: bytes) -> str:
    try:
        start.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the sniff boundary is still UTF-8.
        if exc.start < len(start) - 3:
            return "gb18030"
    return "utf-8-sig"


class _Lines:
    """The physical lines of a text file, counted in `number`: `InputError` for a line
    longer than `MAX_LINE_CHARS` (read no further than that)."""

    def __init__(self, handle: IO[str]) -> None:
        self._handle = handle
        self.number = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self._handle.readline(MAX_LINE_CHARS + 1)
        if not line:
            raise StopIteration
        self.number += 1
        if len(line.rstrip("\r\n")) > MAX_LINE_CHARS:
            raise _unreadable(
                tr(
                    "line {number} is longer than {most} characters: "
                    "is this really a text file of rows?",
                    number=self.number,
                    most=format(MAX_LINE_CHARS, ","),
                )
            )
        return line


@contextmanager
def _text_lines(path: Path, encoding: str | None = None) -> Iterator[_Lines]:
    """The file's bounded `_Lines`, decoded as `encoding` (default: sniffed)."""
    with open_input(path) as raw:
        if encoding is None:
            encoding = _sniffed_encoding(raw.read(_SNIFF_BYTES))
            raw.seek(0)
        with io.TextIOWrapper(raw, encoding=encoding, newline="") as handle:
            try:
                yield _Lines(handle)
            except UnicodeDecodeError as exc:
                raise _unreadable(
                    tr("the text is not {encoding} throughout: save it as UTF-8", encoding=encoding)
                ) from exc


def _csv_rows(path: Path, delimiter: str) -> Iterator[SourceRow]:
    with _text_lines(path) as lines:
        reader = csv.reader(lines, delimiter=delimiter)
        try:
            header = _header(next(reader, None), path)
            started = lines.number + 1
            for offset, values in enumerate(reader, start=_HEADER_ROW + 1):
                row = _row(offset, header, values)
                if row is not None and lines.number > started:
                    row = _spanning(row, values, delimiter, len(header), (started, lines.number))
                if row is not None:
                    yield row
                started = lines.number + 1
        except csv.Error as exc:
            raise _unreadable(
                tr("line {number}: {problem}", number=lines.number, problem=_csv_problem(exc))
            ) from None


def _spanning(
    row: SourceRow, values: list[str], delimiter: str, columns: int, lines: tuple[int, int]
) -> SourceRow:
    """`row`, or its error when a quoted field in it holds a line that looks like a row of
    its own (as many delimiters as a row has): the sign of a stray quote, whose field goes on
    until the next quote and swallows the rows between."""
    if columns < 2 or row.error is not None:
        return row
    for value in values:
        inner = value.splitlines()[1:]
        if any(line.count(delimiter) >= columns - 1 for line in inner):
            first, last = lines
            return SourceRow(
                row.number,
                error=tr(
                    "a quoted field runs from line {first} to line {last} and holds what "
                    'look like rows of their own: is a quote (") on line {first} not closed? '
                    "Close or remove it; the rows inside were not read",
                    first=first,
                    last=last,
                ),
            )
    return row


def _csv_problem(error: csv.Error) -> str:
    if "field limit" in str(error):
        return tr(
            "a field is longer than {most} characters: shorten it",
            most=format(MAX_FIELD_CHARS, ","),
        )
    return tr("{error}: check the quotes", error=error)


# What openpyxl raises for a damaged workbook: a part missing (KeyError), a shared string
# missing (IndexError), broken XML or compression, a value of the wrong type, a part
# encrypted (RuntimeError) or compressed in a way zipfile does not read.
_DAMAGED = (
    RuntimeError,
    NotImplementedError,
    KeyError,
    IndexError,
    ValueError,
    TypeError,
    AttributeError,
    ParseError,
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
)


def _xlsx_rows(path: Path, sheet: str | None) -> Iterator[SourceRow]:
    # openpyxl takes ~140 ms to import: only an XLSX import pays for it, not every process
    # that loads the bulk engine (`crmops mcp`, the Slack bot).
    import openpyxl  # noqa: PLC0415 - start-up cost

    with open_input(path) as handle:
        _check_archive(handle, path)
        try:
            book = openpyxl.load_workbook(handle, read_only=True, data_only=True)
        except _DAMAGED as exc:
            raise _damaged(path, exc) from None
        try:
            yield from _sheet_rows(_worksheet(book, sheet), path)
        except _DAMAGED as exc:
            raise _damaged(path, exc) from None
        finally:
            book.close()


def _worksheet(book: Any, sheet: str | None) -> Any:
    if sheet is not None and sheet not in book.sheetnames:
        raise InputError(
            [
                Problem(
                    "sheet",
                    tr(
                        "no sheet {sheet}; the sheets are {sheets}",
                        sheet=repr(sheet),
                        sheets=book.sheetnames,
                    ),
                )
            ],
            summary=_UNREADABLE,
        )
    worksheet = book[sheet] if sheet is not None else book.worksheets[0]
    if (worksheet.max_row or 0) > MAX_ROWS:
        raise _too_big(
            tr("the sheet ({rows} rows, its dimension says)", rows=format(worksheet.max_row, ","))
        )
    # Read each row as long as it is, not padded to the width the sheet claims.
    worksheet.reset_dimensions()
    return worksheet


def _sheet_rows(worksheet: Any, path: Path) -> Iterator[SourceRow]:
    values = worksheet.iter_rows(values_only=True)
    first = next(values, None)
    header = _header(None if first is None else [_cell(v) for v in first], path)
    cells_read = len(header)
    for offset, cells in enumerate(values, start=_HEADER_ROW + 1):
        cells_read += len(cells) + 1  # a blank row costs its reading too
        if offset > MAX_ROWS or cells_read > MAX_CELLS:
            raise _too_big(tr("the sheet"))
        row = _row(offset, header, [_cell(value) for value in cells])
        if row is not None:
            yield row


def _too_big(where: str) -> InputError:
    return _unreadable(
        tr(
            "{where} has more than {rows} rows or {cells} cells, blank ones included, which "
            "is all crmops reads: delete the empty rows below the data, or split it",
            where=where,
            rows=format(MAX_ROWS, ","),
            cells=format(MAX_CELLS, ","),
        )
    )


def _damaged(path: Path, error: Exception) -> InputError:
    detail = f" ({type(error).__name__}: {error})" if str(error) else f" ({type(error).__name__})"
    return _unreadable(
        tr(
            "{name} is a damaged XLSX file{detail}: open it in Excel and save it again, or "
            "save it as CSV",
            name=path.name,
            detail=detail,
        )
    )


def _check_archive(handle: IO[bytes], path: Path) -> None:
    """`InputError` unless `handle` is a zip of at most `MAX_XLSX_BYTES` unpacked whose XML
    parts have no DTD (which an entity bomb or an external entity needs)."""
    try:
        archive = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, OSError):
        raise _unreadable(
            tr(
                "{name} is not an XLSX file (not a zip archive): save it from Excel as "
                ".xlsx, or as CSV",
                name=path.name,
            )
        ) from None
    with archive:
        parts = archive.infolist()
        unpacked = sum(part.file_size for part in parts)
        if unpacked > MAX_XLSX_BYTES:
            raise _unreadable(
                tr(
                    "{name} unpacks to {size} bytes; crmops reads at most {most}: delete the "
                    "empty rows below the data, or save it as CSV",
                    name=path.name,
                    size=format(unpacked, ","),
                    most=format(MAX_XLSX_BYTES, ","),
                )
            )
        try:
            for part in parts:
                _check_part(archive, part, path)
        except _DAMAGED as exc:
            raise _damaged(path, exc) from None
    handle.seek(0)


def _check_part(archive: zipfile.ZipFile, part: zipfile.ZipInfo, path: Path) -> None:
    if part.filename.endswith((".xml", ".rels")) and _has_dtd(archive, part):
        raise _unreadable(
            tr(
                "{name}: its part {part} has a DTD (<!DOCTYPE>), which Excel never writes "
                "and crmops does not read: save it again from Excel",
                name=path.name,
                part=part.filename,
            )
        )
    if part.filename.startswith(_COUNTED_PARTS):
        _check_counts(archive, part)


_COUNTED_PARTS = ("xl/worksheets/", "xl/sharedStrings")
_TAG = rb"<(?:[A-Za-z_][\w.-]*:)?%s[\s/>]"
_ROW, _CELL, _STRING = (re.compile(_TAG % name) for name in (b"row", b"c", b"si"))
_ROW_NUMBER = re.compile(rb'\sr\s*=\s*["\'](\d{1,12})')
_CHUNK = 1 << 20
_CHUNK_OVERLAP = 256


def _check_counts(archive: zipfile.ZipFile, part: zipfile.ZipInfo) -> None:
    """`InputError` when a sheet (or the shared strings) holds more than the limits allow:
    counted on its bytes as they unpack, before openpyxl reads any of it (~200,000 rows/s),
    so a sheet of millions of blank rows is refused in a moment. The row by row count while
    reading (`_sheet_rows`) still holds whatever this misses."""
    rows = cells = last_row = 0
    tail = b""
    with archive.open(part) as member:
        while chunk := member.read(_CHUNK):
            text, tail = _complete_tags(tail + chunk)
            rows += len(_ROW.findall(text))
            cells += len(_CELL.findall(text)) + len(_STRING.findall(text))
            last = max(text.rfind(b"<row"), text.rfind(b":row"))
            number = _ROW_NUMBER.search(text, last, last + 200) if last >= 0 else None
            last_row = max(last_row, int(number.group(1)) if number else 0)
            if max(rows, last_row) > MAX_ROWS or cells > MAX_CELLS:
                raise _too_big(part.filename)


def _complete_tags(text: bytes) -> tuple[bytes, bytes]:
    """`text` cut before a tag that may go on in the next chunk: (before, the rest)."""
    cut = text.rfind(b"<")
    if cut < 0 or len(text) - cut > _CHUNK_OVERLAP:
        return text, b""
    return text[:cut], text[cut:]


_PROLOG = re.compile(rb"(?:\s+|<\?.*?\?>|<!--.*?-->)*", re.DOTALL)


def _has_dtd(archive: zipfile.ZipFile, part: zipfile.ZipInfo) -> bool:
    """Whether the part's prolog (what comes before its first element) holds a DTD, or
    does not end within `_XML_PROLOG_BYTES` (the DTD could be further on)."""
    with archive.open(part) as member:
        start = member.read(_XML_PROLOG_BYTES).removeprefix(codecs.BOM_UTF8)
    matched = _PROLOG.match(start)
    rest = start[matched.end() :] if matched else start
    return bool(rest) and (rest.startswith(b"<!") or not rest.startswith(b"<"))


def _jsonl_rows(path: Path) -> Iterator[SourceRow]:
    with _text_lines(path, "utf-8-sig") as lines:
        for line in lines:
            if line.strip():
                yield _json_row(lines.number, line)


def _json_row(number: int, line: str) -> SourceRow:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        return SourceRow(
            number, error=tr("not JSON ({why} at column {column})", why=exc.msg, column=exc.colno)
        )
    except RecursionError:
        return SourceRow(number, error=tr(_TOO_DEEP, most=MAX_JSON_DEPTH))
    if not isinstance(value, dict):
        return SourceRow(number, error=tr("each line must be a JSON object of fields"))
    return _fields_row(number, value)


def _record_rows(records: Records) -> Iterator[SourceRow]:
    for number, record in enumerate(records.items, start=1):
        if not isinstance(record, Mapping):
            yield SourceRow(number, error=tr("each record must be an object of fields"))
            continue
        yield _fields_row(number, record)


def _fields_row(number: int, record: Mapping[Any, Any]) -> SourceRow:
    """A JSON line's or a record's row, or its error: too many fields, nested too deep, or
    a number that is not one (NaN, Infinity, 1e999)."""
    if len(record) > MAX_COLUMNS:
        return SourceRow(
            number,
            error=tr(
                "{count} fields; at most {most}",
                count=format(len(record), ","),
                most=format(MAX_COLUMNS, ","),
            ),
        )
    problem = _value_problem(record)
    if problem is not None:
        return SourceRow(number, error=problem)
    return SourceRow(number, {str(k): v for k, v in record.items() if not _blank(v)})


def _value_problem(record: Mapping[Any, Any]) -> str | None:
    # A loop, not recursion: the depth is what is being checked.
    stack: list[tuple[str, object, int]] = [(str(k), v, 1) for k, v in record.items()]
    while stack:
        name, value, depth = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return tr(
                "{name}: {value} is not a number a vendor takes: give digits, or leave it out",
                name=name,
                value=value,
            )
        children: Any = value.values() if isinstance(value, Mapping) else value
        if isinstance(value, Mapping | list | tuple):
            if depth >= MAX_JSON_DEPTH:
                return f"{name}: {tr(_TOO_DEEP, most=MAX_JSON_DEPTH)}"
            stack.extend((name, child, depth + 1) for child in children)
    return None


def _header(values: list[Any] | None, path: Path) -> list[str]:
    names = [str(value).strip() if value is not None else "" for value in values or []]
    while names and not names[-1]:
        names.pop()  # blank cells after the last column name
    if any("\0" in name for name in names):
        # A NUL in a cell is that row's problem; in the header, the file is not text.
        raise _unreadable(
            tr(
                "{name}: the header holds NUL characters, so this is not a text file of "
                "rows (UTF-16? save it as CSV UTF-8)",
                name=path.name,
            )
        )
    if len(names) > MAX_COLUMNS:
        raise InputError(
            [
                Problem(
                    "header",
                    tr(
                        "{count} columns; crmops reads at most {most}",
                        count=format(len(names), ","),
                        most=format(MAX_COLUMNS, ","),
                    ),
                )
            ],
            summary=_UNREADABLE,
        )
    problems = []
    if not any(names):
        problems.append(Problem("header", tr("{name} has no header row: add one", name=path.name)))
    seen: set[str] = set()
    for position, name in enumerate(names, start=1):
        if name and name in seen:
            twice = tr(
                "column {position}: {name} appears twice", position=position, name=repr(name)
            )
            problems.append(Problem("header", twice))
        seen.add(name)
    if problems:
        raise InputError(problems, summary=_UNREADABLE)
    return names


def _row(number: int, header: list[str], values: list[Any]) -> SourceRow | None:
    if all(_blank(value) for value in values):
        return None
    if len(values) > len(header) and any(not _blank(v) for v in values[len(header) :]):
        return SourceRow(
            number,
            error=tr(
                "{cells} cells but only {columns} columns", cells=len(values), columns=len(header)
            ),
        )
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
