"""Hostile and clumsy files given to `crmops import`: each is refused at once with one clear
line (and a JSON error with `--json`) and the right exit code, never a hang or a traceback.

FIFOs, devices, NUL-filled and endless lines, CSV quotes that swallow rows, NaN and deep
JSON, XLSX bombs and DTDs, a rejects path that is the input, a locked or full journal; and
SIGTERM stops a long run within a second, resumably. Files are made small in `tmp_path`:
a bound shows on a few MB as well as on GBs.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import openpyxl
import pytest
from typer.testing import CliRunner, Result

from server.cli_import import EXIT_INPUT, EXIT_INTERRUPTED, EXIT_PARTIAL, standalone_app
from tests.bulk.conftest import SE_HEADER, socialepoch_rows, write_csv
from tools.bulk import readers
from tools.exit_codes import EXIT_STORAGE
from tools.sandbox.stack import Sandbox
from tools.storage import store as store_module
from tools.storage.journal import ImportKey
from tools.storage.sqlite import SqliteThread
from tools.storage.store import sqlite_store

ROOT = Path(__file__).resolve().parents[2]
WAIT = 10


def dry_run(path: Path, *options: str) -> Result:
    arguments = ["import", str(path), "--vendor", "socialepoch", "--dry-run", "--json"]
    env = {"SOCIALEPOCH_AGENT_ACCOUNT": "agent01"}  # what a valid row needs besides its own
    return CliRunner().invoke(standalone_app(), [*arguments, *options], env=env)


def refused(result: Result, code: int = EXIT_INPUT) -> str:
    """The one-line error of a refused run, after checking its exit code and JSON error."""
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    error = json.loads(result.stdout)["error"]
    assert error["exit_code"] == code
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ")
    return line


def problems(result: Result) -> list[tuple[int, str]]:
    return [(p["row"], p["reason"]) for p in json.loads(result.stdout)["problems"]]


def child_env(sandbox: Sandbox | None = None, **more: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(sandbox.env() if sandbox else {})}
    return {**env, **more}


def cli(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "server.cli_import", "import", *arguments]


# --- what is not a regular file -----------------------------------------------------------


def test_a_fifo_and_a_link_to_dev_zero_are_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "in.csv"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.jsonl"
    zero.symlink_to("/dev/zero")
    started = time.monotonic()
    children = [
        subprocess.Popen(
            cli(str(path), "--vendor", "socialepoch", "--dry-run", "--json"),
            env=child_env(),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for path in (fifo, zero)
    ]
    try:
        outputs = [child.communicate(timeout=WAIT) for child in children]
    finally:
        for child in children:
            child.kill()
            child.wait()
    assert time.monotonic() - started < WAIT
    assert [child.returncode for child in children] == [EXIT_INPUT, EXIT_INPUT]
    (_, fifo_err), (zero_out, zero_err) = outputs
    assert "a pipe (FIFO), not a file" in fifo_err
    assert "a device, not a file" in zero_err
    assert json.loads(zero_out)["error"]["type"] == "InputError"
    assert "Traceback" not in fifo_err + zero_err


def test_a_missing_file_and_a_folder_are_one_line_errors(tmp_path: Path) -> None:
    assert "does not exist" in refused(dry_run(tmp_path / "nope.csv"))
    (tmp_path / "folder.csv").mkdir()
    assert "is a folder, not a file" in refused(dry_run(tmp_path / "folder.csv"))


# --- bounded lines and fields -------------------------------------------------------------


def test_a_file_of_nul_bytes_is_refused_at_its_first_line(tmp_path: Path) -> None:
    path = tmp_path / "zeros.csv"
    path.write_bytes(b"\0" * (3 << 20))  # no line break: one endless line
    started = time.monotonic()
    line = refused(dry_run(path))
    assert f"line 1 is longer than {readers.MAX_LINE_CHARS:,} characters" in line
    assert time.monotonic() - started < 2
    path.write_bytes(b"\0\0\0\n" * 100_000)  # short lines: the header is refused
    assert "the header holds NUL characters" in refused(dry_run(path))


def test_a_csv_field_over_the_limit_names_its_line(tmp_path: Path) -> None:
    long = "长" * (readers.MAX_FIELD_CHARS + 1)
    path = write_csv(tmp_path / "in.csv", SE_HEADER, [*socialepoch_rows(2), ["8613", long, "女"]])
    line = refused(dry_run(path))
    assert f"line 4: a field is longer than {readers.MAX_FIELD_CHARS:,} characters" in line


def test_a_header_of_too_many_columns_is_refused(tmp_path: Path) -> None:
    header = [f"c{n}" for n in range(readers.MAX_COLUMNS + 1)]
    path = write_csv(tmp_path / "in.csv", header, [["8613800138000"]])
    assert f"at most {readers.MAX_COLUMNS:,}" in refused(dry_run(path))


def test_a_stray_quote_is_reported_with_its_lines_not_swallowed(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text(
        "手机号,姓名,性别\n"
        '8613800000001,"王芳,女\n'  # the quote never closes on its own line ...
        "8613800000002,李雷,男\n"
        '8613800000003,韩梅梅",女\n'  # ... but here, two rows later
        "8613800000004,张三,男\n"
        '8613800000005,"上海市\n浦东新区, 1 号",女\n',  # a real two-line cell: fine
        encoding="utf-8",
    )
    result = dry_run(path)
    assert result.exit_code == EXIT_PARTIAL, result.output
    report = json.loads(result.stdout)
    assert (report["rows_read"], report["valid"], report["rejected"]) == (3, 2, 1)
    ((row, reason),) = problems(result)
    assert row == 2
    assert "from line 2 to line 4" in reason
    assert "quote" in reason


# --- JSON lines ---------------------------------------------------------------------------


def test_nan_infinity_deep_and_wide_json_lines_are_rejected_rows(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    wide = {f"k{n}": n for n in range(readers.MAX_COLUMNS + 1)}
    lines = [
        '{"whatsApp": "8613800000001", "friendName": NaN}',
        '{"whatsApp": "8613800000002", "age": Infinity}',
        '{"whatsApp": "8613800000003", "age": -Infinity}',
        '{"whatsApp": "8613800000004", "age": 1e999}',
        '{"whatsApp": "8613800000005", "x": ' + "[" * 5000 + "]" * 5000 + "}",
        '{"whatsApp": "8613800000006", "x": ' + "[" * 40 + "]" * 40 + "}",
        json.dumps(wide),
        '{"whatsApp": "8613800000008", "friendName": "好"}',
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = dry_run(path)
    assert result.exit_code == EXIT_PARTIAL, result.output
    found = dict(problems(result))
    assert sorted(found) == [1, 2, 3, 4, 5, 6, 7]
    assert "nan is not a number" in found[1]
    assert all("inf is not a number" in found[n] for n in (2, 3, 4))
    assert all("nested" in found[n] for n in (5, 6))
    assert f"at most {readers.MAX_COLUMNS:,}" in found[7]


# --- XLSX ---------------------------------------------------------------------------------

HEAD = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    b'<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>whatsApp</t></is></c></row>'
    b'<row r="2"><c r="A2" t="inlineStr"><is><t>8613800138000</t></is></c></row>'
)
TAIL = b"</sheetData></worksheet>"
SHEET = "xl/worksheets/sheet1.xml"


def xlsx_with(path: Path, name: str, parts: Iterable[bytes]) -> Path:
    """A workbook saved by openpyxl whose part `name` is replaced by `parts`."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["whatsApp"])
    book.save(path)
    with zipfile.ZipFile(path) as source:
        kept = [(info, source.read(info)) for info in source.infolist() if info.filename != name]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as target:
        for info, data in kept:
            target.writestr(info, data)
        with target.open(name, "w") as member:
            for part in parts:
                member.write(part)
    return path


