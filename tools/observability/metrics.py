"""crmops's Prometheus metrics, in a registry of their own::

    m = metrics()                                   # built (and prometheus_client imported) once
    m.vendor_requests.labels("xiaolanben", "listStaff", "ok", "").inc()
    text = exposition()                             # what GET /metrics answers
    write_textfile(Path("/var/lib/node_exporter/crmops.prom"))   # crmops import --metrics-file

Every label value is bounded and free of personal data: vendor and API names come from
code, outcomes from a fixed list, vendor error codes only from the error catalog (anything
else is `other`), tool names from the tool table. The call sites record through
`tools.observability.calls`, not here.

prometheus_client is imported on the first use (about 15 ms: its exposition module loads
`http.server`), so a command that never calls a vendor never pays for it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Histogram
    from prometheus_client.metrics_core import Metric

log = logging.getLogger("crmops.metrics")

RATE_WINDOW = 60.0
"""Seconds over which `crmops_import_rows_per_second` counts the rows settled."""

_LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_ACK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)
_TOOL_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass(frozen=True)
class Metrics:
    """The metrics, each with its labels in the order `labels(...)` takes them."""

    registry: CollectorRegistry
    vendor_requests: Counter
    """`crmops_vendor_requests_total{vendor, api, outcome, code}`: one per attempt."""
    vendor_request_seconds: Histogram
    """`crmops_vendor_request_seconds{vendor, api}`: from sending to the answer."""
    vendor_retries: Counter
    """`crmops_vendor_retries_total{vendor, api, reason}`: attempts after the first."""
    rate_limit_wait_seconds: Histogram
    """`crmops_rate_limit_wait_seconds{vendor, api}`: waiting for a rate-limit slot."""
    tool_calls: Counter
    """`crmops_tool_calls_total{tool, surface, outcome}`."""
    tool_call_seconds: Histogram
    """`crmops_tool_call_seconds{tool, surface}`."""
    slack_ack_seconds: Histogram
    """`crmops_slack_ack_seconds{kind}`: from a Slack request to its acknowledgement."""
    import_rows: Counter
    """`crmops_import_rows_total{vendor, outcome}`: imported, failed (by the vendor),
    rejected (by crmops's checks, never sent)."""
    imports: RunningImports
    """`crmops_imports_running{vendor}` and `crmops_import_rows_per_second{vendor}`."""


@cache
def metrics() -> Metrics:
    """The process's metrics (built on first use)."""
    from prometheus_client import (  # noqa: PLC0415 - start-up cost: see the module doc
        CollectorRegistry,
        Counter,
        Histogram,
    )

    registry = CollectorRegistry(auto_describe=True)
    vendor_api = ("vendor", "api")
    built = Metrics(
        registry=registry,
        vendor_requests=Counter(
            "crmops_vendor_requests",
            "Vendor requests sent (each attempt), by outcome: ok, vendor_error (with the "
            "documented code, else other), rate_limited, 5xx, transport_error, malformed",
            [*vendor_api, "outcome", "code"],
            registry=registry,
        ),
        vendor_request_seconds=Histogram(
            "crmops_vendor_request_seconds",
            "Seconds from sending a vendor request to its answer (or failure)",
            vendor_api,
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        ),
        vendor_retries=Counter(
            "crmops_vendor_retries",
            "Vendor requests retried, by what the failed attempt met",
            [*vendor_api, "reason"],
            registry=registry,
        ),
        rate_limit_wait_seconds=Histogram(
            "crmops_rate_limit_wait_seconds",
            "Seconds a vendor request waited for a slot of crmops's own rate limiter",
            vendor_api,
            buckets=_WAIT_BUCKETS,
            registry=registry,
        ),
        tool_calls=Counter(
            "crmops_tool_calls",
            "Tool calls by tool, surface (mcp, slack, cli) and outcome",
            ["tool", "surface", "outcome"],
            registry=registry,
        ),
        tool_call_seconds=Histogram(
            "crmops_tool_call_seconds",
            "Seconds a tool call took",
            ["tool", "surface"],
            buckets=_TOOL_BUCKETS,
            registry=registry,
        ),
        slack_ack_seconds=Histogram(
            "crmops_slack_ack_seconds",
            "Seconds from a Slack request reaching the bot to its acknowledgement (Slack allows 3)",
            ["kind"],
            buckets=_ACK_BUCKETS,
            registry=registry,
        ),
        import_rows=Counter(
            "crmops_import_rows",
            "Bulk-import rows settled: imported, failed (refused by the vendor), "
            "rejected (refused by crmops's checks, never sent)",
            ["vendor", "outcome"],
            registry=registry,
        ),
        imports=RunningImports(),
    )
    registry.register(built.imports)
    return built


def exposition() -> bytes:
    """crmops's metrics and the process's (CPU, memory, open files, GC) in the text format."""
    from prometheus_client import REGISTRY, generate_latest  # noqa: PLC0415 - start-up cost

    return generate_latest(metrics().registry) + generate_latest(REGISTRY)


def write_textfile(path: Path, *, succeeded: bool | None = None) -> None:
    """Write crmops's metrics to `path` in the text format, for node_exporter's textfile
    collector: to a temporary file beside it first, then renamed, so a scrape never reads
    half a file. With `succeeded`, also `crmops_run_succeeded` (1 or 0) and
    `crmops_run_finished_timestamp_seconds` (now). `OSError` when it cannot be written."""
    from prometheus_client import CollectorRegistry, write_to_textfile  # noqa: PLC0415

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_RunFigures(succeeded))
    write_to_textfile(os.fspath(path), registry)


