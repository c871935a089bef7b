"""What an import tells its caller: progress while it runs, the report when it ends (from
the journal, earlier runs included), its audit record, and every row not imported as CSV::

    meter = ProgressMeter(print)             # fed by the planning and the sending
    report = await build_report(scope, counts, figures, rows_read=..., dry_run=False)
    await export_rejections(scope, Path("rejects.csv"))
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

from pydantic import BaseModel, Field

from tools.bulk.columns import BulkVendor
from tools.bulk.readers import Source
from tools.bulk.run import RunScope
from tools.errors import InputError, Problem, StorageError
from tools.i18n import tr
from tools.observability.calls import ImportObserver
from tools.storage.audit import AuditEntry, Outcome
from tools.storage.journal import JournalCounts, Rejection
from tools.text import SpreadsheetWriter

REPORTED_REJECTIONS = 100


@dataclass(frozen=True)
class ImportProgress:
    """Where an import stands: `done` of `total` rows settled (earlier runs included),
    `failed` of them refused, `rate` rows per second in this run.

    While the file is still being read as rows are sent, `total` counts the valid rows read
    so far, and grows."""

    phase: Literal["reading", "sending"]
    done: int
    total: int
    failed: int
    rate: float


ProgressCallback = Callable[[ImportProgress], None]


class RowProblem(BaseModel):
    """A row that was not imported, and why."""

    row: int = Field(description="row number in the file (header = 1) or JSON-lines line")
    field: str = Field(description="the vendor field at fault; empty when the vendor said")
    reason: str
    identity: str = Field(default="", description="the row's whatsApp / customer name")
    stage: Literal["input", "vendor"] = Field(
        description="input: refused by crmops before sending; vendor: refused by the vendor"
    )


ImportStatus = Literal["ok", "partial", "dry_run"]


class BulkImportReport(BaseModel):
    """The whole import (every run of this file for this account), and this run."""

    vendor: BulkVendor
    source: str
    fingerprint: str = Field(description="sha256 of the file and the column mapping")
    dry_run: bool
    run: int = Field(description="this run's number for this file (1 = first)")
    status: ImportStatus = Field(
        description="ok: every row confirmed; partial: rows rejected, failed or not yet "
        "confirmed; dry_run: nothing sent"
    )
    rows_read: int = Field(description="data rows in the file")
    valid: int = Field(description="rows that passed the checks")
    rejected: int = Field(description="rows refused by the checks (not sent)")
    confirmed: int = Field(description="rows the vendor confirmed")
    created: int = 0
    updated: int = 0
    accepted: int = Field(default=0, description="confirmed without saying new or updated")
    failed: int = Field(description="rows the vendor refused")
    unknown: int = Field(description="rows sent whose answer never came: resend with resume")
    pending: int = Field(description="rows not sent yet: send with resume")
    requests: int = Field(description="vendor calls in this run (dry run: that would be made)")
    rows_sent: int = Field(description="rows sent in this run")
    seconds: float = Field(description="this run's duration")
    send_seconds: float = Field(description="of which sending (from the first send)")
    extended_columns: list[str] = Field(
        default_factory=list, description="SocialEpoch columns sent as tenant extended fields"
    )
    problems: list[RowProblem] = Field(
        default_factory=list, description=f"the first {REPORTED_REJECTIONS} rows not imported"
    )
    stopped: str | None = Field(default=None, description="why this run stopped early")
    last_error: str | None = Field(
        default=None, description="the last vendor failure in this run (its rows stay resumable)"
    )
    note: str | None = None

    @property
    def complete(self) -> bool:
        return self.unknown == 0 and self.pending == 0


@dataclass
class RunFigures:
    """What the sending of one run did, for its report."""

    requests: int = 0
    rows_sent: int = 0
    send_seconds: float = 0.0
    stopped: str | None = None
    last_error: str | None = None
    extended: list[str] = field(default_factory=list)
    """Columns sent as tenant extended fields (SocialEpoch), found by the planning."""


class ProgressMeter:
    """Tells a `ProgressCallback` (if any) where the run stands. The planning reports rows
    read until the sending starts; from then on the sending reports rows settled."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self._callback = callback
        self._started = time.monotonic()
        self._sending = False
        self._total = self._settled = self._failed = self._settled_now = 0
        self.observer: ImportObserver | None = None
        """The import's metrics (`tools.observability`), set by the engine: none for a dry run."""

    def read(self, rows: int) -> None:
        """`rows` read from the file so far (told only before anything is sent)."""
        if not self._sending:
            self._tell("reading", rows, 0, 0, rows)

    def planned(self, valid: int) -> None:
        """`valid` rows journaled by this run's planning so far: the total can only grow."""
        self._total = max(self._total, valid)

    def sending(self, counts: JournalCounts) -> None:
        """The sending starts, from the journal as it stands."""
        if self.observer is not None:
            self.observer.sending()
        self._sending, self._started = True, time.monotonic()
        self._settled, self._failed = counts.settled, counts.failed
        self._total = max(self._total, counts.valid)

    def settled(self, rows: int, *, failed: int) -> None:
        """`rows` more settled in this run, `failed` of them refused."""
        if self.observer is not None:
            self.observer.settled(rows, failed=failed)
        self._settled_now += rows
        self._settled += rows
        self._failed += failed
        self._tell("sending", self._settled, self._total, self._failed, self._settled_now)

    def rejected(self, rows: int) -> None:
        """`rows` more refused by the checks (never sent)."""
        if self.observer is not None:
            self.observer.rejected(rows)

    def _tell(
        self, phase: Literal["reading", "sending"], done: int, total: int, failed: int, now: int
    ) -> None:
        if self._callback is None:
            return
        rate = now / max(time.monotonic() - self._started, 1e-9)
        self._callback(ImportProgress(phase, done, total, failed, rate))