def blank_rows(count: int) -> Iterator[bytes]:
    yield HEAD
    for start in range(3, count + 3, 10_000):
        yield b"".join(b'<row r="%d"/>' % n for n in range(start, min(start + 10_000, count + 3)))
    yield TAIL


def test_an_xlsx_of_millions_of_blank_rows_is_refused_in_a_moment(tmp_path: Path) -> None:
    bomb = xlsx_with(tmp_path / "bomb.xlsx", SHEET, blank_rows(2_000_000))
    assert bomb.stat().st_size < 6 << 20
    gap = xlsx_with(tmp_path / "gap.xlsx", SHEET, [HEAD, b'<row r="20000000"/>', TAIL])
    claims = xlsx_with(
        tmp_path / "claims.xlsx",
        SHEET,
        [HEAD.replace(b"<sheetData>", b'<dimension ref="A1:XFD20000000"/><sheetData>'), TAIL],
    )
    for path in (bomb, gap, claims):
        started = time.monotonic()
        line = refused(dry_run(path))
        assert f"more than {readers.MAX_ROWS:,} rows" in line
        assert time.monotonic() - started < 2, path.name


def test_an_xlsx_unpacking_past_the_limit_is_refused_unread(tmp_path: Path) -> None:
    # Declared sizes are what the check reads (zipfile never unpacks past them): a part
    # that says it is bigger than the limit is refused before a byte of it is unpacked.
    path = xlsx_with(tmp_path / "big.xlsx", "xl/padding.bin", [b"\0"])
    data = bytearray(path.read_bytes())
    entry = data.rindex(b"PK\x01\x02")  # the central directory's last entry: the padding
    assert data[entry + 46 : entry + 60] == b"xl/padding.bin"
    data[entry + 24 : entry + 28] = (readers.MAX_XLSX_BYTES + 1).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    assert f"at most {readers.MAX_XLSX_BYTES:,}" in refused(dry_run(path))


