"""The sending starts on the first journaled rows while the rest of the file is read, and a
run cut short while reading resumes from the journal: every row lands exactly once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.bulk.conftest import ACTOR, SE_HEADER, Recorded, socialepoch_rows, write_csv
from tools.bulk import ImportProgress, RowCallbacks, bulk_import
from tools.errors import InputError
from tools.models import RecordOutcome
from tools.services import Services
from tools.storage.store import Store

ROWS = 3000  # 30 SocialEpoch calls; reading and checking them takes far longer than one call


async def test_the_first_rows_are_sent_before_the_file_is_read_to_the_end(
    tmp_path: Path, services: Services, store: Store, sandbox: Recorded
) -> None:
    path = write_csv(tmp_path / "in.csv", SE_HEADER, socialepoch_rows(ROWS))
    events: list[tuple[str, int]] = []
    seen: list[ImportProgress] = []

    def valid(number: int, _payload: object) -> None:
        events.append(("valid", number))

    def outcome(number: int, _outcome: RecordOutcome) -> None:
        events.append(("outcome", number))

    report = await bulk_import(
        services,
        source=path,
        vendor="socialepoch",
        store=store,
        actor=ACTOR,
        progress=seen.append,
        rows=RowCallbacks(on_valid=valid, on_outcome=outcome),
    )

    assert (report.status, report.rows_read, report.confirmed) == ("ok", ROWS, ROWS)
    last_planned = events.index(("valid", ROWS + 1))  # the last data row (header = row 1)
    assert any(kind == "outcome" for kind, _ in events[:last_planned])
    assert seen[-1].phase == "sending"
    assert seen[-1].done == seen[-1].total == ROWS
    assert (report.requests, report.created) == (ROWS // 100, ROWS)  # each row sent once
    assert len(sandbox.socialepoch.customers) == ROWS


async def test_a_run_stopped_while_reading_resumes_and_reads_the_rest(
    tmp_path: Path, services: Services, store: Store, sandbox: Recorded
) -> None:
    path = write_csv(tmp_path / "in.csv", SE_HEADER, socialepoch_rows(ROWS))
    planned: list[int] = []
    first_outcome = asyncio.Event()

    def outcome(_number: int, _outcome: RecordOutcome) -> None:
        first_outcome.set()

    task = asyncio.create_task(
        bulk_import(
            services,
            source=path,
            vendor="socialepoch",
            store=store,
            actor=ACTOR,
            rows=RowCallbacks(on_valid=lambda n, _: planned.append(n), on_outcome=outcome),
        )
    )
    await asyncio.wait_for(first_outcome.wait(), timeout=20)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(planned) < ROWS  # stopped while the file was still being read

    with pytest.raises(InputError, match=r"not yet read.*--resume"):
        await bulk_import(services, source=path, vendor="socialepoch", store=store, actor=ACTOR)
    report = await bulk_import(
        services, source=path, vendor="socialepoch", store=store, actor=ACTOR, resume=True
    )

    assert (report.status, report.run, report.rows_read) == ("ok", 2, ROWS)
    assert (report.valid, report.confirmed, report.rejected) == (ROWS, ROWS, 0)
    assert len(sandbox.socialepoch.customers) == ROWS  # rows sent twice updated their customer
