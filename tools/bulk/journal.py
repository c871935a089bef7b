"""The import journal: what became of every row of every bulk import, across runs and crashes.

An import is keyed by `ImportKey(vendor, tenant, fingerprint)` — the same file sent again to
the same account is the same import — and each of its rows by its number in the file and its
identity (the vendor's dedupe key: one row per identity). A row moves through

    pending ──send──> sent ──answer──> confirmed | failed
       ^                │
       └── not sent ────┘   (the request surely never reached the vendor)

`sent` means "the answer is unknown": a crash, a Ctrl-C or a lost answer leaves it there, and
the next run sends it again — safe because both vendors upsert by the identity. `failed` is
final: the vendor refused that record, so sending it again would fail again.

`ImportJournal` is the storage interface; `SqliteJournal` the embedded implementation (a
PostgreSQL one can follow: nothing here leaks SQL to callers).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

RowState = Literal["pending", "sent", "confirmed", "failed"]
UNSETTLED: tuple[RowState, ...] = ("pending", "sent")


@dataclass(frozen=True)
class ImportKey:
    """What makes two runs the same import."""

    vendor: str
    tenant: str
    fingerprint: str


@dataclass(frozen=True)
class ImportRecord:
    """An import as journaled: `planned` once every row of the input is in the journal."""

    id: int
    key: ImportKey
    source: str
    runs: int
    planned: bool
    rows_read: int
    created_at: float


@dataclass(frozen=True)
class NewRow:
    """A valid row to journal as `pending`."""

    number: int
    identity: str
    conflict: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class JournalRow:
    number: int
    identity: str
    conflict: str
    payload: dict[str, Any]
    state: RowState


@dataclass(frozen=True)
class RowUpdate:
    """A row's new state; `status` (created/updated/accepted/failed) and the rest when known."""

    number: int
    state: RowState
    status: str | None = None
    vendor_id: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Rejection:
    """A row not imported: refused by our checks (`stage` input) or by the vendor (vendor)."""

    number: int
    field: str
    reason: str
    identity: str = ""
    stage: Literal["input", "vendor"] = "input"


@dataclass(frozen=True)
class JournalCounts:
    """Rows of one import by state, and confirmed rows by the vendor's word."""

    pending: int = 0
    sent: int = 0
    confirmed: int = 0
    failed: int = 0
    rejected: int = 0
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def valid(self) -> int:
        return self.pending + self.sent + self.confirmed + self.failed

    @property
    def settled(self) -> int:
        return self.confirmed + self.failed