def check_textfile_path(path: Path, option: str = "--metrics-file") -> None:
    """`InputError` unless a file can be created beside `path` (and `path` is no folder):
    call it before the work, so a wrong path is refused before anything is sent."""
    import tempfile  # noqa: PLC0415

    from tools.errors import InputError, Problem  # noqa: PLC0415

    if path.is_dir():
        raise InputError(
            [Problem(option, f"{path} is a folder: give a file path, e.g. crmops.prom")]
        )
    try:
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}."):
            pass
    except OSError as exc:
        raise InputError(
            [Problem(option, f"cannot write beside {path} ({exc.strerror}): give a writable path")]
        ) from None


@contextmanager
def textfile_at_exit(path: Path | None) -> Iterator[None]:
    """Write the metrics to `path` (if given) when the block ends, however it ends: a
    batch job's figures for node_exporter (`crmops import --metrics-file PATH`). A file that
    cannot be written is logged, never raised: the job's own outcome stands."""
    succeeded = False
    try:
        yield
        succeeded = True
    finally:
        if path is not None:
            try:
                write_textfile(path, succeeded=succeeded)
            except OSError as exc:
                log.warning("could not write the metrics file %s: %s", path, exc.strerror)


class _RunFigures:
    """crmops's metrics and, for a batch job's textfile, whether it succeeded and when."""

    def __init__(self, succeeded: bool | None) -> None:
        self.succeeded = succeeded

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily  # noqa: PLC0415 - loaded already

        yield from metrics().registry.collect()
        if self.succeeded is None:
            return
        yield GaugeMetricFamily(
            "crmops_run_succeeded",
            "1 if the crmops command that wrote this file finished without an error, else 0",
            value=1 if self.succeeded else 0,
        )
        yield GaugeMetricFamily(
            "crmops_run_finished_timestamp_seconds",
            "When the crmops command that wrote this file finished (Unix time)",
            value=time.time(),
        )


class ImportRate:
    """One running import's rows settled, for `crmops_import_rows_per_second`."""

    def __init__(self, vendor: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.vendor = vendor
        self._clock = clock
        self._started = self._clock()
        self._settled: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()

    def settled(self, rows: int) -> None:
        """`rows` more rows settled now."""
        now = self._clock()
        with self._lock:
            self._settled.append((now, rows))
            self._forget(now)

    def per_second(self) -> float:
        """Rows settled per second over the last `RATE_WINDOW` seconds (or since the start)."""
        now = self._clock()
        with self._lock:
            self._forget(now)
            rows = sum(count for _, count in self._settled)
        return rows / max(min(RATE_WINDOW, now - self._started), 1e-3)

    def _forget(self, now: float) -> None:
        while self._settled and self._settled[0][0] < now - RATE_WINDOW:
            self._settled.popleft()


class RunningImports:
    """A collector of the imports running in this process: how many, and their rows/s.

    Every vendor an import ran for stays listed (at 0 when none runs), so an alert on a
    rate of 0 has a series to see.
    """

    def __init__(self) -> None:
        self._runs: set[ImportRate] = set()
        self._vendors: set[str] = set()
        self._lock = threading.Lock()

    def start(self, vendor: str) -> ImportRate:
        """An import for `vendor` starts sending; `stop` it when it ends."""
        run = ImportRate(vendor)
        with self._lock:
            self._runs.add(run)
            self._vendors.add(vendor)
        return run

    def stop(self, run: ImportRate) -> None:
        with self._lock:
            self._runs.discard(run)

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily  # noqa: PLC0415 - loaded already

        with self._lock:
            runs, vendors = list(self._runs), sorted(self._vendors)
        running = GaugeMetricFamily(
            "crmops_imports_running", "Bulk imports sending rows now", labels=["vendor"]
        )
        rate = GaugeMetricFamily(
            "crmops_import_rows_per_second",
            f"Rows the running bulk imports settled per second over the last {RATE_WINDOW:g} s",
            labels=["vendor"],
        )
        for vendor in vendors:
            mine = [run for run in runs if run.vendor == vendor]
            running.add_metric([vendor], len(mine))
            rate.add_metric([vendor], sum(run.per_second() for run in mine))
        yield running
        yield rate
