"""Where the journal and the audit log live: one database, opened once per process::

    async with open_store(settings.crmops) as store:
        await bulk_import(services, store=store, ...)
        await store.audit.record(...)

The file is `CRMOPS_DB`, else `crmops.db` in the user's data directory (`data_dir()`).
`Store` is the seam for other backends: a PostgreSQL store would provide the same `journal`
and `audit` interfaces.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

from tools.aio import AsyncClosing
from tools.bulk.audit import AuditLog, SqliteAuditLog
from tools.bulk.journal import ImportJournal, SqliteJournal
from tools.errors import ConfigurationError
from tools.settings import CrmopsSettings

DB_NAME = "crmops.db"
_BUSY_TIMEOUT_MS = 10_000


@dataclass
class Store(AsyncClosing):
    """The import journal and the audit log, and how to close them."""

    journal: ImportJournal
    audit: AuditLog
    location: str
    _connection: sqlite3.Connection

    async def aclose(self) -> None:
        self._connection.close()


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
    """Open (creating when new) the SQLite database of `settings`."""
    path = db_path(settings)
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
    connection = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_MS / 1000)
    # WAL: a reader (another crmops process, a progress check) never blocks the writer.
    # synchronous=NORMAL may lose the last commits on power loss, never corrupt: a lost
    # "confirmed" only makes the next run resend rows, which the vendors upsert.
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA foreign_keys=ON")
    return Store(
        journal=SqliteJournal(connection),
        audit=SqliteAuditLog(connection),
        location=str(path),
        _connection=connection,
    )
