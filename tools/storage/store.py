"""The journal and the audit log of one database, as one `Store`, and the SQLite one.

Both backends (`sqlite_store` here, `tools.storage.postgres.postgres_store`) give the same
`journal` and `audit` interfaces, so callers never know which one they have; which one the
settings ask for is `tools.storage.configured.open_store`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from tools.aio import AsyncClosing
from tools.storage.audit import AuditLog, SqliteAuditLog
from tools.storage.journal import ImportJournal, SqliteJournal
from tools.storage.sqlite import SqliteThread

DEFAULT_LEASE_SECONDS = 30.0
_BUSY_TIMEOUT_MS = 10_000


@dataclass
class Store(AsyncClosing):
    """The import journal and the audit log, and how to close them.

    `location` says where they are (a file, or a PostgreSQL URL without its password);
    `lease_seconds` is how long an import run's claim on rows outlives its last heartbeat.
    """

    journal: ImportJournal
    audit: AuditLog
    location: str
    _close: Callable[[], Awaitable[None]]
    lease_seconds: float = DEFAULT_LEASE_SECONDS

    async def aclose(self) -> None:
        await self._close()


def sqlite_store(path: Path | str) -> Store:
    """A store in the SQLite file `path` (":memory:" for a throwaway one)."""
    # The default isolation level opens a transaction before a write; `with connection:`
    # commits it, so each journal call is one transaction (not one per row).
    connection = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    # WAL: a reader (another crmops process, a progress check) never blocks the writer.
    # synchronous=NORMAL may lose the last commits on power loss, never corrupt: a lost
    # "confirmed" only makes the next run resend rows, which the vendors upsert.
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA foreign_keys=ON")

    database = SqliteThread(connection)  # from here on, only its thread uses the connection
    return Store(
        journal=SqliteJournal(database),
        audit=SqliteAuditLog(database),
        location=str(path),
        _close=database.aclose,
    )
