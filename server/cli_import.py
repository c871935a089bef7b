"""`crmops import`: a file of customers into SocialEpoch or Xiaolanben, exactly once.

    crmops import customers.xlsx --vendor xiaolanben --dry-run     # check every row first
    crmops import customers.xlsx --vendor xiaolanben --rejects bad.csv
    crmops import customers.xlsx --vendor xiaolanben --resume      # after Ctrl-C / kill -9
    crmops import leads.csv --vendor socialepoch --map "WA号=whatsApp" --json
    crmops import leads.csv --vendor socialepoch --metrics-file /var/lib/node_exporter/crmops.prom

Exit codes, as the rest of `crmops` (tools/exit_codes.py): 0 every row imported (dry run: every
row valid); 1 partial: rows rejected, refused by the vendor or not yet confirmed; 65 bad
input (unreadable file, unknown columns, no valid row, a --rejects path that is the input or
cannot be written); 69 the vendor failed or refused us; 75 the journal is busy (locked by
another process) or cannot be written (a full disk): no row is lost, rerun with --resume;
78 configuration missing; 130 interrupted (rerun with --resume). Every failure is one line
on stderr, and with --json also `{"error": {...}}` on stdout.

`register(app)` adds the command to a Typer app.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager, nullcontext
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from tools.bulk import BulkImportReport, ImportProgress, bulk_import
from tools.bulk.reporting import check_rejections_path
from tools.errors import InputError, Problem
from tools.exit_codes import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_VENDOR,
    failures_as_exit_codes,
)
from tools.i18n import marked, tr
from tools.observability.metrics import check_textfile_path, textfile_at_exit
from tools.services import Services
from tools.settings import Settings
from tools.storage.audit import Actor
from tools.storage.configured import open_store

EXIT_PARTIAL = EXIT_FAILED  # some rows not imported
INTERRUPTED = marked(
    "interrupted: every row sent so far is in the journal; "
    "rerun the same command with --resume to send the rest"
)
SHOWN_PROBLEMS = 10
T = TypeVar("T")


class ImportVendorChoice(StrEnum):
    socialepoch = "socialepoch"
    xiaolanben = "xiaolanben"


def register(app: typer.Typer) -> None:
    """Add `crmops import` to `app`."""
    app.command("import")(import_file)


def import_file(
    file: Annotated[
        Path, typer.Argument(help=marked("CSV (UTF-8 or GB18030, BOM or not), XLSX or JSONL"))
    ],
    *,
    vendor: Annotated[ImportVendorChoice, typer.Option(help=marked("where to import"))],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help=marked("check every row and show what would be sent"))
    ] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help=marked("continue an interrupted import of this file"))
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help=marked("print the report as JSON"))
    ] = False,
    rejects: Annotated[
        Path | None,
        typer.Option("--rejects", help=marked("write every row not imported to this CSV")),
    ] = None,
    mapping: Annotated[
        list[str] | None,
        typer.Option(
            "--map", help=marked("HEADER=FIELD: the vendor field a column fills (repeatable)")
        ),
    ] = None,
    sheet: Annotated[
        str | None, typer.Option(help=marked("XLSX: the sheet (default: the first)"))
    ] = None,
    concurrency: Annotated[
        int,
        typer.Option(min=1, max=64, help=marked("requests in flight (the rate limit still holds)")),
    ] = 16,
    env_file: Annotated[
        Path, typer.Option("--env-file", help=marked("settings file read after the environment"))
    ] = Path(".env"),
    metrics_file: Annotated[
        Path | None,
        typer.Option(
            "--metrics-file",
            help=marked("write the run's metrics here at the end (node_exporter textfile format)"),
        ),
    ] = None,
) -> None:
    """Import customers from a file, at the vendor's rate limit, each row exactly once."""
    console = Console(stderr=True)
    with failures_as_exit_codes(as_json=as_json, interrupted=tr(INTERRUPTED)):
        settings = Settings.load(env_file=env_file)
        columns = _parse_mapping(mapping or [])
        if rejects is not None:  # before anything is sent, not when the report is written
            check_rejections_path(rejects, file)
        if metrics_file is not None:
            check_textfile_path(metrics_file)
        showing = not as_json and console.is_terminal
        bar_or_not = _progress_bar(console) if showing else nullcontext()
        with textfile_at_exit(metrics_file), bar_or_not as bar:  # --metrics-file, however it ends
            report = _run_stoppable(
                _run(
                    settings,
                    file=file,
                    vendor=vendor,
                    dry_run=dry_run,
                    resume=resume,
                    mapping=columns,
                    sheet=sheet,
                    concurrency=concurrency,
                    rejects=rejects,
                    bar=bar,
                )
            )
        if as_json:
            typer.echo(report.model_dump_json(indent=2))
        else:
            _print_summary(Console(), report, rejects)
        raise typer.Exit(exit_code(report))


