"""The SQLite journal and audit log: state survives closing and reopening the file."""

from __future__ import annotations

from pathlib import Path

from tools.bulk import Actor, AuditEntry, ImportKey, redact, sqlite_store
from tools.bulk.journal import NewRow, Rejection, RowUpdate

KEY = ImportKey("xiaolanben", "company-42@http://127.0.0.1:1", "f" * 64)


def _row(number: int, identity: str) -> NewRow:
    return NewRow(number, identity, identity, {"customerName": identity})


async def test_rows_and_states_survive_reopening(tmp_path: Path) -> None:
    store = sqlite_store(tmp_path / "j.db")
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

    reopened = sqlite_store(tmp_path / "j.db")
    again = await reopened.journal.find_import(KEY)
    assert again is not None
    assert (again.id, again.planned, again.rows_read, again.runs) == (record.id, True, 4, 1)
    counts = await reopened.journal.counts(record.id)
    assert (counts.pending, counts.sent, counts.confirmed, counts.rejected) == (1, 1, 1, 1)
    assert counts.statuses == {"created": 1}
    unsettled = await reopened.journal.unsettled(record.id, after=0, limit=10)
    assert [(r.number, r.state) for r in unsettled] == [(2, "sent"), (4, "pending")]
    assert await reopened.journal.start_run(record.id) == 2
    await reopened.aclose()


async def test_a_second_row_with_one_identity_is_a_duplicate_and_replanning_is_not(
    tmp_path: Path,
) -> None:
    store = sqlite_store(tmp_path / "j.db")
    record = await store.journal.open_import(KEY, source="in.csv")
    assert await store.journal.add_rows(record.id, [_row(2, "a"), _row(3, "a")]) == [(3, 2)]
    # Planning again after a crash journals nothing twice and reports no duplicate.
    assert await store.journal.add_rows(record.id, [_row(2, "a")]) == []
    assert (await store.journal.counts(record.id)).pending == 1
    await store.aclose()


async def test_audit_entries_are_redacted_and_read_back(tmp_path: Path) -> None:
    store = sqlite_store(tmp_path / "j.db")
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
    await store.aclose()
    assert entry.actor == Actor("slack", "U024BE7LH")
    assert entry.sent == {
        "subject": "打印机坏了",
        "client_secret": "***",
        "nested": [{"apiKey": "***"}],
    }
    assert b"s3cret" not in (tmp_path / "j.db").read_bytes()


def test_redact_leaves_ordinary_fields() -> None:
    assert redact({"tabName": "VIP", "h_sign": "x", "Authorization": "Bearer y"}) == {
        "tabName": "VIP",
        "h_sign": "***",
        "Authorization": "***",
    }
