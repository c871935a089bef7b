"""Bulk import of customers from CSV, XLSX or JSON-lines files, exactly once, at the vendor's
rate ceiling, with a journal and an audit log (see `engine`)."""

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
from tools.bulk.readers import Records, SourceRow, read_rows

__all__ = [
    "DEFAULT_CONCURRENCY",
    "BulkImportReport",
    "BulkVendor",
    "ColumnMap",
    "ImportProgress",
    "ProgressCallback",
    "Records",
    "RowCallbacks",
    "RowProblem",
    "SourceRow",
    "bulk_import",
    "fingerprint",
    "read_rows",
]