def test_an_xlsx_with_a_dtd_is_refused(tmp_path: Path) -> None:
    dtd = b'<!DOCTYPE lol [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
    path = xlsx_with(tmp_path / "dtd.xlsx", SHEET, [HEAD.replace(b"\n", b"\n" + dtd), TAIL])
    assert "has a DTD" in refused(dry_run(path))


def test_a_damaged_xlsx_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "text.xlsx").write_text("phone\n8613800138000\n", encoding="utf-8")
    assert "not an XLSX file (not a zip archive)" in refused(dry_run(tmp_path / "text.xlsx"))
    missing = HEAD.replace(b't="inlineStr"><is><t>8613800138000</t></is>', b't="s"><v>7</v>')
    path = xlsx_with(tmp_path / "strings.xlsx", SHEET, [missing, TAIL])
    assert "damaged XLSX file" in refused(dry_run(path))
    path = xlsx_with(tmp_path / "broken.xlsx", SHEET, [HEAD])  # cut short
    assert "damaged XLSX file" in refused(dry_run(path))


# --- the rejects file ---------------------------------------------------------------------


def test_rejects_that_is_the_input_or_unwritable_is_refused_first(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "in.csv", SE_HEADER, [*socialepoch_rows(2), ["12", "坏", "女"]])
    before = path.read_bytes()
    link = tmp_path / "link.csv"
    link.symlink_to(path)
    for rejects in (path, link):
        assert "is the input file" in refused(dry_run(path, "--rejects", str(rejects)))
    assert path.read_bytes() == before
    unwritable = tmp_path / "in.csv" / "rejects.csv"  # inside a file: never writable
    assert "cannot write" in refused(dry_run(path, "--rejects", str(unwritable)))


# --- the journal --------------------------------------------------------------------------


