"""The bulk import: a file of customers into SocialEpoch or Xiaolanben, at the vendor's rate
ceiling, each row exactly once across interruptions::

    async with Services(settings) as services, open_store(settings.crmops) as store:
        report = await bulk_import(
            services, store=store, source=Path("customers.csv"), vendor="xiaolanben",
            actor=Actor("cli", "alice"), resume=True, progress=print,
        )

1. Plan: stream the file, map its columns (`ColumnMap`), check each row, and journal the
   valid rows as pending and the others as rejected (row number, field, reason) — before
   anything is sent. A row whose identity an earlier row has is rejected as a duplicate.
2. Send: chunks of the vendor's batch size go out concurrently (`concurrency` in flight)
   through the client's per-API rate limiter and pooled connections. Each chunk is claimed
   from the journal (`sent`, held by this run) before the request and journaled
   `confirmed`/`failed` from the answer. A chunk the vendor refuses as a whole is split
   until the refused rows are found.
3. Report: the whole import from the journal, earlier runs included.

Exactly once: a rerun of the same file (`resume=True`) sends only rows not yet confirmed or
failed. A row left `sent` (answer lost, process killed) is sent again, which the vendors
treat as an update of the same customer (SocialEpoch by whatsApp, Xiaolanben by entName or
customerName, contacts by phone) — never a second customer. Runs of one import at the same
time (replicas sharing a PostgreSQL journal, a resume while the first run goes on) claim
different rows, and a run ends when no other live run still sends any (see the journal).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import itertools
import json
import os
import socket
import tempfile
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from tools.bulk.columns import BulkVendor, ColumnMap
from tools.bulk.readers import Records, Source, SourceRow, file_format, read_rows
from tools.bulk.targets import ImportTarget, import_target
from tools.errors import (
    AuthenticationError,
    ConfigurationError,
    CrmopsError,
    InputError,
    InvalidRequestError,
    Problem,
    RateLimitedError,
    RequestRejectedError,
    VendorError,
    VendorUnavailableError,
)
from tools.models import RecordOutcome
from tools.services import Services
from tools.storage.audit import Actor, AuditEntry, Outcome
from tools.storage.journal import (
    ImportKey,
    ImportRecord,
    JournalCounts,
    JournalRow,
    NewRow,
    Rejection,
    RowUpdate,
)
from tools.storage.store import Store, sqlite_store
from tools.vendors.xiaolanben import ImportFlags

DEFAULT_CONCURRENCY = 16
"""Requests in flight; at 50 req/s the ceiling needs 50 x latency (5 at 100 ms)."""
PLAN_BATCH = 1000
MAX_FAILED_CHUNKS_IN_A_ROW = 5
OTHERS_POLL_SECONDS = 0.5
"""How often a run that has nothing left to claim checks on rows other runs are sending."""
CHUNKS_AHEAD = 2
"""Chunks claimed ahead of the workers (see `_send_all`)."""
REPORTED_REJECTIONS = 100


@dataclass(frozen=True)
class ImportProgress:
    """Where an import stands: `done` of `total` rows settled (earlier runs included),
    `failed` of them refused, `rate` rows per second in this run."""

    phase: Literal["reading", "sending"]
    done: int
    total: int
    failed: int
    rate: float


ProgressCallback = Callable[[ImportProgress], None]
OutcomeCallback = Callable[[int, RecordOutcome], None]
"""Told each row's outcome as it settles in this run: (row number, outcome)."""
ValidCallback = Callable[[int, dict[str, Any]], None]
"""Told each valid row as planned: (row number, the payload exactly as it will be sent)."""


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
    send_seconds: float = Field(description="of which sending (after reading the file)")
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


@dataclass(frozen=True)
class RowCallbacks:
    """What a caller that shows each row (the MCP tool) is told, besides the report.

    `refuse_invalid`: when any row fails the checks, raise `InputError` listing every such
    row before anything is sent, instead of sending the valid ones.
    """

    on_valid: ValidCallback | None = None
    on_outcome: OutcomeCallback | None = None
    refuse_invalid: bool = False


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
        raise InputError([Problem("concurrency", "must be at least 1")])
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
        run = _Run(used, target, options, key)
        report = await run.execute(dry_run=dry_run, resume=resume)
        if rejections_csv is not None:
            await run.export_rejections(rejections_csv)
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