async def build_report(
    scope: RunScope,
    counts: JournalCounts,
    figures: RunFigures,
    *,
    rows_read: int,
    seconds: float,
    dry_run: bool,
    note: str | None,
) -> BulkImportReport:
    """The report of the whole import from `counts` (the journal now), and of this run."""
    partial = counts.rejected or counts.failed or counts.pending or counts.sent
    batch = scope.target.batch_size
    return BulkImportReport(
        vendor=scope.target.vendor,
        source=scope.source.name,
        fingerprint=scope.key.fingerprint,
        dry_run=dry_run,
        run=scope.number,
        status="dry_run" if dry_run else "partial" if partial else "ok",
        rows_read=rows_read,
        valid=counts.valid,
        rejected=counts.rejected,
        confirmed=counts.confirmed,
        created=counts.statuses.get("created", 0),
        updated=counts.statuses.get("updated", 0),
        accepted=counts.statuses.get("accepted", 0),
        failed=counts.failed,
        unknown=0 if dry_run else counts.sent,
        pending=counts.pending + (counts.sent if dry_run else 0),
        requests=-(-counts.valid // batch) if dry_run else figures.requests,
        rows_sent=figures.rows_sent,
        seconds=round(seconds, 3),
        send_seconds=round(figures.send_seconds, 3),
        extended_columns=figures.extended,
        problems=await _first_problems(scope),
        stopped=figures.stopped,
        last_error=figures.last_error,
        note=note,
    )


async def record_run(scope: RunScope, report: BulkImportReport) -> None:
    """The run's audit record: its counts, `ok` only when every row is confirmed."""
    outcome: Outcome = "ok" if report.status == "ok" else "partial"
    summary = report.model_dump(include={"rows_read", "valid", "rejected", "confirmed"})
    summary |= report.model_dump(include={"failed", "unknown", "pending", "requests"})
    await scope.store.audit.record(
        AuditEntry(
            actor=scope.actor,
            vendor=scope.target.vendor,
            operation="bulk_import",
            target=scope.label,
            sent={"fingerprint": scope.key.fingerprint, **summary},
            outcome=outcome,
            error=report.stopped,
        )
    )


def check_rejections_path(path: Path, source: Source) -> None:
    """`InputError` unless `export_rejections` can write `path`: not the input file itself
    (nor a link to it), not a folder, in a folder crmops may create a file in. Call it
    before the import, so a wrong path is refused before anything is sent."""
    where = "--rejects"
    if isinstance(source, Path) and path.exists() and source.exists() and path.samefile(source):
        raise InputError(
            [Problem(where, f"{path} is the input file: give another path for the rejects")]
        )
    if path.is_dir():
        raise InputError([Problem(where, f"{path} is a folder: give a file path, e.g. bad.csv")])
    try:
        with tempfile.NamedTemporaryFile(dir=_folder(path), prefix=".crmops-rejects-"):
            pass
    except OSError as exc:
        raise InputError(
            [Problem(where, f"cannot write {path} ({exc.strerror}): give a writable path")]
        ) from None


def _folder(path: Path) -> Path:
    return path.parent if str(path.parent) else Path()


@contextmanager
def _replacing(path: Path) -> Iterator[IO[str]]:
    """A text file that becomes `path` once written whole: a failure (a full disk) leaves
    whatever `path` was untouched, and is a `StorageError` saying so."""
    try:
        with tempfile.NamedTemporaryFile(
            "w",
            dir=_folder(path),
            prefix=".crmops-rejects-",
            suffix=".csv",
            newline="",
            encoding="utf-8-sig",
            delete=False,
        ) as handle:
            try:
                yield handle
            except BaseException:
                handle.close()
                Path(handle.name).unlink()
                raise
        Path(handle.name).replace(path)
    except OSError as exc:
        action = (
            "free disk space or give --rejects another path, then rerun the same command "
            "with --resume: it writes the rejects again and sends nothing twice"
        )
        raise StorageError(
            f"cannot write the rejected rows to {path} ({exc.strerror}): {action}",
            backend="file",
            action=action,
        ) from None


async def export_rejections(scope: RunScope, path: Path) -> int:
    """Write every row not imported to `path` (CSV, UTF-8 with BOM for Excel); the count.

    `InputError` when `path` is the input (see `check_rejections_path`); `StorageError` when
    it cannot be written whole (what was at `path` stays as it was)."""
    check_rejections_path(path, scope.source)
    count = 0
    with _replacing(path) as handle:
        writer = SpreadsheetWriter(handle)  # every cell: no formula runs (OWASP)
        # i18n: the rejected-rows CSV's column headers
        writer.writerow([tr("row"), tr("field"), tr("reason"), tr("identity"), tr("stage")])
        async for rejection in scope.journal.rejections(scope.import_id):
            problem = _problem(rejection)
            writer.writerow(
                [problem.row, problem.field, problem.reason, problem.identity, problem.stage]
            )
            count += 1
    return count


async def _first_problems(scope: RunScope) -> list[RowProblem]:
    problems: list[RowProblem] = []
    async for rejection in scope.journal.rejections(scope.import_id):
        if len(problems) >= REPORTED_REJECTIONS:
            break
        problems.append(_problem(rejection))
    return problems


def _problem(rejection: Rejection) -> RowProblem:
    return RowProblem(
        row=rejection.number,
        field=rejection.field,
        reason=rejection.reason,
        identity=rejection.identity,
        stage=rejection.stage,
    )
