"""What metrics and tracing cost the bulk import: its ratio to the ceiling, with them and without.

    .venv/bin/python bench/observability.py                 # 3 + 3 imports of 1,000 calls (~3 min)
    .venv/bin/python bench/observability.py --rows 2000 --runs 1

The simulators of bench/bulk_import.py (100 ms latency, 50 requests/s per API, in their own
process), and Xiaolanben imports of `--rows` new customers at 10 per call, each in a fresh
process, alternating:

- off: the observation hooks replaced by stand-ins that do nothing (`tools.transport`'s
  `VendorRequest`, the engine's `ImportObserver`), and no OpenTelemetry SDK;
- on: crmops as shipped, plus the SDK set up as `OTEL_EXPORTER_OTLP_ENDPOINT` would set it
  (a batch span processor and the OTLP/HTTP exporter), exporting every span to a collector
  stand-in on loopback (this process) that counts them.

Each prints bench/bulk_import.py's figures, the CPU seconds the importing process used per
vendor call, and the spans exported; last, each mode's mean ratio to the ceiling and the
difference (the target: within 1 %).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from statistics import mean
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bulk_import import (
    CEILING,
    Figures,
    measure,
    settings_for,
    simulators,
    warm_up,
    write_rows,
)

from tools.sandbox.simulation import serve


# --- one import, in a child process -------------------------------------------------------
class _Nothing:
    """Stands in for every observation hook: records nothing."""

    def __init__(self, *_: object, **__: object) -> None:
        pass

    def __enter__(self) -> _Nothing:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def attempt(self, _number: int) -> _Nothing:
        return self

    def slot_granted(self) -> None:
        pass

    def answered(self, _status: int) -> None:
        pass

    def retrying(self, _error: BaseException) -> None:
        pass


def observation_off() -> None:
    import tools.bulk.engine  # noqa: PLC0415
    import tools.transport  # noqa: PLC0415

    tools.transport.VendorRequest = _Nothing  # type: ignore[assignment, misc]
    engine_observer = tools.bulk.engine.ImportObserver

    class Inactive(engine_observer):  # type: ignore[misc, valid-type]
        def __init__(self, vendor: str, *, active: bool = True) -> None:
            super().__init__(vendor, active=False)

    tools.bulk.engine.ImportObserver = Inactive  # type: ignore[misc]


def tracing_on(collector: str) -> None:
    from tools.observability.tracing import configure_tracing  # noqa: PLC0415

    # What a user sets: the SDK's exporter reads the variables from the environment itself.
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector
    os.environ["OTEL_SERVICE_NAME"] = "crmops-bench"
    if not configure_tracing():
        raise SystemExit("the OpenTelemetry SDK is not installed: pip install 'crmops[otel]'")


def child(mode: str, urls: dict[str, str], rows: int, start: int, collector: str) -> None:
    if mode == "off":
        observation_off()
    else:
        tracing_on(collector)
    folder = Path(tempfile.mkdtemp(prefix="crmops-bench-otel-"))
    path = write_rows(folder / "in.csv", "xiaolanben", rows, start)
    settings = settings_for(urls, folder / "unused.db")

    async def run() -> Figures:
        await warm_up(settings, "xiaolanben")
        before = resource.getrusage(resource.RUSAGE_SELF)
        figures = await measure(
            f"{mode} xiaolanben", settings, urls["xiaolanben"], path, "xiaolanben", baseline=False
        )
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        figures.label += f" cpu {cpu / max(figures.requests, 1) * 1000:.2f} ms/call"
        return figures

    figures = asyncio.run(run())
    if mode == "on":
        from opentelemetry import trace  # noqa: PLC0415

        trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]
    print(json.dumps(asdict(figures)), flush=True)


# --- the parent: a collector stand-in, the simulators, the runs ----------------------------
@contextmanager
def collector() -> Iterator[tuple[str, list[int]]]:
    """`POST /v1/traces` on loopback, counting the bytes of each export."""
    received: list[int] = []

    async def traces(request: Request) -> Response:
        received.append(len(await request.body()))
        return Response(b"", media_type="application/x-protobuf")

    with serve(Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])) as served:
        yield served.url, received


def run_child(mode: str, urls: dict[str, str], rows: int, start: int, sink: str) -> Figures:
    done = subprocess.run(  # noqa: S603 - this very script, as a child
        [sys.executable, __file__, "--child", mode, json.dumps(urls), str(rows), str(start), sink],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    data: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return Figures(**data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000, help="customers per import")
    parser.add_argument("--runs", type=int, default=3, help="imports per mode")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, urls, rows, start, sink = args.child
        child(mode, json.loads(urls), int(rows), int(start), sink)
        return
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    ratios: dict[str, list[float]] = {"off": [], "on": []}
    with collector() as (sink, received), simulators() as urls:
        start = 0
        for _ in range(args.runs):
            for mode in ("off", "on"):
                exported = len(received)
                figures = run_child(mode, urls, args.rows, start, sink)
                start += args.rows  # new customers each run: every row is a create
                ratios[mode].append(figures.rate / CEILING)
                print(figures.line(), f" exports {len(received) - exported}", flush=True)
    off, on = mean(ratios["off"]), mean(ratios["on"])
    print(f"load average {os.getloadavg()[0]:.2f} after the imports")
    print(
        f"mean ratio to the ceiling: off {off:.4f}, on {on:.4f}: "
        f"{(on - off) / off * 100:+.2f} % with metrics and tracing on"
    )


if __name__ == "__main__":
    main()