async def _run(
    settings: Settings,
    *,
    file: Path,
    vendor: ImportVendorChoice,
    dry_run: bool,
    resume: bool,
    mapping: dict[str, str],
    sheet: str | None,
    concurrency: int,
    rejects: Path | None,
    bar: _Bar | None,
) -> BulkImportReport:
    vendor_settings = settings.socialepoch if vendor == "socialepoch" else settings.xiaolanben
    if not dry_run:  # configuration first: no database is created for a command that fails
        vendor_settings.require()
    store = None if dry_run else open_store(settings.crmops)
    # What is alive now (modules, settings: ~125,000 objects) lives as long as the command.
    # Frozen, it is skipped by the collector, whose full passes would otherwise stop the
    # event loop for ~100 ms each: requests held that long go out together, and the vendor's
    # sliding window refuses them.
    gc.freeze()
    try:
        async with Services(settings) as services:
            return await bulk_import(
                services,
                source=file,
                vendor=vendor.value,
                store=store,
                actor=Actor.local_user("cli"),
                dry_run=dry_run,
                resume=resume,
                mapping=mapping,
                sheet=sheet,
                concurrency=concurrency,
                progress=bar.update if bar is not None else None,
                rejections_csv=rejects,
            )
    finally:
        if store is not None:
            await store.aclose()


def exit_code(report: BulkImportReport) -> int:
    """0 all imported (or all valid), 65 no valid row, else 1."""
    if report.valid == 0 and report.rejected:
        return EXIT_INPUT
    if report.status == "dry_run":
        return EXIT_OK if report.rejected == 0 else EXIT_PARTIAL
    return EXIT_OK if report.status == "ok" else EXIT_PARTIAL


class _Bar:
    """A rich progress bar fed by `ImportProgress`: rows/s, ETA and failures."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID = progress.add_task(_phase("reading"), total=None, rate=0.0, failed=0)

    def update(self, state: ImportProgress) -> None:
        total = state.total if state.phase == "sending" else None
        self.progress.update(
            self.task,
            description=_phase(state.phase),
            completed=state.done,
            total=total,
            rate=state.rate,
            failed=state.failed,
        )


_PHASES = {"reading": marked("reading"), "sending": marked("sending")}


def _phase(phase: str) -> str:
    """The progress bar's name for a phase of the import, in the current language."""
    return tr(_PHASES[phase]) if phase in _PHASES else phase


