"""A private `redis-server` for the tests: its own port and directory, never a system service.

    def test_x(redis_url: str) -> None: ...          # the session's server, flushed per test
    server = start_redis(tmp_path)                    # one of the test's own (to kill it)

Without the binary the tests are skipped with the way to get it, except under CI (`CI` set),
where a missing Redis fails: `./dev test` installs it there.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

START_TIMEOUT = 10.0


@dataclass
class RedisServer:
    """A running `redis-server` on 127.0.0.1:`port`, storing nothing on disk."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        """Stop it abruptly (SIGKILL), as a crashed or unreachable Redis."""
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> None:
        """Start again on the same port (empty: nothing is persisted)."""
        self.stop()
        self.process = _spawn(self.port, self.directory)
        _wait_until_ready(self)


def redis_binary() -> str:
    """The `redis-server` path; skips the test (fails under CI) when it is not installed."""
    path = shutil.which("redis-server")
    if path is not None:
        return path
    reason = (
        "redis-server is not installed: `apt-get install redis-server` "
        "(./dev test does it when run as root)"
    )
    if os.environ.get("CI"):
        pytest.fail(f"CI: {reason}")
    pytest.skip(reason)


def start_redis(directory: Path) -> RedisServer:
    """A fresh `redis-server` on a free port, working in `directory`; ready when returned."""
    directory.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    server = RedisServer(port=port, directory=directory, process=_spawn(port, directory))
    _wait_until_ready(server)
    return server


def _spawn(port: int, directory: Path) -> subprocess.Popen[bytes]:
    command = [
        redis_binary(),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(directory),
        "--save", "",
        "--appendonly", "no",
        "--logfile", str(directory / "redis.log"),
    ]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_until_ready(server: RedisServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    client = redis.Redis(port=server.port, socket_connect_timeout=1)
    try:
        while True:
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                pass
            if server.process.poll() is not None or time.monotonic() > deadline:
                log = server.directory / "redis.log"
                tail = log.read_text()[-2000:] if log.exists() else ""
                raise RuntimeError(f"redis-server on port {server.port} did not start:\n{tail}")
            time.sleep(0.05)
    finally:
        client.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One `redis-server` for the whole session."""
    server = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied for this test."""
    client = redis.Redis(port=redis_server.port)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server.url
