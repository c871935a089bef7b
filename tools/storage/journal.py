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

Several runs of one import (replicas, or a resume while the first run still goes) share the
rows through `claim`: it moves rows to `sent`, held by the claiming run (its `owner`) for a
lease, until their next update. A run renews the lease of its rows while it sends (`renew`)
and gives it up when it stops (`release`). Rows under a live lease are nobody else's; rows
whose lease ran out (a killed run) or ended (answered, given up) are free again: a `sent`
one is "answer unknown" and goes out again. So two live runs never send one row twice, and
a dead run's rows go out again after at most one lease. A run claims each row at most once
(a row it gave back waits for another run). The lease is on the row itself (`held_by`,
`held_until`), so a claim decides from the row alone, atomic on every backend.

What the journal stores about the vendor account, the source and why a row failed passes
`tools.redaction.redact` (in `ImportKey`, `RowUpdate`, `Rejection` and `open_import`): a
tenant names the base URL, which may carry a password, and a vendor's refusal may echo one.

`ImportJournal` is the storage interface; `SqliteJournal` the embedded implementation and
`tools.storage.postgres.PostgresJournal` the shared one: nothing here leaks SQL to callers.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from tools.redaction import redact
from tools.storage.sqlite import SqliteThread

RowState = Literal["pending", "sent", "confirmed", "failed"]
_V = TypeVar("_V")


@dataclass(frozen=True)
class ImportKey:
    """What makes two runs the same import."""

    vendor: str
    tenant: str
    fingerprint: str

    def __post_init__(self) -> None:
        # The tenant names the base URL (`id@https://host`), whose userinfo may hold a password.
        object.__setattr__(self, "tenant", redact(self.tenant))


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

    def __post_init__(self) -> None:
        if self.reason:
            object.__setattr__(self, "reason", redact(self.reason))


@dataclass(frozen=True)
class Rejection:
    """A row not imported: refused by our checks (`stage` input) or by the vendor (vendor)."""

    number: int
    field: str
    reason: str
    identity: str = ""
    stage: Literal["input", "vendor"] = "input"

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", redact(self.reason))


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

    async def update_rows(self, import_id: int, updates: Sequence[RowUpdate]) -> None:
        """Apply `updates` together; a move to `sent` counts one more attempt.

        An updated row is no longer held: a row moved back to `sent` (answer unknown) or
        `pending` may be claimed again at once by another run.
        """
        ...

    async def claim(
        self, import_id: int, *, owner: str, limit: int, lease_seconds: float
    ) -> list[JournalRow]:
        """Take at most `limit` rows to send for the run `owner`, in row order, atomically.

        The rows are pending rows and sent rows with no live lease, that `owner` has not
        claimed before; they come back `sent` (one more attempt), held by `owner` for
        `lease_seconds`. Concurrent claims never return the same row.
        """
        ...

    async def renew(self, owner: str, *, lease_seconds: float) -> None:
        """Hold `owner`'s rows for `lease_seconds` more (the run's heartbeat)."""
        ...

    async def release(self, owner: str) -> None:
        """End the lease of `owner`'s rows: those still `sent` may be claimed at once."""
        ...

    async def held_elsewhere(self, import_id: int, *, owner: str) -> int:
        """Rows of the import being sent right now by another live run than `owner`."""
        ...

    async def counts(self, import_id: int) -> JournalCounts: ...

    def rejections(self, import_id: int) -> AsyncIterator[Rejection]:
        """Every rejected row (input problems, then vendor refusals), by row number."""
        ...


SCHEMA_VERSION = 2
"""1: the first journal; 2: rows claimed by a run (`held_by`) for a lease (`held_until`)."""

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
    held_by TEXT,
    held_until REAL,
    PRIMARY KEY (import_id, row_number),
    UNIQUE (import_id, identity)
);
CREATE INDEX IF NOT EXISTS import_rows_by_state ON import_rows (import_id, state, row_number);
CREATE INDEX IF NOT EXISTS import_rows_unsettled ON import_rows (import_id, row_number)
    WHERE state IN ('pending', 'sent');
