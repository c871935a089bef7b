"""Bulk import of customers from CSV, XLSX or JSON-lines files, exactly once, at the vendor's
rate ceiling, with a journal and an audit log (see `engine`: planning, sending, reporting)."""

from tools.bulk.columns import BulkVendor, ColumnMap
from tools.bulk.engine import bulk_import
from tools.bulk.planning import fingerprint
from tools.bulk.readers import Records, SourceRow, read_rows
from tools.bulk.reporting import BulkImportReport, ImportProgress, ProgressCallback, RowProblem
from tools.bulk.run import RowCallbacks
from tools.bulk.sending import DEFAULT_CONCURRENCY

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