@contextmanager
def _progress_bar(console: Console) -> Iterator[_Bar]:
    # rich fills the {task...} fields; the words around them are translated.
    columns = (
        TextColumn("{task.description:>8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:,.0f} " + tr("rows/s")),
        TextColumn("[red]{task.fields[failed]} " + tr("failed")),
        TimeElapsedColumn(),
        TextColumn(tr("ETA")),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        yield _Bar(progress)


def _print_summary(console: Console, report: BulkImportReport, rejects: Path | None) -> None:
    title = f"{report.source} → {report.vendor}" + (tr(" (dry run)") if report.dry_run else "")
    table = Table(title=title, show_header=False)
    table.add_column(tr("what"))
    table.add_column(tr("rows"), justify="right")
    for label, value in _summary_rows(report):
        table.add_row(label, value)
    console.print(table)
    for problem in report.problems[:SHOWN_PROBLEMS]:
        field = f" {problem.field}" if problem.field else ""
        where = tr("row {row}", row=problem.row)
        console.print(f"  {where}{field}: {problem.reason}", markup=False)
    for line in _advice(report, rejects):
        console.print(line, markup=False)


def _summary_rows(report: BulkImportReport) -> list[tuple[str, str]]:
    rows = [
        (tr("rows read"), report.rows_read),
        (tr("valid"), report.valid),
        (tr("rejected (not sent)"), report.rejected),
    ]
    if report.dry_run:
        rows += [(tr("would send"), report.pending), (tr("calls it would take"), report.requests)]
    else:
        rows += [
            (tr("confirmed"), report.confirmed),
            ("  " + tr("created"), report.created),
            ("  " + tr("updated"), report.updated),
            ("  " + tr("accepted"), report.accepted),
            (tr("refused by the vendor"), report.failed),
            (tr("answer lost (resend with --resume)"), report.unknown),
            (tr("not sent yet"), report.pending),
            (tr("sent in this run (run {run})", run=report.run), report.rows_sent),
            (tr("calls in this run"), report.requests),
        ]
    text = [(label, f"{value:,}") for label, value in rows]
    rate = report.rows_sent / report.send_seconds if report.send_seconds else 0.0
    seconds, per_second = f"{report.seconds:.1f}", f"{rate:,.0f}"
    took = tr("{seconds} s, sending {rate} rows/s", seconds=seconds, rate=per_second)
    text.append((tr("time"), took))
    return text


def _advice(report: BulkImportReport, rejects: Path | None) -> list[str]:
    lines = [tr("note: {note}", note=report.note)] if report.note else []
    if report.stopped:
        lines.append(tr("stopped early: {why}", why=report.stopped))
    not_imported = report.rejected + report.failed
    count = f"{not_imported:,}"
    if not_imported and rejects is not None:
        lines.append(
            tr("{count} rows not imported, with reasons: {path}", count=count, path=rejects)
        )
    elif not_imported:
        lines.append(
            tr("{count} rows not imported: --rejects PATH writes them all to a CSV", count=count)
        )
    if not report.dry_run and not report.complete:
        lines.append(tr("some rows are not confirmed: rerun the same command with --resume"))
    for column in report.extended_columns:
        lines.append(
            tr("column {column} is sent as a SocialEpoch extended field", column=repr(column))
        )
    return lines


def _parse_mapping(pairs: list[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    problems = []
    for pair in pairs:
        header, sep, field = pair.partition("=")
        if not sep or not header.strip() or not field.strip():
            problems.append(Problem("--map", f"{pair!r}: write HEADER=FIELD, e.g. 手机号=whatsApp"))
            continue
        mapping[header.strip()] = field.strip()
    if problems:
        raise InputError(problems, summary="invalid column mapping")
    return mapping


def _run_stoppable(work: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(work)`, where SIGTERM (docker stop, systemd, Kubernetes) stops it as
    Ctrl-C does: `work` is cancelled (chunks in flight stay journaled as sent, unknown) and
    `KeyboardInterrupt` raised, so the way to --resume is printed."""
    terminated = False

    async def main() -> T:
        if threading.current_thread() is not threading.main_thread():
            return await work  # signal handlers belong to the main thread
        loop, task = asyncio.get_running_loop(), asyncio.current_task()

        def stop() -> None:
            nonlocal terminated
            terminated = True
            if task is not None:
                task.cancel()

        loop.add_signal_handler(signal.SIGTERM, stop)
        try:
            return await work
        finally:
            loop.remove_signal_handler(signal.SIGTERM)

    try:
        return asyncio.run(main())
    except asyncio.CancelledError:
        if terminated:
            raise KeyboardInterrupt from None
        raise


def standalone_app() -> typer.Typer:
    """A Typer app with only `import`: for `python -m server.cli_import` and tests."""
    standalone = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

    @standalone.callback()
    def _group() -> None:
        """crmops bulk import."""

    register(standalone)
    return standalone


__all__ = [
    "EXIT_CONFIG",
    "EXIT_INPUT",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_VENDOR",
    "exit_code",
    "import_file",
    "register",
    "standalone_app",
]


if __name__ == "__main__":  # pragma: no cover - `python -m server.cli_import import FILE ...`
    standalone_app()(args=sys.argv[1:])
