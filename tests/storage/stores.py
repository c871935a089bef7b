"""The journal and audit log on each backend in turn, and ways for tests to look inside.

`store` (and `open_store_again`) run every test that uses them against SQLite and against
PostgreSQL (a private server, see tests/storage/postgres_server); a conftest imports them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tools.storage.journal import SqliteJournal
from tools.storage.postgres import PostgresJournal, postgres_store
from tools.storage.store import Store, sqlite_store

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def open_store_again(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    """Opens a new store on this test's database: a SQLite file, or an empty PostgreSQL one."""
    if request.param == "sqlite":
        path = tmp_path / "journal.db"
        return lambda: sqlite_store(path)
    url: str = request.getfixturevalue("postgres_server").create_database()
    return lambda: postgres_store(url)


@pytest.fixture
async def store(open_store_again: Callable[[], Store]) -> AsyncIterator[Store]:
    store = open_store_again()
    yield store
    await store.aclose()


async def select(store: Store, query: str) -> list[tuple[Any, ...]]:
    """The rows of `query` (SQL both backends speak, no parameters): tests look inside."""
    journal = store.journal
    if isinstance(journal, SqliteJournal):
        return await journal._db.run(lambda db: db.execute(query).fetchall())
    assert isinstance(journal, PostgresJournal)
    async with journal._db.transaction() as connection:
        cursor = await connection.execute(query)
        return [tuple(row) for row in await cursor.fetchall()]


async def stored_text(store: Store) -> str:
    """Everything the store holds, as text: the SQLite files' bytes, or every PostgreSQL row."""
    if isinstance(store.journal, SqliteJournal):
        files = sorted(Path(store.location).parent.glob(Path(store.location).name + "*"))
        return b"".join(path.read_bytes() for path in files).decode("utf-8", "replace")
    tables = await select(
        store, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
    )
    dumps = [
        await select(store, f"SELECT t::text FROM {name} AS t")  # noqa: S608 - our tables
        for (name,) in tables
    ]
    return "\n".join(text for rows in dumps for (text,) in rows)
