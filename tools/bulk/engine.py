"""The bulk import: a file of customers into SocialEpoch or Xiaolanben, at the vendor's rate
ceiling, each row exactly once across interruptions::

    async with Services(settings) as services, open_store(settings.crmops) as store:
        report = await bulk_import(
            services, store=store, source=Path("customers.csv"), vendor="xiaolanben",
            actor=Actor("cli", "alice"), resume=True, progress=print,
        )

1. Plan (`planning`): stream the file, map its columns (`ColumnMap`), check each row, and
   journal the valid rows as pending and the others as rejected (row number, field,
   reason). A row whose identity an earlier row has is rejected as a duplicate.
2. Send (`sending`): chunks of the vendor's batch size go out concurrently through the
   client's rate limiter, each claimed from the journal before the request and journaled
   `confirmed`/`failed` from the answer. The sending starts as soon as the first rows are
   journaled, while the rest of the file is read, so the first request goes out within
   milliseconds; a file whose header or columns are wrong is refused before anything is
   sent, and a caller that wants every row checked first (`RowCallbacks.refuse_invalid`)
   gets that, as a dry run does.
3. Report (`reporting`): the whole import from the journal, earlier runs included.

Exactly once: a rerun of the same file (`resume=True`) sends only rows not yet confirmed or
failed. A row left `sent` (answer lost, process killed) is sent again, which the vendors
treat as an update of the same customer (SocialEpoch by whatsApp, Xiaolanben by entName or
customerName, contacts by phone) — never a second customer. Runs of one import at the same
time (replicas sharing a PostgreSQL journal, a resume while the first run goes on) claim
different rows, and a run ends when no other live run still sends any (see the journal).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from tools.bulk.columns import BulkVendor, ColumnMap
from tools.bulk.planning import PLAN_BATCH_WHILE_SENDING, Planner, fingerprint
from tools.bulk.readers import Source, file_format
from tools.bulk.reporting import (
    BulkImportReport,
    ProgressCallback,
    ProgressMeter,
    RunFigures,
    build_report,
    export_rejections,
    record_run,
)
from tools.bulk.run import RowCallbacks, RunScope
from tools.bulk.sending import CHUNKS_AHEAD, DEFAULT_CONCURRENCY, Sender
from tools.bulk.targets import ImportTarget, import_target
from tools.errors import ConfigurationError, InputError, Problem
from tools.i18n import tr
from tools.observability.calls import ImportObserver
from tools.services import Services
from tools.storage.audit import Actor
from tools.storage.journal import ImportKey, ImportRecord, JournalCounts
from tools.storage.store import Store, sqlite_store
from tools.vendors.xiaolanben.models import ImportFlags

# CHUNKS_AHEAD is named here too for the replica tests, which read it from the engine.
__all__ = ["CHUNKS_AHEAD", "bulk_import", "fingerprint"]


@dataclass(frozen=True)
class _Options:
    vendor: BulkVendor
    source: Source
    mapping: Mapping[str, str]
    sheet: str | None
    concurrency: int
    progress: ProgressCallback | None
    actor: Actor
    rows: RowCallbacks


async def bulk_import(
    services: Services,
    *,
    source: Source,
    vendor: BulkVendor,
    store: Store | None,
    actor: Actor,
    dry_run: bool = False,
    resume: bool = False,
    mapping: Mapping[str, str] | None = None,
    sheet: str | None = None,
    xiaolanben_flags: ImportFlags | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: ProgressCallback | None = None,
    rejections_csv: Path | None = None,
    rows: RowCallbacks | None = None,
) -> BulkImportReport:
    """Import the customers in `source` (a file, or `Records` in memory) into `vendor`; see
    the module docstring.

    `mapping` maps a column header to a vendor field name. Without `resume`, a file already
    partly sent to this account is refused (`InputError`) rather than silently continued.
    A dry run checks every row and reports what would be sent, using a throwaway journal
    (`store` may be None). `rejections_csv` receives every row not imported.
    Raises `InputError` (unreadable file, unknown columns), `ConfigurationError`, and the
    vendor's `AuthenticationError`/`RequestRejectedError` (rows stay resumable).
    """
    if concurrency < 1:
        raise InputError([Problem("concurrency", tr("must be at least 1"))])
    options = _Options(
        vendor,
        source,
        dict(mapping or {}),
        sheet,
        concurrency,
        progress,
        actor,
        rows or RowCallbacks(),
    )
    target = import_target(services, vendor, xiaolanben_flags=xiaolanben_flags)
    file_format(source)
    if not dry_run:
        target.require()
    key = ImportKey(vendor, target.tenant(), fingerprint(source, vendor, options.mapping, sheet))
    async with _journal_store(store, dry_run) as used:
        run = await _Run.start(used, target, options, key, resume=resume)
        with ImportObserver(vendor, active=not dry_run) as run.progress.observer:  # metrics
            report = await run.execute(dry_run=dry_run)
        if rejections_csv is not None:
            await export_rejections(run.scope, rejections_csv)
    return report


@asynccontextmanager
async def _journal_store(store: Store | None, dry_run: bool) -> AsyncIterator[Store]:
    if not dry_run:
        if store is None:
            raise ConfigurationError(vendor="crmops", detail="a bulk import needs a journal")
        yield store
        return
    # A dry run journals into a temporary file: memory stays flat for any file size, and
    # the real journal never records an import that did not happen.
    with tempfile.TemporaryDirectory(prefix="crmops-dry-run-") as folder:
        throwaway = sqlite_store(Path(folder) / "dry-run.db")
        try:
            yield throwaway
        finally:
            await throwaway.aclose()


class _Run:
    """One run of one import: plans, sends and reports it (made by `start`)."""

    def __init__(
        self,
        scope: RunScope,
        options: _Options,
        record: ImportRecord,
        *,
        note: str | None,
        started: float,
    ) -> None:
        self.scope = scope
        self.options = options
        self.record = record
        self.note = note
        self.started = started
        self.figures = RunFigures()
        self.progress = ProgressMeter(options.progress)
        self.planner = Planner(
            scope,
            ColumnMap(options.vendor, options.mapping),
            options.rows,
            self.progress,
            sheet=options.sheet,
        )

    @classmethod
    async def start(
        cls, store: Store, target: ImportTarget, options: _Options, key: ImportKey, *, resume: bool
    ) -> _Run:
        """Open (or find) the import in the journal and count one more run of it."""
        started = time.monotonic()
        earlier = await store.journal.find_import(key)
        note = await _check_earlier(store, earlier, options.source, resume=resume)
        record = earlier or await store.journal.open_import(key, source=options.source.name)
        number = await store.journal.start_run(record.id)
        scope = RunScope(store, target, key, options.source, options.actor, record.id, number)
        return cls(scope, options, record, note=note, started=started)

    async def execute(self, *, dry_run: bool) -> BulkImportReport:
        # (A note is only ever given for an import planned before.)
        if not (dry_run or self.record.planned or self.options.rows.refuse_invalid):
            rows_read = await self._plan_while_sending()
        else:
            rows_read = self.record.rows_read if self.record.planned else await self.planner.plan()
            counts = await self._counts()
            if self.options.rows.refuse_invalid and counts.rejected:
                await self.planner.refuse_invalid()
            if dry_run:
                return await self._report(counts, rows_read, dry_run=True)
            if self.note is None:
                await self._sender().send_all()
        report = await self._report(await self._counts(), rows_read, dry_run=False)
        await record_run(self.scope, report)
        return report

    async def _plan_while_sending(self) -> int:
        """Plan the file and send its rows as they are journaled; the rows read."""
        try:
            async with asyncio.TaskGroup() as group:
                planning = group.create_task(self.planner.plan(PLAN_BATCH_WHILE_SENDING))
                # Nothing is sent before the first rows are journaled: a wrong header or
                # unknown columns fail the planning first, which cancels this task.
                await self.planner.more()
                group.create_task(self._sender().send_all(self.planner))
        except* Exception as failures:
            raise failures.exceptions[0] from None
        return planning.result()

    def _sender(self) -> Sender:
        return Sender(
            self.scope,
            concurrency=self.options.concurrency,
            progress=self.progress,
            on_outcome=self.options.rows.on_outcome,
            figures=self.figures,
        )

    async def _counts(self) -> JournalCounts:
        return await self.scope.journal.counts(self.scope.import_id)

    async def _report(
        self, counts: JournalCounts, rows_read: int, *, dry_run: bool
    ) -> BulkImportReport:
        self.figures.extended = self.planner.extended
        return await build_report(
            self.scope,
            counts,
            self.figures,
            rows_read=rows_read,
            seconds=time.monotonic() - self.started,
            dry_run=dry_run,
            note=self.note,
        )


async def _check_earlier(
    store: Store, earlier: ImportRecord | None, source: Source, *, resume: bool
) -> str | None:
    """A note when the file was imported before and nothing is left; `InputError` when it
    was partly sent and `resume` is not set; else None (go on)."""
    if earlier is None:
        return None
    counts = await store.journal.counts(earlier.id)
    if counts.sent + counts.settled == 0:
        return None  # planned before, never sent: nothing to resume
    unsettled = counts.pending + counts.sent
    if unsettled == 0 and earlier.planned:
        return tr(
            "this file was already imported ({runs} run(s)); nothing left to send",
            runs=earlier.runs,
        )
    if resume:
        return None
    left = (
        tr("{count} left", count=unsettled)
        if earlier.planned
        else tr("the rest of the file not yet read")
    )
    raise InputError(
        [
            Problem(
                "resume",
                tr(
                    "{file} was partly imported into this account ({settled} of {valid} rows "
                    "settled, {left}): rerun with --resume (resume=True) to send only the rest",
                    file=source.name,
                    settled=counts.settled,
                    valid=counts.valid,
                    left=left,
                ),
            )
        ],
        summary=tr("this import was started before"),
    )
