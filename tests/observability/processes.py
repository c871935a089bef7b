"""`crmops mcp --http` and `crmops slack` in processes of their own, for the tests to scrape."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
MCP_TOKEN = "mcp-token-CANARY-5b0f3c9e8d7a1c2e4a6b8d0f"
START_WITHIN = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Running:
    """A crmops process serving HTTP at `url`; its stderr goes to `log`."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stderr(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@contextmanager
def crmops_process(
    args: list[str], env: Mapping[str, str], tmp_path: Path, *, name: str
) -> Iterator[Running]:
    """`python -c SCRIPT ARGS` (or `python -m server ARGS`) with `env`, until it answers
    `/healthz`; terminated afterwards."""
    port = free_port()
    log = tmp_path / f"{name}.stderr"
    full_env = {
        **os.environ,
        **env,
        "PYTHONPATH": str(ROOT),
        "CRMOPS_DB": str(tmp_path / f"{name}.db"),
    }
    command = [sys.executable, *args, "--port", str(port)]
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            command, env=full_env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=stderr
        )
    running = Running(f"http://127.0.0.1:{port}", process, log)
    try:
        _wait_for_health(running)
        yield running
    finally:
        process.terminate()
        process.wait(20)


def _wait_for_health(running: Running) -> None:
    deadline = time.monotonic() + START_WITHIN
    while True:
        try:
            httpx.get(f"{running.url}/healthz", timeout=1)
        except httpx.TransportError:
            assert running.process.poll() is None, running.stderr()
            assert time.monotonic() < deadline, "crmops did not start"
            time.sleep(0.05)
        else:
            return


MCP_ARGS = ["-m", "server", "mcp", "--http"]
SLACK_ARGS = [
    "-c",
    "import typer; from bots.cli import register; app = typer.Typer()\n"
    "app.callback()(lambda: None); register(app); app()",
    "slack",
]
"""`crmops slack` as tests/bots/test_serving.py runs it (the entry point needs no install)."""
