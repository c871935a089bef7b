"""What the replica tests share: a Xiaolanben simulator served over real HTTP, and
`crmops import` run as separate processes (replicas) against it::

    with served_xiaolanben(rate_limit=20) as vendor:
        env = xiaolanben_environment(vendor, rate_limit="17", CRMOPS_DB=str(db))
        code, out, err = finish(start_import(csv_path, env, "--resume"))
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.bulk.conftest import RecordRecorder
from tools.sandbox.simulation import ServedApp, start_server
from tools.sandbox.stack import XLB_COMPANY, XLB_SIGN_KEY
from tools.sandbox.xiaolanben import XiaolanbenSimulator

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Vendor:
    """A Xiaolanben simulator, what it received, and where it is served."""

    simulator: XiaolanbenSimulator
    recorder: RecordRecorder
    served: ServedApp


@contextmanager
def served_xiaolanben(rate_limit: float = 50.0) -> Iterator[Vendor]:
    """A Xiaolanben simulator allowing `rate_limit` requests/s per API, on a loopback port."""
    simulator = XiaolanbenSimulator(
        company_id=XLB_COMPANY, sign_key=XLB_SIGN_KEY, rate_limit=rate_limit
    )
    recorder = RecordRecorder(simulator.app)
    served = start_server(recorder)
    try:
        yield Vendor(simulator, recorder, served)
    finally:
        served.stop()


def xiaolanben_environment(vendor: Vendor, *, rate_limit: str, **extra: str) -> dict[str, str]:
    """A replica's environment: this process's, pointed at `vendor`, plus `extra`."""
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "XIAOLANBEN_BASE_URL": vendor.served.url,
        "XIAOLANBEN_COMPANY_ID": XLB_COMPANY,
        "XIAOLANBEN_SIGN_KEY": XLB_SIGN_KEY,
        "XIAOLANBEN_RATE_LIMIT": rate_limit,
        **extra,
    }


def start_import(path: Path, env: dict[str, str], *options: str) -> subprocess.Popen[str]:
    """`crmops import PATH --vendor xiaolanben --json OPTIONS` as a process of its own."""
    command = [sys.executable, "-m", "server.cli_import", "import", str(path)]
    command += ["--vendor", "xiaolanben", "--json", *options]
    return subprocess.Popen(
        command, env=env, cwd=path.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(process: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `process`; killed if it outlives `timeout`."""
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    return process.returncode, out, err
