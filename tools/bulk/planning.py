"""Planning an import: stream the file, map its columns, check each row, and journal the
valid rows as pending and the others as rejected (row number, field, reason)::

    planner = Planner(scope, ColumnMap(vendor, mapping), callbacks, meter)
    rows_read = await planner.plan()          # the whole file, in batches of PLAN_BATCH

Rows are journaled in file order, batch by batch, so the sending can start on the first
batch while the rest is read: it calls `more()` when it finds nothing left to claim. A row
whose identity an earlier row has is rejected as a duplicate. Planning the same file again
(a resume of an import whose reading was cut short) leaves journaled rows as they are.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence

from tools.bulk.columns import ColumnMap
from tools.bulk.readers import (
    Records,
    Source,
    SourceRow,
    file_format,
    open_input,
    read_rows,
)
from tools.bulk.reporting import ProgressMeter
from tools.bulk.run import RowCallbacks, RunScope
from tools.errors import InputError, Problem
from tools.i18n import tr
from tools.storage.journal import NewRow, Rejection

PLAN_BATCH = 1000
"""Rows journaled together when nothing is being sent meanwhile."""
PLAN_BATCH_WHILE_SENDING = 50
"""Rows checked and journaled together while the sending runs on the same event loop.
Checking is CPU work that holds up the next request start: at 100 rows a batch of
SocialEpoch numbers (~10-20 ms) bunched starts enough for the simulator to refuse 4 of
1,000 calls (bench/bulk_import.py, 100,000 rows at 100 a call); at 25 the batches' journal
round trips made the reading slower than the sending (0.77 of the ceiling). At 50: 0.95,
none refused."""


def fingerprint(source: Source, vendor: str, mapping: Mapping[str, str], sheet: str | None) -> str:
    """sha256 of the file's bytes (the records' JSON) and of what changes how they are read."""
    digest = hashlib.sha256()
    options = {"vendor": vendor, "mapping": dict(sorted(mapping.items())), "sheet": sheet}
    digest.update(json.dumps(options, ensure_ascii=False).encode())
    if isinstance(source, Records):
        digest.update(source.digest())
        return digest.hexdigest()
    with open_input(source) as handle:  # a FIFO, a device or a missing file: InputError
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class Planner:
    """Reads, checks and journals the rows of one run's input (see the module docstring)."""

    def __init__(
        self,
        scope: RunScope,
        columns: ColumnMap,
        callbacks: RowCallbacks,
        progress: ProgressMeter,
        *,
        sheet: str | None = None,
    ) -> None:
        self.scope = scope
        self.columns = columns
        self.extended: list[str] = []
        """Columns sent as tenant extended fields (targets that send unknown columns)."""
        self._callbacks = callbacks
        self._progress = progress
        self._sheet = sheet
        self._valid = 0
        self._ended = False
        self._journaled = asyncio.Event()

    async def plan(self, batch_size: int = PLAN_BATCH) -> int:
        """Journal every row of the input, then mark the import planned; the rows read.

        `InputError` for an unreadable file, a header without rows, or columns the target
        cannot take (raised before any row is journaled)."""
        try:
            return await self._plan(batch_size)
        finally:
            self._ended = True
            self._journaled.set()

    async def more(self) -> bool:
        """Wait until more rows are journaled: False at once when the planning has ended."""
        if self._ended:
            return False
        await self._journaled.wait()
        self._journaled.clear()
        return True

    async def refuse_invalid(self) -> None:
        """`InputError` listing every rejected row (by record index for records in memory)."""
        in_memory = isinstance(self.scope.source, Records)
        problems = [
            Problem(r.field or "record", r.reason, r.number - 1)
            if in_memory
            else Problem(
                tr("row {number}: {field}", number=r.number, field=r.field or tr("row")), r.reason
            )
            async for r in self.scope.journal.rejections(self.scope.import_id)
        ]
        raise InputError(problems, summary=tr("invalid customers, nothing was sent"))

    async def _plan(self, batch_size: int) -> int:
        source = self.scope.source
        rows = read_rows(source, sheet=self._sheet)
        first = next(rows, None)
        if first is None:
            raise InputError(
                [Problem("file", tr("{name} has a header but no rows", name=source.name))]
            )
        self.scope.target.check_columns(
            self.columns.unknown_columns(first.cells), file_format(source)
        )
        read = 0
        batch: list[SourceRow] = []
        for row in itertools.chain([first], rows):
            read += 1
            batch.append(row)
            if len(batch) >= batch_size:
                await self._plan_batch(batch, read)
                batch = []
        await self._plan_batch(batch, read)
        await self.scope.journal.mark_planned(self.scope.import_id, rows_read=read)
        return read

    async def _plan_batch(self, batch: Sequence[SourceRow], read: int) -> None:
        valid: list[NewRow] = []
        rejected: list[Rejection] = []
        for row in batch:
            self._prepare(row, valid, rejected)
        journal, import_id = self.scope.journal, self.scope.import_id
        duplicates = await journal.add_rows(import_id, valid)
        by_number = {row.number: row for row in valid}
        for number, earlier in duplicates:
            rejected.append(self._duplicate(by_number[number], earlier))
        if rejected:
            await journal.add_rejections(import_id, rejected)
            self._progress.rejected(len(rejected))
        self._valid += len(valid) - len(duplicates)
        self._progress.planned(self._valid)
        self._progress.read(read)
        self._journaled.set()
        await asyncio.sleep(0)  # planning is CPU work: let a server's other requests run

    def _prepare(self, row: SourceRow, valid: list[NewRow], rejected: list[Rejection]) -> None:
        if row.error is not None:
            rejected.append(Rejection(row.number, "row", row.error))
            return
        target = self.scope.target
        record = self.columns.record(row.cells)
        if target.sends_unknown_columns:
            self.extended = self.columns.unmatched  # kept by the map, each column once
        try:
            prepared = target.prepare(record)
        except InputError as exc:
            identity = target.identity_of(record)
            rejected += [Rejection(row.number, p.field, p.message, identity) for p in exc.problems]
            return
        valid.append(NewRow(row.number, prepared.identity, prepared.conflict, prepared.payload))
        if self._callbacks.on_valid is not None:
            self._callbacks.on_valid(row.number, prepared.payload)

    def _duplicate(self, row: NewRow, earlier: int) -> Rejection:
        return Rejection(
            row.number,
            self.scope.target.identity_field,
            tr(
                "same customer as row {earlier} ({identity}): the vendor keeps one, so merge "
                "the two rows",
                earlier=earlier,
                identity=row.identity,
            ),
            row.identity,
        )
