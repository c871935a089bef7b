"""The store the settings configure, opened once per process::

    async with open_store(settings.crmops) as store:
        await bulk_import(services, store=store, ...)
        await store.audit.record(...)

`CRMOPS_DATABASE_URL=postgresql://...` puts the journal and the audit log in PostgreSQL,
shared by every replica (`tools.storage.postgres`); otherwise they are in the SQLite file
`CRMOPS_DB`, else `crmops.db` in the user's data directory (`data_dir()`).
"""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path

from tools.errors import ConfigurationError, StorageUnavailableError
from tools.settings import CrmopsSettings
from tools.storage.sqlite import storage_error
from tools.storage.store import Store, sqlite_store

DB_NAME = "crmops.db"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


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
    server is a `StorageUnavailableError` then, a refused login a `ConfigurationError`, each
    naming the URL without its password.
    """
    url = settings.database_url.get_secret_value() if settings.database_url else ""
    if url.startswith(POSTGRES_SCHEMES):
        # psycopg takes ~0.15 s to import: only a PostgreSQL store pays for it.
        from tools.storage.postgres import postgres_store  # noqa: PLC0415

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
    """The SQLite store at `path`: a file another process holds locked (past the busy
    timeout) or a full disk is a `StorageUnavailableError` (wait, or free space), a file that
    cannot be opened at all a `ConfigurationError` (set CRMOPS_DB)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return sqlite_store(path)
    except sqlite3.Error as exc:
        error = storage_error(exc, str(path))
        if isinstance(error, StorageUnavailableError):
            raise error from exc
        raise _unopenable(path, exc) from exc
    except OSError as exc:
        raise _unopenable(path, exc) from exc


def _unopenable(path: Path, exc: Exception) -> ConfigurationError:
    return ConfigurationError(
        vendor="crmops",
        detail=f"cannot open the database {path} ({exc}); set CRMOPS_DB to a writable file",
    )