CREATE TABLE IF NOT EXISTS import_rejections (
    import_id INTEGER NOT NULL REFERENCES imports (id),
    row_number INTEGER NOT NULL,
    field TEXT NOT NULL,
    reason TEXT NOT NULL,
    identity TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (import_id, row_number, field, reason)
) WITHOUT ROWID;
"""


_HELD_INDEX = (
    "CREATE INDEX IF NOT EXISTS import_rows_held ON import_rows (held_by)"
    " WHERE held_until IS NOT NULL"
)


class SqliteJournal:
    """`ImportJournal` in a SQLite database (WAL: readers never block the writer).

    Every method is one transaction on the database's own thread (`SqliteThread`), so a
    slow disk or another process's lock never holds the event loop.
    """

    def __init__(self, database: SqliteThread) -> None:
        self._db = database
        database.connection.executescript(_SCHEMA)
        with _immediate(database.connection):
            _migrate(database.connection)

    async def open_import(self, key: ImportKey, *, source: str) -> ImportRecord:
        return await self._db.run(_open_import, key, redact(source))

    async def find_import(self, key: ImportKey) -> ImportRecord | None:
        return await self._db.run(_find_import, key)

    async def start_run(self, import_id: int) -> int:
        return await self._db.run(_start_run, import_id)

    async def add_rows(self, import_id: int, rows: Sequence[NewRow]) -> list[tuple[int, int]]:
        return await self._db.run(_add_rows, import_id, rows)

    async def add_rejections(self, import_id: int, rejections: Sequence[Rejection]) -> None:
        await self._db.run(_add_rejections, import_id, rejections)

    async def mark_planned(self, import_id: int, *, rows_read: int) -> None:
        await self._db.run(_mark_planned, import_id, rows_read)

    async def update_rows(self, import_id: int, updates: Sequence[RowUpdate]) -> None:
        await self._db.run(_update_rows, import_id, updates)

    async def claim(
        self, import_id: int, *, owner: str, limit: int, lease_seconds: float
    ) -> list[JournalRow]:
        return await self._db.run(_claim, import_id, owner, limit, lease_seconds)

    async def renew(self, owner: str, *, lease_seconds: float) -> None:
        await self._db.run(_renew, owner, lease_seconds)

    async def release(self, owner: str) -> None:
        await self._db.run(_release, owner)

    async def held_elsewhere(self, import_id: int, *, owner: str) -> int:
        return await self._db.run(_held_elsewhere, import_id, owner)

    async def counts(self, import_id: int) -> JournalCounts:
        return await self._db.run(_counts, import_id)

    async def rejections(self, import_id: int) -> AsyncIterator[Rejection]:
        refused = await self._db.run(_execute, _REFUSED, (import_id,))
        while page := await self._db.run(_fetch_page, refused):
            for number, field_name, reason, identity in page:
                yield Rejection(number, field_name, reason, identity)
        failed = await self._db.run(_execute, _FAILED, (import_id,))
        while page := await self._db.run(_fetch_page, failed):
            for number, identity, reason in page:
                yield Rejection(number, "", reason, identity, "vendor")


# --- the transactions, each run on the database's thread ----------------------------------
@contextmanager
def _immediate(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction that takes the database's write lock at once, so what it
    reads cannot change under it (another process waits up to the busy timeout)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.rollback()
        raise
    db.commit()


def _migrate(db: sqlite3.Connection) -> None:
    columns = {row[1] for row in db.execute("PRAGMA table_info(import_rows)")}
    if "held_by" not in columns:  # a version 1 file
        db.execute("ALTER TABLE import_rows ADD COLUMN held_by TEXT")
        db.execute("ALTER TABLE import_rows ADD COLUMN held_until REAL")
    db.execute(_HELD_INDEX)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _open_import(db: sqlite3.Connection, key: ImportKey, source: str) -> ImportRecord:
    now = time.time()
    with db:
        db.execute(
            "INSERT OR IGNORE INTO imports (vendor, tenant, fingerprint, source, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            (key.vendor, key.tenant, key.fingerprint, source, now, now),
        )
    found = _find_import(db, key)
    if found is None:  # pragma: no cover - inserted just above
        raise RuntimeError("the import vanished from the journal")
    return found


def _find_import(db: sqlite3.Connection, key: ImportKey) -> ImportRecord | None:
    row = db.execute(
        "SELECT id, source, runs, planned, rows_read, created_at FROM imports"
        " WHERE vendor = ? AND tenant = ? AND fingerprint = ?",
        (key.vendor, key.tenant, key.fingerprint),
    ).fetchone()
    if row is None:
        return None
    import_id, source, runs, planned, rows_read, created_at = row
    return ImportRecord(import_id, key, source, runs, bool(planned), rows_read, created_at)


def _start_run(db: sqlite3.Connection, import_id: int) -> int:
    with db:
        (runs,) = db.execute(
            "UPDATE imports SET runs = runs + 1, updated_at = ? WHERE id = ? RETURNING runs",
            (time.time(), import_id),
        ).fetchone()
    return int(runs)


def _add_rows(
    db: sqlite3.Connection, import_id: int, rows: Sequence[NewRow]
) -> list[tuple[int, int]]:
    now = time.time()
    with db:
        db.executemany(
            "INSERT OR IGNORE INTO import_rows (import_id, row_number, identity, conflict,"
            " payload, state, updated_at) VALUES (?, ?, ?, ?, ?, 'pending', ?)",
            [(import_id, r.number, r.identity, r.conflict, _dump(r.payload), now) for r in rows],
        )
    return _duplicates(db, import_id, rows)


_ROWS_OF_IDENTITIES = (
    "SELECT identity, row_number FROM import_rows WHERE import_id = ? AND identity IN ({marks})"
)


def _duplicates(
    db: sqlite3.Connection, import_id: int, rows: Sequence[NewRow]
) -> list[tuple[int, int]]:
    owners: dict[str, int] = {}
    identities = [row.identity for row in rows]
    for part in _parts(identities):
        found = db.execute(_ROWS_OF_IDENTITIES.format(marks=_marks(part)), (import_id, *part))
        owners.update(found.fetchall())
    return [(r.number, owners[r.identity]) for r in rows if owners[r.identity] != r.number]


def _add_rejections(
    db: sqlite3.Connection, import_id: int, rejections: Sequence[Rejection]
) -> None:
    with db:
        db.executemany(
            "INSERT OR IGNORE INTO import_rejections (import_id, row_number, field, reason,"
            " identity) VALUES (?, ?, ?, ?, ?)",
            [(import_id, r.number, r.field, r.reason, r.identity) for r in rejections],
        )


def _mark_planned(db: sqlite3.Connection, import_id: int, rows_read: int) -> None:
    with db:
        db.execute(
            "UPDATE imports SET planned = 1, rows_read = ?, updated_at = ? WHERE id = ?",
            (rows_read, time.time(), import_id),
        )


_UPDATE_ROWS = (
    "UPDATE import_rows SET state = ?, status = coalesce(?, status),"
    " vendor_id = coalesce(?, vendor_id), reason = ?,"
    " attempts = attempts + (? = 'sent'), updated_at = ?, held_until = NULL"
    " WHERE import_id = ? AND row_number IN ({marks})"
)


def _update_rows(db: sqlite3.Connection, import_id: int, updates: Sequence[RowUpdate]) -> None:
    now = time.time()
    with db:
        for (state, status, vendor_id, reason), numbers in _alike(updates).items():
            for part in _parts(numbers):
                db.execute(
                    _UPDATE_ROWS.format(marks=_marks(part)),
                    (state, status, vendor_id, reason, state, now, import_id, *part),
                )


def _alike(
    updates: Sequence[RowUpdate],
) -> dict[tuple[str, str | None, str | None, str | None], list[int]]:
    """Row numbers by the values they get: a chunk's rows mostly end alike ("confirmed,
    created"), and one statement for them all is far cheaper than one per row."""
    groups: dict[tuple[str, str | None, str | None, str | None], list[int]] = {}
    for update in updates:
        values = (update.state, update.status, update.vendor_id, update.reason)
        groups.setdefault(values, []).append(update.number)
    return groups


