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
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Concatenate, ParamSpec, TypeVar

from tools.aio import AsyncClosing

P = ParamSpec("P")
T = TypeVar("T")


class SqliteThread(AsyncClosing):
    """Runs functions of one connection on one worker thread, one at a time.

    The connection must be opened with `check_same_thread=False`; after construction only
    `run` may touch it.
    """

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection
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
        """
        call = functools.partial(function, self.connection, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._worker, call)

    async def aclose(self) -> None:
        """Close the connection after every call already given, then stop the thread."""
        await self.run(sqlite3.Connection.close)
        self._worker.shutdown()
