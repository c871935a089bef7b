"""Graceful shutdown of a replica (SIGTERM: docker stop, systemd, Kubernetes), with Redis on:
`crmops mcp --http` finishes the tool call in flight before it exits; `crmops import` stops
as on Ctrl-C, its chunks in flight journaled as sent (unknown), and `--resume` lands every
row exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest

from tests.bulk.conftest import XLB_HEADER, write_csv, xiaolanben_rows
from tests.storage.redis_server import _free_port
from tools.sandbox.stack import Sandbox, start_sandbox

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "shutdown-test-token-3f8a1c5e7b9d2f4a"
MCP_HEADERS = {
    "Accept": "application/json, text/event-stream",
    "Authorization": f"Bearer {TOKEN}",
}


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with start_sandbox(seed=True) as running:
        yield running


def _env(sandbox: Sandbox, redis_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        **sandbox.env(),
        "PYTHONPATH": str(ROOT),
        "CRMOPS_MCP_TOKEN": TOKEN,
        "CRMOPS_REDIS_URL": redis_url,
        "CRMOPS_DB": str(tmp_path / "crmops.db"),
    }


def _rpc(method: str, params: Mapping[str, object], id_: int | None = None) -> dict[str, object]:
    message: dict[str, object] = {"jsonrpc": "2.0", "method": method, "params": params}
    return message if id_ is None else {**message, "id": id_}


def _start_session(http: httpx.Client, url: str) -> dict[str, str]:
    info = {"protocolVersion": "2025-06-18", "capabilities": {}}
    info["clientInfo"] = {"name": "test", "version": "0"}
    answer = http.post(url, json=_rpc("initialize", info, 1), headers=MCP_HEADERS)
    assert answer.status_code == 200, answer.text
    # Stateless HTTP (the default) gives no session id; a sticky server would.
    session = answer.headers.get("mcp-session-id")
    headers = {**MCP_HEADERS, **({"mcp-session-id": session} if session else {})}
    http.post(url, json=_rpc("notifications/initialized", {}), headers=headers)
    return headers


def test_sigterm_lets_the_mcp_call_in_flight_finish(
    sandbox: Sandbox, redis_url: str, tmp_path: Path
) -> None:
    port = _free_port()
    command = [sys.executable, "-m", "server", "mcp", "--http", "--port", str(port)]
    server = subprocess.Popen(
        command,
        env=_env(sandbox, redis_url, tmp_path),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    answers: list[httpx.Response] = []
    try:
        with httpx.Client(timeout=30) as http:
            _wait_until_serving(http, f"http://127.0.0.1:{port}/healthz", server)
            headers = _start_session(http, url)
            sandbox.xiaolanben.faults.latency = 1.5  # the call is in flight when SIGTERM comes
            call = _rpc("tools/call", {"name": "list_staff", "arguments": {"limit": 2}}, 2)
            caller = threading.Thread(
                target=lambda: answers.append(http.post(url, json=call, headers=headers))
            )
            caller.start()
            _wait(lambda: sandbox.xiaolanben.counters["requests"] > 0)
            server.send_signal(signal.SIGTERM)
            caller.join(30)
        _, err = server.communicate(timeout=20)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate(timeout=10)
    (answer,) = answers
    assert answer.status_code == 200
    assert '"staff"' in answer.text
    assert '"isError":true' not in answer.text.replace(" ", "")
    assert server.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM once done
    assert b"Traceback" not in err


def test_sigterm_stops_an_import_resumably(
    sandbox: Sandbox, redis_url: str, tmp_path: Path
) -> None:
    sandbox.xiaolanben.faults.latency = 0.05
    seeded = len(sandbox.xiaolanben.customers)  # the sandbox's demo customers
    path = write_csv(tmp_path / "in.csv", XLB_HEADER, xiaolanben_rows(300))
    env = {**_env(sandbox, redis_url, tmp_path), "XIAOLANBEN_RATE_LIMIT": "20"}
    command = [sys.executable, "-m", "server.cli_import", "import", str(path)]
    command += ["--vendor", "xiaolanben", "--json"]
    child = subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait(lambda: len(sandbox.xiaolanben.customers) >= seeded + 60, within=30)
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate(timeout=10)
    assert child.returncode == 130, err
    assert "--resume" in err
    assert "Traceback" not in err
    assert len(sandbox.xiaolanben.customers) < seeded + 300

    resumed = subprocess.run(
        [*command, "--resume"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["confirmed"] == 300
    assert len(sandbox.xiaolanben.customers) == seeded + 300
    imported = [c for c in sandbox.xiaolanben.customers.values() if "第" in c.identity]
    assert len(imported) == 300
    assert all(len(c.contacts) == 1 for c in imported)


def _wait_until_serving(http: httpx.Client, url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while True:
        assert process.poll() is None, process.stderr.read() if process.stderr else b""
        try:
            http.get(url)
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        else:
            return


def _wait(check: object, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while not (callable(check) and check()):
        assert time.monotonic() < deadline, "the condition did not come true in time"
        time.sleep(0.02)
