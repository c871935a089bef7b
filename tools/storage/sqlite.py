"""One SQLite connection used from async code, every call on one worker thread of its own::

    database = SqliteThread(sqlite3.connect(path, check_same_thread=False))
    rows = await database.run(count_rows, import_id)   # count_rows(connection, import_id)
    await database.aclose()

Why a thread: a journal write can wait on the disk (a WAL checkpoint) or on another
process's write lock (up to the busy timeout). On the event loop that wait holds back every
request in flight, and requests that go out late go out together, which a vendor's sliding
rate window refuses. `sqlite3` releases the GIL while SQLite works, so the event loop runs on
meanwhile, on the other core.

One thread keeps the calls in order, and each `run` is one function holding one whole
transaction, so two coroutines' transactions never interleave. (Why not aiosqlite: it runs
one statement per call, so a read-then-write transaction such as a claim would need a lock
of its own around it.)

A failure of the file itself — locked by another process past the busy timeout, a full
disk, an I/O error — is a `StorageError` (`storage_error`) that says which and what to do:
the transaction was rolled back, so a bulk import loses no row and resumes.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Concatenate, ParamSpec, TypeVar

from tools.aio import AsyncClosing
from tools.errors import StorageError, StorageUnavailableError

P = ParamSpec("P")
T = TypeVar("T")


class SqliteThread(AsyncClosing):
    """Runs functions of one connection on one worker thread, one at a time.

    The connection must be opened with `check_same_thread=False`; after construction only
    `run` may touch it.
    """

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection
        self.location = database_file(connection)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crmops-sqlite")

    async def run(
        self,
        function: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """`function(connection, *args, **kwargs)` on the worker thread; its result.

        A cancelled caller stops waiting; a function already running still runs to its end
        and one not yet started never starts, so a transaction is never cut in half.
        A `sqlite3.Error` is raised as `storage_error` gives it.
        """
        call = functools.partial(function, self.connection, *args, **kwargs)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._worker, call)
        except sqlite3.Error as exc:
            raise storage_error(exc, self.location) from exc

    async def aclose(self) -> None:
        """Close the connection after every call already given, then stop the thread."""
        await self.run(sqlite3.Connection.close)
        self._worker.shutdown()


_BUSY = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_RERUN = "then run the same command again (an import: with --resume; no row was lost)"


def storage_error(error: sqlite3.Error, location: str) -> StorageError:
    """`error` of the SQLite file `location` as crmops says it: busy (locked by another
    process) and a full disk are `StorageUnavailableError`s (try again), anything else a
    `StorageError`; each says what to do."""
    code = getattr(error, "sqlite_errorcode", 0) & 0xFF  # the primary code, without extension
    if code in _BUSY:
        return StorageUnavailableError(
            f"the journal {location} is busy: another process holds a lock on it (another "
            f"crmops import, or a sqlite3 shell left open); wait for it to finish, {_RERUN}, "
            "or set CRMOPS_DB to another file",
            backend="sqlite",
            action=f"wait for the other process to finish, {_RERUN}",
        )
    if code == sqlite3.SQLITE_FULL:
        return StorageUnavailableError(
            f"the disk holding the journal {location} is full: free space, {_RERUN}",
            backend="sqlite",
            action=f"free disk space, {_RERUN}",
        )
    return StorageError(
        f"the journal {location} failed ({error}): check the file and its disk, {_RERUN}",
        backend="sqlite",
        action=f"check the file and its disk, {_RERUN}",
    )


def database_file(connection: sqlite3.Connection) -> str:
    """The file `connection` has open as its main database (":memory:" for none)."""
    try:
        rows = connection.execute("PRAGMA database_list").fetchall()
    except sqlite3.Error:
        return "(the SQLite file)"
    return next((str(file) for _, name, file in rows if name == "main" and file), ":memory:")
