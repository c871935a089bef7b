"""What the planning, the sending and the report of one import run share: which import and
which run of it, the vendor's target, the store, who asked, and the caller's row callbacks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tools.bulk.readers import Source
from tools.bulk.targets import ImportTarget
from tools.models import RecordOutcome
from tools.storage.audit import Actor
from tools.storage.journal import ImportJournal, ImportKey
from tools.storage.store import Store

OutcomeCallback = Callable[[int, RecordOutcome], None]
"""Told each row's outcome as it settles in this run: (row number, outcome)."""
ValidCallback = Callable[[int, dict[str, Any]], None]
"""Told each valid row as planned: (row number, the payload exactly as it will be sent)."""


@dataclass(frozen=True)
class RowCallbacks:
    """What a caller that shows each row (the MCP tool) is told, besides the report.

    `refuse_invalid`: when any row fails the checks, raise `InputError` listing every such
    row before anything is sent, instead of sending the valid ones.
    """

    on_valid: ValidCallback | None = None
    on_outcome: OutcomeCallback | None = None
    refuse_invalid: bool = False


@dataclass(frozen=True)
class RunScope:
    """One run of one import: the journal's import and run numbers, and where it goes."""

    store: Store
    target: ImportTarget
    key: ImportKey
    source: Source
    actor: Actor
    import_id: int
    number: int

    @property
    def journal(self) -> ImportJournal:
        return self.store.journal

    @property
    def label(self) -> str:
        """How the audit log names this run: the file, the import and the run."""
        return f"{self.source.name} (import {self.import_id}, run {self.number})"