def fingerprint(source: Source, vendor: str, mapping: Mapping[str, str], sheet: str | None) -> str:
    """sha256 of the file's bytes (the records' JSON) and of what changes how they are read."""
    digest = hashlib.sha256()
    options = {"vendor": vendor, "mapping": dict(sorted(mapping.items())), "sheet": sheet}
    digest.update(json.dumps(options, ensure_ascii=False).encode())
    if isinstance(source, Records):
        digest.update(source.digest())
        return digest.hexdigest()
    with source.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class _Run:
    """One run of one import."""

    def __init__(
        self, store: Store, target: ImportTarget, options: _Options, key: ImportKey
    ) -> None:
        self.store = store
        self.journal = store.journal
        self.target = target
        self.options = options
        self.key = key
        self.columns = ColumnMap(options.vendor, options.mapping)
        self.extended: list[str] = []
        self.import_id = 0
        self.number = 0
        self.requests = 0
        self.rows_sent = 0
        self.settled_now = 0
        self.stopped: str | None = None
        self.last_error: str | None = None
        self.started = self.run_started = time.monotonic()
        self.send_seconds = 0.0
        # Who holds the rows this run claims (see journal): the host and process, for people.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._unsent: set[int] = set()
        self._failed_in_a_row = 0
        self._first_slots = 0
        self._counts = JournalCounts()
        self._settled = 0
        self._failed = 0

    # --- the run ------------------------------------------------------------------------
    async def execute(self, *, dry_run: bool, resume: bool) -> BulkImportReport:
        earlier = await self.journal.find_import(self.key)
        note = await self._check_earlier(earlier, resume)
        record = earlier or await self.journal.open_import(
            self.key, source=self.options.source.name
        )
        self.import_id = record.id
        self.number = await self.journal.start_run(record.id)
        rows_read = record.rows_read if record.planned else await self._plan()
        self._counts = await self.journal.counts(self.import_id)
        if self.options.rows.refuse_invalid and self._counts.rejected:
            await self._refuse_invalid()
        if dry_run:
            return await self._report(rows_read, dry_run=True, note=note)
        if note is None:
            await self._send_all()
        report = await self._report(rows_read, dry_run=False, note=note)
        await self._audit_run(report)
        return report

    async def _check_earlier(self, earlier: ImportRecord | None, resume: bool) -> str | None:
        if earlier is None:
            return None
        counts = await self.journal.counts(earlier.id)
        if counts.sent + counts.settled == 0:
            return None  # planned before, never sent: nothing to resume
        unsettled = counts.pending + counts.sent
        if unsettled == 0:
            return f"this file was already imported ({earlier.runs} run(s)); nothing left to send"
        if not resume:
            raise InputError(
                [
                    Problem(
                        "resume",
                        f"{self.options.source.name} was partly imported into this account "
                        f"({counts.settled} of {counts.valid} rows settled, {unsettled} "
                        "left): rerun with --resume (resume=True) to send only the rest",
                    )
                ],
                summary="this import was started before",
            )
        return None

    # --- planning -----------------------------------------------------------------------
    async def _plan(self) -> int:
        rows = read_rows(self.options.source, sheet=self.options.sheet)
        first = next(rows, None)
        if first is None:
            raise InputError(
                [Problem("file", f"{self.options.source.name} has a header but no rows")]
            )
        self._check_columns(first)
        read = 0
        batch: list[SourceRow] = []
        for row in itertools.chain([first], rows):
            read += 1
            batch.append(row)
            if len(batch) >= PLAN_BATCH:
                await self._plan_batch(batch, read)
                batch = []
        await self._plan_batch(batch, read)
        await self.journal.mark_planned(self.import_id, rows_read=read)
        return read

    async def _refuse_invalid(self) -> None:
        in_memory = isinstance(self.options.source, Records)
        problems = [
            Problem(r.field or "record", r.reason, r.number - 1)
            if in_memory
            else Problem(f"row {r.number}: {r.field or 'row'}", r.reason)
            async for r in self.journal.rejections(self.import_id)
        ]
        raise InputError(problems, summary="invalid customers, nothing was sent")

    def _check_columns(self, first: SourceRow) -> None:
        if self.options.vendor == "socialepoch":
            return  # 000: a column that is no standard field is a tenant extended field
        unknown = self.columns.unknown_columns(first.cells)
        if unknown and file_format(self.options.source) != "jsonl":
            raise InputError(
                [
                    Problem(
                        name,
                        "matches no Xiaolanben field: rename the column to a field name "
                        "(customerName, entName, contact.phone, customizeField.<id>, ...) "
                        "or map it (--map 'HEADER=FIELD')",
                    )
                    for name in unknown
                ],
                summary="unknown columns",
            )

    async def _plan_batch(self, batch: Sequence[SourceRow], read: int) -> None:
        valid: list[NewRow] = []
        rejected: list[Rejection] = []
        for row in batch:
            self._prepare(row, valid, rejected)
        duplicates = await self.journal.add_rows(self.import_id, valid)
        by_number = {row.number: row for row in valid}
        for number, earlier in duplicates:
            rejected.append(_duplicate(by_number[number], earlier, self.options.vendor))
        await self.journal.add_rejections(self.import_id, rejected)
        self._notify("reading", done=read, total=0, failed=0)
        await asyncio.sleep(0)  # planning is CPU work: let a server's other requests run

    def _prepare(self, row: SourceRow, valid: list[NewRow], rejected: list[Rejection]) -> None:
        if row.error is not None:
            rejected.append(Rejection(row.number, "row", row.error))
            return
        record = self.columns.record(row.cells)
        if self.options.vendor == "socialepoch":
            for column in self.columns.unknown_columns(row.cells):
                if column not in self.extended:
                    self.extended.append(column)
        try:
            prepared = self.target.prepare(record)
        except InputError as exc:
            identity = _raw_identity(self.options.vendor, record)
            rejected += [Rejection(row.number, p.field, p.message, identity) for p in exc.problems]
            return
        valid.append(NewRow(row.number, prepared.identity, prepared.conflict, prepared.payload))
        if self.options.rows.on_valid is not None:
            self.options.rows.on_valid(row.number, prepared.payload)

    # --- sending ------------------------------------------------------------------------
    async def _send_all(self) -> None:
        # Claimed rows wait here held by this run; a claim takes milliseconds, so a couple
        # of chunks ahead keep every worker fed. More would hold rows other replicas could
        # send, and make each claim step over them.
        queue: asyncio.Queue[list[JournalRow] | None] = asyncio.Queue(maxsize=CHUNKS_AHEAD)
        self.started = time.monotonic()
        self._settled, self._failed = self._counts.settled, self._counts.failed
        try:
            async with self._holding_rows(), asyncio.TaskGroup() as group:
                group.create_task(self._produce(queue))
                for _ in range(self.options.concurrency):
                    group.create_task(self._work(queue))
        except* CrmopsError as failures:
            raise failures.exceptions[0] from None
        finally:
            self.send_seconds = time.monotonic() - self.started
        self._counts = await self.journal.counts(self.import_id)

    async def _produce(self, queue: asyncio.Queue[list[JournalRow] | None]) -> None:
        # Rows are claimed (journaled `sent`, held by this run) a chunk's worth at a time, so
        # replicas running this import together each send different rows, and no run holds
        # rows it will not send soon.
        chunker = _Chunker(self.target.batch_size)
        while self.stopped is None:
            page = await self.journal.claim(
                self.import_id,
                owner=self.owner,
                limit=self.target.batch_size,
                lease_seconds=self.store.lease_seconds,
            )
            self._unsent.update(row.number for row in page)
            _raise_if_cancelled()
            for chunk in chunker.add(page) if page else chunker.flush():
                await queue.put(chunk)
            if not page and not await self._others_sending():
                break
        for _ in range(self.options.concurrency):
            await queue.put(None)

    async def _others_sending(self) -> bool:
        """Whether other runs still send rows of this import, after a pause to let them:
        their rows may come back unanswered, or their lease run out, and be ours to send."""
        if await self.journal.held_elsewhere(self.import_id, owner=self.owner) == 0:
            return False
        await asyncio.sleep(OTHERS_POLL_SECONDS)
        return True

    @asynccontextmanager
    async def _holding_rows(self) -> AsyncIterator[None]:
        """Renew the lease on this run's rows while it sends. When it stops, rows claimed
        but never sent go back to pending and the rest are free for the next run at once."""
        heartbeat = asyncio.create_task(self._renew_lease())
        try:
            yield
        finally:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
            with contextlib.suppress(CrmopsError):  # database gone: the lease runs out anyway
                unsent = [RowUpdate(number, "pending") for number in sorted(self._unsent)]
                await self.journal.update_rows(self.import_id, unsent)
                await self.journal.release(self.owner)

    async def _renew_lease(self) -> None:
        lease = self.store.lease_seconds
        while True:
            await asyncio.sleep(lease / 3)
            await self.journal.renew(self.owner, lease_seconds=lease)

    async def _work(self, queue: asyncio.Queue[list[JournalRow] | None]) -> None:
        chunk = await queue.get()  # none for this worker (a small import): done at once
        if chunk is not None:
            await self._await_first_slot()
        while chunk is not None:
            if self.stopped is None:
                await self._deliver(chunk)
            _raise_if_cancelled()
            chunk = await queue.get()

    async def _await_first_slot(self) -> None:
        # Workers start sending one rate-limit slot apart. Started together, they would all
        # journal and encode their first chunk at once: the event loop then wakes the first
        # slots tens of ms late, and those late starts share a one-second window with the
        # on-time starts a second later, which the vendor's sliding window refuses. The n-th
        # worker to get a chunk waits what remains of n slots after sending began, so a
        # worker given nothing (one chunk, sixteen workers) never waits at all.
        slot, self._first_slots = self._first_slots, self._first_slots + 1
        remaining = self.started + slot / self.target.pace - time.monotonic()
        if remaining > 0:
            await asyncio.sleep(remaining)

    async def _deliver(self, chunk: Sequence[JournalRow]) -> None:
        """Send one chunk and journal what became of each of its rows."""
        self._unsent.difference_update(row.number for row in chunk)  # claimed: already `sent`
        self.requests += 1
        self.rows_sent += len(chunk)
        try:
            outcomes = await self.target.send([row.payload for row in chunk])
        except InvalidRequestError as exc:
            await self._refused_as_a_whole(chunk, exc)
            return
        except VendorError as exc:
            await self._unanswered(chunk, exc)
            return
        except asyncio.CancelledError:
            await self._audit_chunk(chunk, "unknown", "interrupted before the answer")
            raise
        await self._settle(chunk, outcomes)

    async def _refused_as_a_whole(
        self, chunk: Sequence[JournalRow], error: InvalidRequestError
    ) -> None:
        # The vendor refused the call for some record in it (SocialEpoch 533, 508...): halve
        # the chunk until the refused rows stand alone, so the others still go in.
        if len(chunk) > 1:
            middle = len(chunk) // 2
            await self._deliver(chunk[:middle])
            await self._deliver(chunk[middle:])
            return
        reason = _one_line(error)
        await self.journal.update_rows(
            self.import_id, [RowUpdate(chunk[0].number, "failed", "failed", reason=reason)]
        )
        self._progressed(settled=1, failed=1)
        self._tell(
            chunk[0].number, RecordOutcome(key=chunk[0].identity, status="failed", reason=reason)
        )
        await self._audit_chunk(chunk, "failed", reason)

    async def _unanswered(self, chunk: Sequence[JournalRow], error: VendorError) -> None:
        never_arrived = isinstance(error, RateLimitedError) or (
            isinstance(error, VendorUnavailableError) and not error.request_sent
        )
        # Refused for who we are, not for what we sent: no later chunk can do better.
        final = isinstance(error, AuthenticationError | RequestRejectedError)
        state: Literal["pending", "sent"] = "pending" if never_arrived or final else "sent"
        reason = _one_line(error)
        self.last_error = reason
        await self.journal.update_rows(
            self.import_id, [RowUpdate(row.number, state, reason=reason) for row in chunk]
        )
        await self._audit_chunk(chunk, "failed" if never_arrived or final else "unknown", reason)
        if final:
            self.stopped = reason
            raise error
        self._failed_in_a_row += 1
        if self._failed_in_a_row >= MAX_FAILED_CHUNKS_IN_A_ROW:
            self.stopped = f"{self._failed_in_a_row} calls in a row failed; last: {reason}"

    async def _settle(self, chunk: Sequence[JournalRow], outcomes: list[RecordOutcome]) -> None:
        if len(outcomes) != len(chunk):
            await self._unanswered_count(chunk, len(outcomes))
            return
        self._failed_in_a_row = 0
        updates = [_update(row, outcome) for row, outcome in zip(chunk, outcomes, strict=True)]
        await self.journal.update_rows(self.import_id, updates)
        failed = sum(update.state == "failed" for update in updates)
        self._progressed(settled=len(chunk), failed=failed)
        for row, outcome in zip(chunk, outcomes, strict=True):
            self._tell(row.number, outcome)
        await self._audit_chunk(chunk, "partial" if failed else "ok", None)

    async def _unanswered_count(self, chunk: Sequence[JournalRow], got: int) -> None:
        reason = f"the vendor answered {got} results for {len(chunk)} records"
        await self.journal.update_rows(
            self.import_id, [RowUpdate(row.number, "sent", reason=reason) for row in chunk]
        )
        await self._audit_chunk(chunk, "unknown", reason)

    # --- progress, audit, report --------------------------------------------------------
    def _tell(self, number: int, outcome: RecordOutcome) -> None:
        if self.options.rows.on_outcome is not None:
            self.options.rows.on_outcome(number, outcome)

    def _progressed(self, *, settled: int, failed: int) -> None:
        self.settled_now += settled
        self._settled += settled
        self._failed += failed
        self._notify("sending", done=self._settled, total=self._counts.valid, failed=self._failed)

    def _notify(
        self, phase: Literal["reading", "sending"], *, done: int, total: int, failed: int
    ) -> None:
        if self.options.progress is None:
            return
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = (done if phase == "reading" else self.settled_now) / elapsed
        self.options.progress(ImportProgress(phase, done, total, failed, rate))

    async def _audit_chunk(
        self, chunk: Sequence[JournalRow], outcome: Outcome, error: str | None
    ) -> None:
        await self.store.audit.record(
            AuditEntry(
                actor=self.options.actor,
                vendor=self.options.vendor,
                operation="import_customers",
                target=f"{self.options.source.name} (import {self.import_id}, run {self.number})",
                sent={
                    "rows": [row.number for row in chunk],
                    "identities": [row.identity for row in chunk],
                },
                outcome=outcome,
                error=error,
            )
        )

    async def _audit_run(self, report: BulkImportReport) -> None:
        outcome: Outcome = "ok" if report.status == "ok" else "partial"
        summary = report.model_dump(include={"rows_read", "valid", "rejected", "confirmed"})
        summary |= report.model_dump(include={"failed", "unknown", "pending", "requests"})
        await self.store.audit.record(
            AuditEntry(
                actor=self.options.actor,
                vendor=self.options.vendor,
                operation="bulk_import",
                target=f"{self.options.source.name} (import {self.import_id}, run {self.number})",
                sent={"fingerprint": self.key.fingerprint, **summary},
                outcome=outcome,
                error=report.stopped,
            )
        )

    async def _report(self, rows_read: int, *, dry_run: bool, note: str | None) -> BulkImportReport:
        counts = self._counts
        problems: list[RowProblem] = []
        async for rejection in self.journal.rejections(self.import_id):
            if len(problems) >= REPORTED_REJECTIONS:
                break
            problems.append(_problem(rejection))
        partial = counts.rejected or counts.failed or counts.pending or counts.sent
        return BulkImportReport(
            vendor=self.options.vendor,
            source=self.options.source.name,
            fingerprint=self.key.fingerprint,
            dry_run=dry_run,
            run=self.number,
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
            requests=-(-counts.valid // self.target.batch_size) if dry_run else self.requests,
            rows_sent=self.rows_sent,
            seconds=round(time.monotonic() - self.run_started, 3),
            send_seconds=round(self.send_seconds, 3),
            extended_columns=self.extended,
            problems=problems,
            stopped=self.stopped,
            last_error=self.last_error,
            note=note,
        )

    async def export_rejections(self, path: Path) -> int:
        """Write every row not imported to `path` (CSV, UTF-8 with BOM for Excel)."""
        count = 0
        with path.open("w", newline="", encoding="utf-8-sig") as handle:
            writer = csv.writer(handle)
            writer.writerow(["row", "field", "reason", "identity", "stage"])
            async for rejection in self.journal.rejections(self.import_id):
                problem = _problem(rejection)
                writer.writerow(
                    [problem.row, problem.field, problem.reason, problem.identity, problem.stage]
                )
                count += 1
        return count


class _Chunker:
    """Cuts rows into chunks of at most `size`, never two rows with one `conflict` in a chunk."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._chunk: list[JournalRow] = []
        self._keys: set[str] = set()
        self._deferred: deque[JournalRow] = deque()

    def add(self, rows: Iterable[JournalRow]) -> Iterator[list[JournalRow]]:
        for row in rows:
            if row.conflict in self._keys:
                self._deferred.append(row)
                continue
            self._chunk.append(row)
            self._keys.add(row.conflict)
            if len(self._chunk) >= self.size:
                yield self._take()

    def flush(self) -> Iterator[list[JournalRow]]:
        while self._chunk or self._deferred:
            if self._chunk:
                yield self._take()
            else:
                yield from self.add([self._deferred.popleft()])

    def _take(self) -> list[JournalRow]:
        chunk, self._chunk, self._keys = self._chunk, [], set()
        deferred, self._deferred = self._deferred, deque()
        for row in deferred:  # rows set aside for a clash go first into the next chunk
            if row.conflict in self._keys or len(self._chunk) >= self.size:
                self._deferred.append(row)
            else:
                self._chunk.append(row)
                self._keys.add(row.conflict)
        return chunk


def _raise_if_cancelled() -> None:
    """`CancelledError` if this task was cancelled but the error never reached it.

    Seen under load on SIGTERM (server/cli_import.py cancels the import): a worker came back
    from a delivery still marked `cancelling()`, some await below having swallowed the
    error, and then waited on the queue for ever. A stop must stop every worker.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _update(row: JournalRow, outcome: RecordOutcome) -> RowUpdate:
    if outcome.status == "failed":
        reason = outcome.reason or "refused without a reason"
        return RowUpdate(row.number, "failed", "failed", outcome.vendor_id, reason)
    return RowUpdate(row.number, "confirmed", outcome.status, outcome.vendor_id)


def _duplicate(row: NewRow, earlier: int, vendor: BulkVendor) -> Rejection:
    field = "whatsApp" if vendor == "socialepoch" else "customerName"
    return Rejection(
        row.number,
        field,
        f"same customer as row {earlier} ({row.identity}): the vendor keeps one, so merge "
        "the two rows",
        row.identity,
    )


def _raw_identity(vendor: BulkVendor, record: Mapping[str, Any]) -> str:
    keys = ("whatsApp",) if vendor == "socialepoch" else ("entName", "customerName")
    return next((str(record[k]) for k in keys if record.get(k)), "")


def _problem(rejection: Rejection) -> RowProblem:
    return RowProblem(
        row=rejection.number,
        field=rejection.field,
        reason=rejection.reason,
        identity=rejection.identity,
        stage=rejection.stage,
    )


def _one_line(error: BaseException) -> str:
    return " ".join(part.strip() for part in str(error).splitlines() if part.strip())