class ImportJournal(Protocol):
    """Durable per-row state of bulk imports. Every method commits before it returns."""

    async def open_import(self, key: ImportKey, *, source: str) -> ImportRecord:
        """The import for `key`, created when new."""
        ...

    async def find_import(self, key: ImportKey) -> ImportRecord | None: ...

    async def start_run(self, import_id: int) -> int:
        """Count one more run of the import; returns the run's number (1 for the first)."""
        ...

    async def add_rows(self, import_id: int, rows: Sequence[NewRow]) -> list[tuple[int, int]]:
        """Journal `rows` as pending (a row already journaled is left as it is).

        Returns `(row, earlier_row)` for each row whose identity an earlier row has.
        """
        ...

    async def add_rejections(self, import_id: int, rejections: Sequence[Rejection]) -> None: ...

    async def mark_planned(self, import_id: int, *, rows_read: int) -> None: ...

    async def unsettled(self, import_id: int, *, after: int, limit: int) -> list[JournalRow]:
        """Pending and sent rows numbered above `after`, in order, at most `limit`."""
        ...

    async def update_rows(self, import_id: int, updates: Sequence[RowUpdate]) -> None:
        """Apply `updates` together; a move to `sent` counts one more attempt."""
        ...

    async def counts(self, import_id: int) -> JournalCounts: ...

    def rejections(self, import_id: int) -> AsyncIterator[Rejection]:
        """Every rejected row (input problems, then vendor refusals), by row number."""
        ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS imports (
    id INTEGER PRIMARY KEY,
    vendor TEXT NOT NULL,
    tenant TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    source TEXT NOT NULL,
    runs INTEGER NOT NULL DEFAULT 0,
    planned INTEGER NOT NULL DEFAULT 0,
    rows_read INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    UNIQUE (vendor, tenant, fingerprint)
);
CREATE TABLE IF NOT EXISTS import_rows (
    import_id INTEGER NOT NULL REFERENCES imports (id),
    row_number INTEGER NOT NULL,
    identity TEXT NOT NULL,
    conflict TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'confirmed', 'failed')),
    status TEXT,
    vendor_id TEXT,
    reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL,
    PRIMARY KEY (import_id, row_number),
    UNIQUE (import_id, identity)
);
CREATE INDEX IF NOT EXISTS import_rows_by_state ON import_rows (import_id, state, row_number);
CREATE TABLE IF NOT EXISTS import_rejections (
    import_id INTEGER NOT NULL REFERENCES imports (id),
    row_number INTEGER NOT NULL,
    field TEXT NOT NULL,
    reason TEXT NOT NULL,
    identity TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (import_id, row_number, field, reason)
) WITHOUT ROWID;
"""


class SqliteJournal:
    """`ImportJournal` in a SQLite database (WAL: readers never block the writer).

    The statements are short, so they run on the event loop's thread.
    """

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self._db.executescript(_SCHEMA)

    async def open_import(self, key: ImportKey, *, source: str) -> ImportRecord:
        now = time.time()
        with self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO imports (vendor, tenant, fingerprint, source, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                (key.vendor, key.tenant, key.fingerprint, source, now, now),
            )
        found = await self.find_import(key)
        if found is None:  # pragma: no cover - inserted just above
            raise RuntimeError("the import vanished from the journal")
        return found

    async def find_import(self, key: ImportKey) -> ImportRecord | None:
        row = self._db.execute(
            "SELECT id, source, runs, planned, rows_read, created_at FROM imports"
            " WHERE vendor = ? AND tenant = ? AND fingerprint = ?",
            (key.vendor, key.tenant, key.fingerprint),
        ).fetchone()
        if row is None:
            return None
        import_id, source, runs, planned, rows_read, created_at = row
        return ImportRecord(import_id, key, source, runs, bool(planned), rows_read, created_at)

    async def start_run(self, import_id: int) -> int:
        with self._db:
            self._db.execute(
                "UPDATE imports SET runs = runs + 1, updated_at = ? WHERE id = ?",
                (time.time(), import_id),
            )
        (runs,) = self._db.execute("SELECT runs FROM imports WHERE id = ?", (import_id,)).fetchone()
        return int(runs)

    async def add_rows(self, import_id: int, rows: Sequence[NewRow]) -> list[tuple[int, int]]:
        now = time.time()
        with self._db:
            self._db.executemany(
                "INSERT OR IGNORE INTO import_rows (import_id, row_number, identity, conflict,"
                " payload, state, updated_at) VALUES (?, ?, ?, ?, ?, 'pending', ?)",
                [
                    (import_id, r.number, r.identity, r.conflict, _dump(r.payload), now)
                    for r in rows
                ],
            )
        return self._duplicates(import_id, rows)

    def _duplicates(self, import_id: int, rows: Sequence[NewRow]) -> list[tuple[int, int]]:
        owners: dict[str, int] = {}
        identities = [row.identity for row in rows]
        for start in range(0, len(identities), 500):
            part = identities[start : start + 500]
            marks = ",".join("?" * len(part))
            owners.update(
                self._db.execute(
                    "SELECT identity, row_number FROM import_rows"  # noqa: S608 - only "?"s
                    f" WHERE import_id = ? AND identity IN ({marks})",
                    (import_id, *part),
                ).fetchall()
            )
        return [(r.number, owners[r.identity]) for r in rows if owners[r.identity] != r.number]

    async def add_rejections(self, import_id: int, rejections: Sequence[Rejection]) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR IGNORE INTO import_rejections (import_id, row_number, field, reason,"
                " identity) VALUES (?, ?, ?, ?, ?)",
                [(import_id, r.number, r.field, r.reason, r.identity) for r in rejections],
            )

    async def mark_planned(self, import_id: int, *, rows_read: int) -> None:
        with self._db:
            self._db.execute(
                "UPDATE imports SET planned = 1, rows_read = ?, updated_at = ? WHERE id = ?",
                (rows_read, time.time(), import_id),
            )

    async def unsettled(self, import_id: int, *, after: int, limit: int) -> list[JournalRow]:
        found = self._db.execute(
            "SELECT row_number, identity, conflict, payload, state FROM import_rows"
            " WHERE import_id = ? AND state IN ('pending', 'sent') AND row_number > ?"
            " ORDER BY row_number LIMIT ?",
            (import_id, after, limit),
        ).fetchall()
        return [JournalRow(n, i, c, json.loads(p), s) for n, i, c, p, s in found]

    async def update_rows(self, import_id: int, updates: Sequence[RowUpdate]) -> None:
        now = time.time()
        with self._db:
            self._db.executemany(
                "UPDATE import_rows SET state = ?, status = coalesce(?, status),"
                " vendor_id = coalesce(?, vendor_id), reason = ?,"
                " attempts = attempts + (? = 'sent'), updated_at = ?"
                " WHERE import_id = ? AND row_number = ?",
                [
                    (u.state, u.status, u.vendor_id, u.reason, u.state, now, import_id, u.number)
                    for u in updates
                ],
            )

    async def counts(self, import_id: int) -> JournalCounts:
        by_state: dict[str, int] = dict.fromkeys(("pending", "sent", "confirmed", "failed"), 0)
        statuses: dict[str, int] = {}
        for state, status, count in self._db.execute(
            "SELECT state, status, count(*) FROM import_rows WHERE import_id = ?"
            " GROUP BY state, status",
            (import_id,),
        ):
            by_state[state] += count
            if state == "confirmed" and status:
                statuses[status] = statuses.get(status, 0) + count
        (rejected,) = self._db.execute(
            "SELECT count(DISTINCT row_number) FROM import_rejections WHERE import_id = ?",
            (import_id,),
        ).fetchone()
        return JournalCounts(**by_state, rejected=rejected, statuses=statuses)

    async def rejections(self, import_id: int) -> AsyncIterator[Rejection]:
        refused = self._db.execute(
            "SELECT row_number, field, reason, identity FROM import_rejections"
            " WHERE import_id = ? ORDER BY row_number",
            (import_id,),
        )
        for number, field_name, reason, identity in refused:
            yield Rejection(number, field_name, reason, identity)
        failed = self._db.execute(
            "SELECT row_number, identity, coalesce(reason, '') FROM import_rows"
            " WHERE import_id = ? AND state = 'failed' ORDER BY row_number",
            (import_id,),
        )
        for number, identity, reason in failed:
            yield Rejection(number, "", reason, identity, "vendor")


def _dump(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