def test_a_journal_locked_at_start_is_busy_not_unconfigured(
    tmp_path: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "_BUSY_TIMEOUT_MS", 50)
    db = tmp_path / "crmops.db"
    for name, value in {**sandbox.env(), "CRMOPS_DB": str(db)}.items():
        monkeypatch.setenv(name, value)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("CREATE TABLE other (x)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        path = write_csv(tmp_path / "in.csv", SE_HEADER, socialepoch_rows(3))
        result = CliRunner().invoke(
            standalone_app(), ["import", str(path), "--vendor", "socialepoch", "--json"]
        )
    finally:
        holder.close()
    line = refused(result, EXIT_STORAGE)
    assert "is busy" in line
    assert "not configured" not in line
    assert not sandbox.socialepoch.customers


async def test_a_journal_locked_or_full_mid_run_is_a_storage_error(tmp_path: Path) -> None:
    db = tmp_path / "journal.db"
    store = sqlite_store(db)
    key = ImportKey("socialepoch", "t", "f")
    try:
        await store.journal.open_import(key, source="in.csv")
        holder = sqlite3.connect(db, timeout=0, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            database = SqliteThread(sqlite3.connect(db, timeout=0.05, check_same_thread=False))
            with pytest.raises(Exception, match="is busy") as busy:
                await database.run(lambda c: c.execute("INSERT INTO imports DEFAULT VALUES"))
            assert type(busy.value).__name__ == "StorageUnavailableError"
            await database.aclose()
        finally:
            holder.close()
        full = SqliteThread(sqlite3.connect(db, check_same_thread=False))

        def fill(connection: sqlite3.Connection) -> None:
            connection.execute("PRAGMA max_page_count = 1")  # the disk is full from here on
            with connection:
                connection.execute("CREATE TABLE filler (x)")
                connection.execute("INSERT INTO filler VALUES (zeroblob(100000))")

        with pytest.raises(Exception, match="is full: free space"):
            await full.run(fill)
        await full.aclose()
    finally:
        await store.aclose()


def _file_limit(limit: int) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past it fails, as on a full disk
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_a_journal_write_failing_mid_run_loses_no_row(tmp_path: Path, sandbox: Sandbox) -> None:
    path = write_csv(tmp_path / "in.csv", SE_HEADER, socialepoch_rows(1000))
    env = child_env(sandbox, CRMOPS_DB=str(tmp_path / "crmops.db"), CRMOPS_IMPORT_LEASE="1")
    command = cli(str(path), "--vendor", "socialepoch", "--json")
    failed = subprocess.run(
        command,
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=WAIT * 3,
        check=False,
        preexec_fn=lambda: _file_limit(400_000),
    )
    assert failed.returncode == EXIT_STORAGE, failed.stderr
    assert json.loads(failed.stdout)["error"]["type"].startswith("Storage")
    assert failed.stderr.splitlines()[-1].startswith("error: the journal")
    time.sleep(1)  # the failed run's lease on its claimed rows runs out

    assert_resumed_whole(command, env, tmp_path, sandbox)


# --- SIGTERM ------------------------------------------------------------------------------


def _confirmed(db: Path) -> int:
    try:
        with sqlite3.connect(db) as connection:
            query = "SELECT count(*) FROM import_rows WHERE state = 'confirmed'"
            return int(connection.execute(query).fetchone()[0])
    except sqlite3.OperationalError:  # the child has not created the tables yet
        return 0


def test_sigterm_stops_a_long_run_within_a_second_resumably(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    sandbox.socialepoch.faults.latency = 0.05
    path = write_csv(tmp_path / "in.csv", SE_HEADER, socialepoch_rows(1000))
    db = tmp_path / "crmops.db"
    env = child_env(sandbox, CRMOPS_DB=str(db), CRMOPS_IMPORT_LEASE="1")
    env["SOCIALEPOCH_RATE_LIMIT"] = "10"
    command = cli(str(path), "--vendor", "socialepoch", "--json")
    child = subprocess.Popen(command, env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + WAIT
        while _confirmed(db) < 200:
            assert child.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.02)
        child.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        _, stderr = child.communicate(timeout=WAIT)
        stopped = time.monotonic() - signalled
    finally:
        child.kill()
        child.wait()
    assert child.returncode == EXIT_INTERRUPTED, stderr
    assert stopped < 1.0
    assert "--resume" in stderr
    sandbox.socialepoch.faults.latency = 0
    assert_resumed_whole(command, env, tmp_path, sandbox)


def assert_resumed_whole(
    command: list[str], env: dict[str, str], tmp_path: Path, sandbox: Sandbox
) -> None:
    """`--resume` of the interrupted import exits 0 with all 1,000 rows confirmed, once each."""
    resumed = subprocess.run(
        [*command, "--resume"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=WAIT * 3,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["confirmed"] == 1000
    assert len(sandbox.socialepoch.customers) == 1000
