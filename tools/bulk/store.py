"""Where the journal and the audit log live: one database, opened once per process::

    async with open_store(settings.crmops) as store:
        await bulk_import(services, store=store, ...)
        await store.audit.record(...)

`CRMOPS_DATABASE_URL=postgresql://...` puts them in PostgreSQL, shared by every replica
(`tools.bulk.postgres`); otherwise they are in the SQLite file `CRMOPS_DB`, else `crmops.db`
in the user's data directory (`data_dir()`). Both backends give the same `journal` and
`audit` interfaces, so callers never know which one they have.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from tools.aio import AsyncClosing
from tools.bulk.audit import AuditLog, SqliteAuditLog
from tools.bulk.journal import ImportJournal, SqliteJournal
from tools.bulk.sqlite import SqliteThread
from tools.errors import ConfigurationError
from tools.settings import CrmopsSettings

DB_NAME = "crmops.db"
DEFAULT_LEASE_SECONDS = 30.0
_BUSY_TIMEOUT_MS = 10_000
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


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


def data_dir() -> Path:
    """The user's data directory for crmops (XDG on Linux, the platform's own elsewhere)."""
    home = Path.home()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share")
    return base / "crmops"


def db_path(settings: CrmopsSettings) -> Path:
    """`CRMOPS_DB`, else `crmops.db` in `data_dir()`."""
    return settings.db if settings.db is not None else data_dir() / DB_NAME


def open_store(settings: CrmopsSettings) -> Store:
    """Open the store of `settings`: PostgreSQL for a `postgresql://` `CRMOPS_DATABASE_URL`,
    else the SQLite file (created when new).

    A PostgreSQL store connects, and creates its tables, when first used: an unreachable
    server is a `ConfigurationError` then, naming the URL without its password.
    """
    url = settings.database_url.get_secret_value() if settings.database_url else ""
    if url.startswith(POSTGRES_SCHEMES):
        # psycopg takes ~0.15 s to import: only a PostgreSQL store pays for it.
        from tools.bulk.postgres import postgres_store  # noqa: PLC0415

        store = postgres_store(url)
    elif url:
        raise ConfigurationError(
            vendor="crmops",
            detail="CRMOPS_DATABASE_URL must start with postgresql:// (unset it to use the "
            "SQLite file CRMOPS_DB)",
        )
    else:
        store = _open_sqlite(db_path(settings))
    store.lease_seconds = settings.import_lease
    return store


def _open_sqlite(path: Path) -> Store:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return sqlite_store(path)
    except (OSError, sqlite3.Error) as exc:
        raise ConfigurationError(
            vendor="crmops",
            detail=f"cannot open the database {path} ({exc}); set CRMOPS_DB to a writable file",
        ) from exc


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
