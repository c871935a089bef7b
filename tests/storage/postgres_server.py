"""A private PostgreSQL for the tests: its own directory and port, never a system service.

    def test_x(postgres_url: str) -> None: ...       # a fresh database on the session's server
    server = start_postgres()                         # one of the test's own (to crash it)

The server runs from the Debian `postgresql` package's binaries (/usr/lib/postgresql/*/bin,
or `initdb` on PATH). It refuses to run as root, so as root it runs as the `postgres` user
the package creates. Without the binaries the tests are skipped with the way to get them,
except under CI (`CI` set), where that fails: `./dev test` installs them there.

The server keeps nothing safe (fsync off): it is thrown away with the session. It asks for a
password (scram-sha-256), so the URLs carry one, and the tests can check it leaks nowhere.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

START_TIMEOUT = 30.0
USER = "crmops"
PASSWORD = "pg-test-9c1f7e2ab4"
"""Must never appear in a database row, an error or a log line."""


@dataclass
class PostgresServer:
    """A running `postgres` on 127.0.0.1:`port`, its data in `directory`."""

    port: int
    directory: Path
    bindir: Path
    account: pwd.struct_passwd | None
    process: subprocess.Popen[bytes]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        name = f"test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def crash(self) -> None:
        """Stop at once, dropping every connection (an "immediate" shutdown, as a crash)."""
        self.process.send_signal(signal.SIGQUIT)
        self.process.wait(timeout=15)

    def restart(self) -> None:
        """Start again on the same port with the same data."""
        if self.process.poll() is None:
            self.crash()
        self.process = _spawn_postgres(self.bindir, self.account, self.directory, self.port)
        _wait_until_ready(self)

    def stop(self) -> None:
        """Stop and delete everything."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # "fast" shutdown: no waiting for clients
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)


def postgres_bindir() -> Path:
    """The directory of `initdb` and `postgres`; skips the test (fails under CI) without it."""
    found = shutil.which("initdb")
    candidates = [Path(found).parent] if found else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "postgres").exists():
            return folder
    reason = (
        "PostgreSQL is not installed: `apt-get install postgresql` "
        "(./dev test does it when run as root)"
    )
    if os.environ.get("CI"):
        pytest.fail(f"CI: {reason}")
    pytest.skip(reason)


def _server_account() -> pwd.struct_passwd | None:
    """The account to run PostgreSQL as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        reason = (
            "running as root, PostgreSQL needs the `postgres` user (apt-get install postgresql)"
        )
        if os.environ.get("CI"):
            pytest.fail(f"CI: {reason}")
        pytest.skip(reason)


def start_postgres() -> PostgresServer:
    """A fresh cluster on a free port in a new temporary directory; ready when returned."""
    bindir = postgres_bindir()
    account = _server_account()
    directory = Path(tempfile.mkdtemp(prefix="crmops-pg-"))
    try:
        if account is not None:
            os.chown(directory, account.pw_uid, account.pw_gid)
        (directory / "password").write_text(PASSWORD)
        if account is not None:
            os.chown(directory / "password", account.pw_uid, account.pw_gid)
        _run_as(account, [
            str(bindir / "initdb"),
            "--pgdata", str(directory / "data"),
            "--username", USER,
            "--pwfile", str(directory / "password"),
            "--auth", "scram-sha-256",
            "--encoding", "UTF8",
            "--locale", "C",
            "--no-sync",
        ])  # fmt: skip
        port = free_port()
        process = _spawn_postgres(bindir, account, directory, port)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    server = PostgresServer(port, directory, bindir, account, process)
    _wait_until_ready(server)
    return server


def _spawn_postgres(
    bindir: Path, account: pwd.struct_passwd | None, directory: Path, port: int
) -> subprocess.Popen[bytes]:
    return _spawn_as(account, [
        str(bindir / "postgres"),
        "-D", str(directory / "data"),
        "-p", str(port),
        "-c", "listen_addresses=127.0.0.1",
        "-c", f"unix_socket_directories={directory}",
        "-c", "fsync=off",
        "-c", "synchronous_commit=off",
        "-c", "full_page_writes=off",
        "-c", "max_connections=100",
    ], directory / "postgres.log")  # fmt: skip


def _run_as(account: pwd.struct_passwd | None, command: list[str]) -> None:
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=_environment(account),
        user=_uid(account),
        group=_gid(account),
        extra_groups=_groups(account),
    )
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed:\n{done.stdout}\n{done.stderr}")


def _spawn_as(
    account: pwd.struct_passwd | None, command: list[str], log: Path
) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:
        return subprocess.Popen(
            command,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=_environment(account),
            user=_uid(account),
            group=_gid(account),
            extra_groups=_groups(account),
        )


def _uid(account: pwd.struct_passwd | None) -> int | None:
    return None if account is None else account.pw_uid


def _gid(account: pwd.struct_passwd | None) -> int | None:
    return None if account is None else account.pw_gid


def _groups(account: pwd.struct_passwd | None) -> list[int] | None:
    return None if account is None else []  # drop root's supplementary groups too


def _environment(account: pwd.struct_passwd | None) -> dict[str, str]:
    home = account.pw_dir if account is not None else os.environ.get("HOME", "/")
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "LC_ALL": "C"}


def _wait_until_ready(server: PostgresServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with psycopg.connect(server.url(), connect_timeout=2):
                return
        except psycopg.OperationalError:
            pass
        if server.process.poll() is not None or time.monotonic() > deadline:
            log = server.directory / "postgres.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            server.stop()
            raise RuntimeError(f"postgres on port {server.port} did not start:\n{tail}")
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


_running: list[PostgresServer] = []


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL for the whole session, shared by every conftest that imports this."""
    if not _running:
        _running.append(start_postgres())
    try:
        yield _running[0]
    finally:
        with contextlib.suppress(IndexError):
            _running.pop().stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database on the session's server, for this test."""
    return postgres_server.create_database()
