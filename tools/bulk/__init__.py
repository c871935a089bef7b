"""Bulk import of customers from CSV, XLSX or JSON-lines files, exactly once, at the vendor's
rate ceiling, with a journal and an audit log (see `engine`)."""

from tools.bulk.audit import Actor, AuditEntry, AuditLog, redact
from tools.bulk.columns import BulkVendor, ColumnMap
from tools.bulk.engine import (
    DEFAULT_CONCURRENCY,
    BulkImportReport,
    ImportProgress,
    ProgressCallback,
    RowCallbacks,
    RowProblem,
    bulk_import,
    fingerprint,
)
from tools.bulk.journal import ImportJournal, ImportKey, JournalCounts, RowState
from tools.bulk.readers import Records, SourceRow, read_rows
from tools.bulk.store import Store, data_dir, db_path, open_store, sqlite_store

__all__ = [
    "DEFAULT_CONCURRENCY",
    "Actor",
    "AuditEntry",
    "AuditLog",
    "BulkImportReport",
    "BulkVendor",
    "ColumnMap",
    "ImportJournal",
    "ImportKey",
    "ImportProgress",
    "JournalCounts",
    "ProgressCallback",
    "Records",
    "RowCallbacks",
    "RowProblem",
    "RowState",
    "SourceRow",
    "Store",
    "bulk_import",
    "data_dir",
    "db_path",
    "fingerprint",
    "open_store",
    "read_rows",
    "redact",
    "sqlite_store",
]
