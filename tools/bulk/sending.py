"""Sending an import's journaled rows: claim a chunk, deliver it, journal each row's outcome::

    sender = Sender(scope, concurrency=16, progress=meter, on_outcome=None)
    await sender.send_all(supply=planner)     # until nothing is left to claim
    sender.figures                            # requests, rows sent, seconds, why it stopped

Chunks of the vendor's batch size go out concurrently (`concurrency` in flight) through the
client's per-API rate limiter and pooled connections. Each chunk is claimed from the journal
(`sent`, held by this run) before the request and journaled `confirmed`/`failed` from the
answer. A chunk the vendor refuses as a whole is split until the refused rows are found.
Runs of one import at the same time claim different rows; a run ends when no other live run
still sends any (their rows may come back unanswered, or their lease run out).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Literal, Protocol

from tools.bulk.reporting import ProgressMeter, RunFigures
from tools.bulk.run import OutcomeCallback, RunScope
from tools.errors import (
    AuthenticationError,
    CrmopsError,
    InvalidRequestError,
    RateLimitedError,
    RequestRejectedError,
    StorageUnavailableError,
    VendorError,
    VendorUnavailableError,
)
from tools.models import RecordOutcome
from tools.storage.audit import AuditEntry, Outcome
from tools.storage.journal import JournalRow, RowUpdate
from tools.text import one_line

DEFAULT_CONCURRENCY = 16
"""Requests in flight; at 50 req/s the ceiling needs 50 x latency (5 at 100 ms)."""
MAX_FAILED_CHUNKS_IN_A_ROW = 5
OTHERS_POLL_SECONDS = 0.5
"""How often a run that has nothing left to claim checks on rows other runs are sending."""
CHUNKS_AHEAD = 2
"""Chunks claimed ahead of the workers (see `Sender.send_all`)."""

_Queue = asyncio.Queue[list[JournalRow] | None]


class RowSupply(Protocol):
    """Where journaled rows come from while they are sent (the planning, still reading)."""

    async def more(self) -> bool:
        """Wait until more rows are journaled; False when no more will be."""
        ...


class Sender:
    """Sends the rows of one run (see the module docstring); `figures` says what it did."""

    def __init__(
        self,
        scope: RunScope,
        *,
        concurrency: int,
        progress: ProgressMeter,
        on_outcome: OutcomeCallback | None,
        figures: RunFigures,
    ) -> None:
        self.scope = scope
        self.figures = figures
        self._concurrency = concurrency
        self._progress = progress
        self._on_outcome = on_outcome
        # Who holds the rows this run claims (see journal): the host and process, for people.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._started = time.monotonic()
        self._unsent: set[int] = set()
        self._failed_in_a_row = 0
        self._first_slots = 0

    async def send_all(self, supply: RowSupply | None = None) -> None:
        """Send every row left to send, and those `supply` journals meanwhile.

        Raises the vendor's `AuthenticationError`/`RequestRejectedError` (the rows stay
        resumable); other failures end in `figures.stopped` / `figures.last_error`."""
        # Claimed rows wait here held by this run; a claim takes milliseconds, so a couple
        # of chunks ahead keep every worker fed. More would hold rows other replicas could
        # send, and make each claim step over them.
        queue: _Queue = asyncio.Queue(maxsize=CHUNKS_AHEAD)
        self._started = time.monotonic()
        self._progress.sending(await self.scope.journal.counts(self.scope.import_id))
        try:
            async with self._holding_rows(), asyncio.TaskGroup() as group:
                group.create_task(self._produce(queue, supply))
                for _ in range(self._concurrency):
                    group.create_task(self._work(queue))
        except* CrmopsError as failures:
            raise failures.exceptions[0] from None
        finally:
            self.figures.send_seconds = time.monotonic() - self._started

    async def _produce(self, queue: _Queue, supply: RowSupply | None) -> None:
        # Rows are claimed (journaled `sent`, held by this run) a chunk's worth at a time, so
        # replicas running this import together each send different rows, and no run holds
        # rows it will not send soon.
        chunker = _Chunker(self.scope.target.batch_size)
        while self.figures.stopped is None:
            page = await self._claim()
            _raise_if_cancelled()
            if page:
                for chunk in chunker.add(page):
                    await queue.put(chunk)
                continue
            if supply is not None and await supply.more():
                continue  # the file is still being read: claim what it journaled
            for chunk in chunker.flush():
                await queue.put(chunk)
            if not await self._others_sending():
                break
        for _ in range(self._concurrency):
            await queue.put(None)

    async def _claim(self) -> list[JournalRow]:
        page = await self.scope.journal.claim(
            self.scope.import_id,
            owner=self.owner,
            limit=self.scope.target.batch_size,
            lease_seconds=self.scope.store.lease_seconds,
        )
        self._unsent.update(row.number for row in page)
        return page

    async def _others_sending(self) -> bool:
        """Whether other runs still send rows of this import, after a pause to let them:
        their rows may come back unanswered, or their lease run out, and be ours to send."""
        journal = self.scope.journal
        if await journal.held_elsewhere(self.scope.import_id, owner=self.owner) == 0:
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
                await self.scope.journal.update_rows(self.scope.import_id, unsent)
                await self.scope.journal.release(self.owner)

    async def _renew_lease(self) -> None:
        lease = self.scope.store.lease_seconds
        while True:
            await asyncio.sleep(lease / 3)
            await self.scope.journal.renew(self.owner, lease_seconds=lease)

    async def _work(self, queue: _Queue) -> None:
        chunk = await queue.get()  # none for this worker (a small import): done at once
        if chunk is not None:
            await self._await_first_slot()
        while chunk is not None:
            if self.figures.stopped is None:
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
        remaining = self._started + slot / self.scope.target.pace - time.monotonic()
        if remaining > 0:
            await asyncio.sleep(remaining)

    async def _deliver(self, chunk: Sequence[JournalRow]) -> None:
        """Send one chunk and journal what became of each of its rows."""
        self._unsent.difference_update(row.number for row in chunk)  # claimed: already `sent`
        self.figures.requests += 1
        self.figures.rows_sent += len(chunk)
        try:
            outcomes = await self.scope.target.send([row.payload for row in chunk])
        except InvalidRequestError as exc:
            await self._refused_as_a_whole(chunk, exc)
            return
        except (VendorError, StorageUnavailableError) as exc:
            # StorageUnavailableError: the shared rate limiter's or token's Redis is down.
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
        reason = one_line(str(error))
        await self.scope.journal.update_rows(
            self.scope.import_id, [RowUpdate(chunk[0].number, "failed", "failed", reason=reason)]
        )
        self._progress.settled(1, failed=1)
        self._tell(
            chunk[0].number, RecordOutcome(key=chunk[0].identity, status="failed", reason=reason)
        )
        await self._audit_chunk(chunk, "failed", reason)

    async def _unanswered(
        self, chunk: Sequence[JournalRow], error: VendorError | StorageUnavailableError
    ) -> None:
        # Our own backend down before the request (Redis: rate limit, token): never sent.
        never_arrived = isinstance(error, RateLimitedError | StorageUnavailableError) or (
            isinstance(error, VendorUnavailableError) and not error.request_sent
        )
        # Refused for who we are, not for what we sent: no later chunk can do better.
        final = isinstance(error, AuthenticationError | RequestRejectedError)
        state: Literal["pending", "sent"] = "pending" if never_arrived or final else "sent"
        reason = one_line(str(error))
        self.figures.last_error = reason
        await self.scope.journal.update_rows(
            self.scope.import_id, [RowUpdate(row.number, state, reason=reason) for row in chunk]
        )
        await self._audit_chunk(chunk, "failed" if never_arrived or final else "unknown", reason)
        if final:
            self.figures.stopped = reason
            raise error
        self._failed_in_a_row += 1
        if self._failed_in_a_row >= MAX_FAILED_CHUNKS_IN_A_ROW:
            self.figures.stopped = f"{self._failed_in_a_row} calls in a row failed; last: {reason}"

    async def _settle(self, chunk: Sequence[JournalRow], outcomes: list[RecordOutcome]) -> None:
        if len(outcomes) != len(chunk):
            await self._unanswered_count(chunk, len(outcomes))
            return
        self._failed_in_a_row = 0
        updates = [_update(row, outcome) for row, outcome in zip(chunk, outcomes, strict=True)]
        await self.scope.journal.update_rows(self.scope.import_id, updates)
        failed = sum(update.state == "failed" for update in updates)
        self._progress.settled(len(chunk), failed=failed)
        for row, outcome in zip(chunk, outcomes, strict=True):
            self._tell(row.number, outcome)
        await self._audit_chunk(chunk, "partial" if failed else "ok", None)

    async def _unanswered_count(self, chunk: Sequence[JournalRow], got: int) -> None:
        reason = f"the vendor answered {got} results for {len(chunk)} records"
        await self.scope.journal.update_rows(
            self.scope.import_id, [RowUpdate(row.number, "sent", reason=reason) for row in chunk]
        )
        await self._audit_chunk(chunk, "unknown", reason)

    def _tell(self, number: int, outcome: RecordOutcome) -> None:
        if self._on_outcome is not None:
            self._on_outcome(number, outcome)

    async def _audit_chunk(
        self, chunk: Sequence[JournalRow], outcome: Outcome, error: str | None
    ) -> None:
        await self.scope.store.audit.record(
            AuditEntry(
                actor=self.scope.actor,
                vendor=self.scope.target.vendor,
                operation="import_customer",  # the tool table's name, on every surface
                target=self.scope.label,
                sent={
                    "rows": [row.number for row in chunk],
                    "identities": [row.identity for row in chunk],
                },
                outcome=outcome,
                error=error,
            )
        )


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
