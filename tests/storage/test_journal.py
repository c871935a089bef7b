"""The journal and audit log, on SQLite and on PostgreSQL (`open_store_again` runs each test
on both): state survives reopening, rows are claimed once, nothing secret is stored."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from tests.storage.stores import stored_text
from tools.storage.audit import Actor, AuditEntry, redact
from tools.storage.journal import SCHEMA_VERSION, ImportKey, NewRow, Rejection, RowUpdate
from tools.storage.store import Store, sqlite_store

KEY = ImportKey("xiaolanben", "company-42@http://127.0.0.1:1", "f" * 64)


def _row(number: int, identity: str) -> NewRow:
    return NewRow(number, identity, identity, {"customerName": identity})


async def test_rows_and_states_survive_reopening(open_store_again: Callable[[], Store]) -> None:
    store = open_store_again()
    record = await store.journal.open_import(KEY, source="in.csv")
    assert await store.journal.start_run(record.id) == 1
    await store.journal.add_rows(record.id, [_row(2, "a"), _row(3, "b"), _row(4, "c")])
    await store.journal.add_rejections(record.id, [Rejection(5, "customerName", "required")])
    await store.journal.update_rows(
        record.id,
        [RowUpdate(2, "sent"), RowUpdate(3, "confirmed", "created", "880000001")],
    )
    await store.journal.mark_planned(record.id, rows_read=4)
    await store.aclose()

    reopened = open_store_again()
    again = await reopened.journal.find_import(KEY)
    assert again is not None
    assert (again.id, again.planned, again.rows_read, again.runs) == (record.id, True, 4, 1)
    counts = await reopened.journal.counts(record.id)
    assert (counts.pending, counts.sent, counts.confirmed, counts.rejected) == (1, 1, 1, 1)
    assert counts.statuses == {"created": 1}
    # The answer for row 2 is unknown and row 4 was never sent: the next run takes both.
    unsettled = await reopened.journal.claim(record.id, owner="run-2", limit=10, lease_seconds=30)
    assert [r.number for r in unsettled] == [2, 4]
    assert await reopened.journal.start_run(record.id) == 2
    await reopened.aclose()


async def test_a_second_row_with_one_identity_is_a_duplicate_and_replanning_is_not(
    store: Store,
) -> None:
    record = await store.journal.open_import(KEY, source="in.csv")
    assert await store.journal.add_rows(record.id, [_row(2, "a"), _row(3, "a")]) == [(3, 2)]
    # Planning again after a crash journals nothing twice and reports no duplicate.
    assert await store.journal.add_rows(record.id, [_row(2, "a")]) == []
    assert (await store.journal.counts(record.id)).pending == 1


async def test_audit_entries_are_redacted_and_read_back(store: Store) -> None:
    await store.audit.record(
        AuditEntry(
            actor=Actor("slack", "U024BE7LH"),
            vendor="bangwo8",
            operation="create_ticket",
            target="ticket",
            sent={"subject": "打印机坏了", "client_secret": "s3cret", "nested": [{"apiKey": "k"}]},
            outcome="ok",
        )
    )
    (entry,) = await store.audit.recent()
    assert entry.actor == Actor("slack", "U024BE7LH")
    assert entry.sent == {
        "subject": "打印机坏了",
        "client_secret": "***",
        "nested": [{"apiKey": "***"}],
    }
    assert "s3cret" not in await stored_text(store)


def test_redact_leaves_ordinary_fields() -> None:
    assert redact({"tabName": "VIP", "h_sign": "x", "Authorization": "Bearer y"}) == {
        "tabName": "VIP",
        "h_sign": "***",
        "Authorization": "***",
    }


async def test_concurrent_claims_never_take_one_row_twice(
    open_store_again: Callable[[], Store],
) -> None:
    store = open_store_again()
    record = await store.journal.open_import(KEY, source="in.csv")
    await store.journal.add_rows(record.id, [_row(n, f"c{n}") for n in range(2, 602)])
    await store.aclose()
    replicas = 3
    # The replicas claim in lockstep rounds: a barrier releases all of them at once, so every
    # round is a real race for the same rows, whatever the threads' scheduling. A round in
    # which no replica got a row ends them all.
    lockstep = threading.Barrier(replicas, timeout=60)
    rounds: list[dict[str, int]] = []
    rounds_lock = threading.Lock()

    def round_sizes(number: int) -> dict[str, int]:
        with rounds_lock:
            while len(rounds) <= number:
                rounds.append({})
            return rounds[number]

    async def take_all(owner: str) -> list[list[int]]:
        pages: list[list[int]] = []
        async with open_store_again() as replica:  # its own connection, thread and loop
            for number in itertools.count():
                lockstep.wait()
                page = await replica.journal.claim(
                    record.id, owner=owner, limit=7, lease_seconds=60
                )
                pages.append([row.number for row in page])
                round_sizes(number)[owner] = len(page)
                lockstep.wait()  # every replica's claim of this round is in
                if not any(round_sizes(number).values()):
                    break
        return pages

    taken = await asyncio.gather(
        *(asyncio.to_thread(asyncio.run, take_all(f"replica-{n}")) for n in range(replicas))
    )

    every_claim = [number for pages in taken for page in pages for number in page]
    assert len(every_claim) == len(set(every_claim))  # no row claimed twice
    assert sorted(every_claim) == list(range(2, 602))  # and every row claimed
    first_round = [pages[0] for pages in taken]
    assert all(first_round)  # each raced for rows from the first round on, and won some


async def test_a_live_lease_keeps_rows_and_an_ended_one_frees_them(store: Store) -> None:
    journal = store.journal
    record = await journal.open_import(KEY, source="in.csv")
    await journal.add_rows(record.id, [_row(n, f"c{n}") for n in (2, 3, 4)])
    held = await journal.claim(record.id, owner="a", limit=2, lease_seconds=60)
    assert [(r.number, r.state) for r in held] == [(2, "sent"), (3, "sent")]

    # Row 4 is free; 2 and 3 are a's while its lease lives, whoever asks.
    assert [
        r.number for r in await journal.claim(record.id, owner="b", limit=9, lease_seconds=60)
    ] == [4]
    assert await journal.claim(record.id, owner="c", limit=9, lease_seconds=60) == []
    assert await journal.held_elsewhere(record.id, owner="c") == 3
    await journal.renew("a", lease_seconds=60)

    # a answers row 2, loses the answer for row 3 and stops: 3 is "sent, unknown", free.
    await journal.update_rows(record.id, [RowUpdate(2, "confirmed", "created")])
    await journal.update_rows(record.id, [RowUpdate(3, "sent", reason="timed out")])
    await journal.release("a")
    assert await journal.claim(record.id, owner="a", limit=9, lease_seconds=60) == []  # once a run
    assert [
        r.number for r in await journal.claim(record.id, owner="c", limit=9, lease_seconds=60)
    ] == [3]
    assert await journal.held_elsewhere(record.id, owner="c") == 1  # b's row 4

    # b dies: its lease runs out, and its row goes to whoever claims next.
    await journal.renew("b", lease_seconds=0.05)
    await asyncio.sleep(0.1)
    assert await journal.held_elsewhere(record.id, owner="c") == 0
    assert [
        r.number for r in await journal.claim(record.id, owner="d", limit=9, lease_seconds=60)
    ] == [4]
    counts = await journal.counts(record.id)
    assert (counts.confirmed, counts.sent, counts.pending) == (1, 2, 0)


async def test_a_journal_file_from_before_leases_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:  # version 1: import_rows without held_by/held_until
        old.executescript(
            """
            CREATE TABLE imports (id INTEGER PRIMARY KEY, vendor TEXT NOT NULL,
                tenant TEXT NOT NULL, fingerprint TEXT NOT NULL, source TEXT NOT NULL,
                runs INTEGER NOT NULL DEFAULT 0, planned INTEGER NOT NULL DEFAULT 0,
                rows_read INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL,
                updated_at REAL NOT NULL, UNIQUE (vendor, tenant, fingerprint));
            CREATE TABLE import_rows (import_id INTEGER NOT NULL REFERENCES imports (id),
                row_number INTEGER NOT NULL, identity TEXT NOT NULL, conflict TEXT NOT NULL,
                payload TEXT NOT NULL, state TEXT NOT NULL, status TEXT, vendor_id TEXT,
                reason TEXT, attempts INTEGER NOT NULL DEFAULT 0, updated_at REAL NOT NULL,
                PRIMARY KEY (import_id, row_number), UNIQUE (import_id, identity));
            INSERT INTO imports VALUES (1, 'xiaolanben', 't', 'f', 'in.csv', 1, 1, 1, 0, 0);
            INSERT INTO import_rows VALUES (1, 2, 'a', 'a', '{"customerName":"a"}', 'sent',
                NULL, NULL, NULL, 1, 0);
            """
        )
    old.close()

    async with sqlite_store(path) as store:
        (row,) = await store.journal.claim(1, owner="new", limit=9, lease_seconds=60)

    assert (row.number, row.payload) == (2, {"customerName": "a"})
    with sqlite3.connect(path) as upgraded:
        assert upgraded.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    upgraded.close()


async def test_every_rejection_is_listed_however_many(store: Store) -> None:
    journal = store.journal
    record = await journal.open_import(KEY, source="in.csv")
    refused = [Rejection(n, "customerName", "required") for n in range(2, 2502)]
    refused += [Rejection(7, "contact.phone", "not a phone number")]  # a row's second problem
    await journal.add_rejections(record.id, refused)
    await journal.add_rows(record.id, [_row(n, f"c{n}") for n in (3000, 3001)])
    await journal.update_rows(record.id, [RowUpdate(3001, "failed", "failed", reason="533")])

    listed = [rejection async for rejection in journal.rejections(record.id)]

    assert len(listed) == 2501 + 1
    assert [r.number for r in listed] == sorted(r.number for r in listed)
    assert {(r.number, r.field) for r in listed if r.number == 7} == {
        (7, "customerName"),
        (7, "contact.phone"),
    }
    assert (listed[-1].number, listed[-1].stage, listed[-1].reason) == (3001, "vendor", "533")
    assert (await journal.counts(record.id)).rejected == 2500