def _parts(values: Sequence[_V], size: int = 500) -> Iterator[Sequence[_V]]:
    """`values` in slices small enough for the parameters of one statement."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _marks(values: Sequence[object]) -> str:
    """As many "?" as `values`, for an `IN ({marks})` (never a value in the SQL text)."""
    return ",".join("?" * len(values))


_HOLD_ROWS = (
    "UPDATE import_rows SET state = 'sent', held_by = ?, held_until = ?,"
    " attempts = attempts + 1, updated_at = ? WHERE import_id = ? AND row_number IN ({marks})"
)


def _claim(
    db: sqlite3.Connection, import_id: int, owner: str, limit: int, lease_seconds: float
) -> list[JournalRow]:
    now = time.time()
    with _immediate(db):  # the write lock first: no other process claims meanwhile
        found = db.execute(
            "SELECT row_number, identity, conflict, payload FROM import_rows"
            " WHERE import_id = ? AND state IN ('pending', 'sent')"
            " AND (held_until IS NULL OR held_until <= ?)"
            " AND (held_by IS NULL OR held_by <> ?)"
            " ORDER BY row_number LIMIT ?",
            (import_id, now, owner, limit),
        ).fetchall()
        for part in _parts([number for number, *_ in found]):
            db.execute(
                _HOLD_ROWS.format(marks=_marks(part)),
                (owner, now + lease_seconds, now, import_id, *part),
            )
    return [JournalRow(n, i, c, json.loads(p), "sent") for n, i, c, p in found]


def _renew(db: sqlite3.Connection, owner: str, lease_seconds: float) -> None:
    with db:
        db.execute(
            "UPDATE import_rows SET held_until = ? WHERE held_by = ? AND held_until IS NOT NULL",
            (time.time() + lease_seconds, owner),
        )


def _release(db: sqlite3.Connection, owner: str) -> None:
    with db:
        db.execute(
            "UPDATE import_rows SET held_until = NULL WHERE held_by = ? AND held_until IS NOT NULL",
            (owner,),
        )


def _held_elsewhere(db: sqlite3.Connection, import_id: int, owner: str) -> int:
    (held,) = db.execute(
        "SELECT count(*) FROM import_rows WHERE held_until > ? AND held_by <> ?"
        " AND import_id = ? AND state = 'sent'",
        (time.time(), owner, import_id),
    ).fetchone()
    return int(held)


def _counts(db: sqlite3.Connection, import_id: int) -> JournalCounts:
    by_state: dict[str, int] = dict.fromkeys(("pending", "sent", "confirmed", "failed"), 0)
    statuses: dict[str, int] = {}
    for state, status, count in db.execute(
        "SELECT state, status, count(*) FROM import_rows WHERE import_id = ?"
        " GROUP BY state, status",
        (import_id,),
    ):
        by_state[state] += count
        if state == "confirmed" and status:
            statuses[status] = statuses.get(status, 0) + count
    (rejected,) = db.execute(
        "SELECT count(DISTINCT row_number) FROM import_rejections WHERE import_id = ?",
        (import_id,),
    ).fetchone()
    return JournalCounts(**by_state, rejected=rejected, statuses=statuses)


_REFUSED = (
    "SELECT row_number, field, reason, identity FROM import_rejections"
    " WHERE import_id = ? ORDER BY row_number"
)
_FAILED = (
    "SELECT row_number, identity, coalesce(reason, '') FROM import_rows"
    " WHERE import_id = ? AND state = 'failed' ORDER BY row_number"
)


def _execute(db: sqlite3.Connection, query: str, parameters: tuple[object, ...]) -> sqlite3.Cursor:
    return db.execute(query, parameters)


def _fetch_page(_: sqlite3.Connection, cursor: sqlite3.Cursor) -> list[Any]:
    return cursor.fetchmany(_PAGE)


_PAGE = 1000


def _dump(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
