"""Hostile clients of the two HTTP servers: sessions left open, slow and many connections,
weak tokens, look-alike hosts and a client that names itself with megabytes.

Every test runs a real server on loopback (uvicorn with the serving kit's limits, or the
whole MCP HTTP app) with limits and timeouts set small, so each one takes seconds at most.
"""

from __future__ import annotations

import asyncio
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from mcp import Client
from mcp.types import Implementation
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.http_app import SessionLimits, build_http_app
from server.mcp_server import build_server
from tests.sandbox_fixtures import Sandbox, unconfigured_settings
from tests.server.mcp_http import INITIALIZE, MCP_HEADERS
from tools.errors import ConfigurationError
from tools.sandbox.simulation import serve
from tools.services import Services
from tools.serving import HttpLimits, health_routes, uvicorn_config
from tools.settings import Settings
from tools.storage.audit import MAX_ACTOR_NAME

TOKEN = "hostile-test-token-9c4e1a7f3b8d2e6a0c5f"
WAIT = 10.0
AUTHORIZED = {**MCP_HEADERS, "Authorization": f"Bearer {TOKEN}"}


# --- MCP sessions ---------------------------------------------------------------------------


@contextmanager
def mcp_app(settings: Settings, sessions: SessionLimits, token: str = TOKEN) -> Iterator[str]:
    """The whole MCP HTTP app with `sessions`, served on loopback; yields its base URL."""
    app = build_http_app(
        build_server(settings), token=SecretStr(token), host="127.0.0.1", sessions=sessions
    )
    with serve(app, lifespan="on") as served:
        yield served.url


async def open_session(
    http: httpx.AsyncClient, url: str, client: str | None = None
) -> httpx.Response:
    """An `initialize` without a session id; `client` poses as another address (a proxy's
    `X-Forwarded-For`, which uvicorn believes from loopback)."""
    headers = dict(AUTHORIZED)
    if client is not None:
        headers["X-Forwarded-For"] = client
    return await http.post(f"{url}/mcp", json=INITIALIZE, headers=headers)


async def ping(http: httpx.AsyncClient, url: str, session_id: str) -> httpx.Response:
    headers = {**AUTHORIZED, "Mcp-Session-Id": session_id}
    body = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    return await http.post(f"{url}/mcp", json=body, headers=headers)


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[str]:
    """The MCP HTTP app with the default limits, for tests that only open a session."""
    with mcp_app(unconfigured_settings(), SessionLimits()) as url:
        yield url


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=WAIT) as client:
        yield client


async def test_one_client_opening_200_sessions_at_once_holds_its_share_and_locks_nobody_out(
    settings: Settings,
) -> None:
    limits = SessionLimits(max_sessions=20, per_client=5, idle=60)
    pool = httpx.Limits(max_connections=50)
    with mcp_app(settings, limits) as url, anyio.fail_after(WAIT):
        async with httpx.AsyncClient(timeout=WAIT, limits=pool) as http:
            started = time.monotonic()
            answers = await asyncio.gather(*(open_session(http, url) for _ in range(200)))
            elapsed = time.monotonic() - started
            opened = [a.headers["mcp-session-id"] for a in answers if a.status_code == 200]
            refused = [a for a in answers if a.status_code != 200]
            other = await open_session(http, url, client="10.0.0.2")
            ended = await http.delete(
                f"{url}/mcp", headers={**AUTHORIZED, "Mcp-Session-Id": opened[0]}
            )
            again = await open_session(http, url)

    assert len(opened) == limits.per_client
    assert {a.status_code for a in refused} == {429}
    assert "CRMOPS_MCP_SESSIONS_PER_CLIENT" in refused[0].json()["error"]["message"]
    assert refused[0].headers["Retry-After"] == "60"
    assert elapsed < 5
    assert other.status_code == 200
    assert ended.status_code == 200
    assert again.status_code == 200  # its DELETE gave the room back


async def test_an_idle_session_ends_after_the_idle_time_and_frees_its_room(
    settings: Settings,
) -> None:
    limits = SessionLimits(max_sessions=10, per_client=1, idle=0.2)
    with mcp_app(settings, limits) as url, anyio.fail_after(WAIT):
        async with httpx.AsyncClient(timeout=WAIT) as http:
            first = await open_session(http, url)
            session_id = first.headers["mcp-session-id"]
            assert (await ping(http, url, session_id)).status_code == 200
            await asyncio.sleep(limits.idle * 3)  # the idle time itself is what is tested
            expired = await ping(http, url, session_id)
            second = await open_session(http, url)
    assert expired.status_code == 404
    assert second.status_code == 200


# --- slow and many connections (the serving kit: both servers) -----------------------------

LIMITS = HttpLimits(header_timeout=1.0, body_timeout=1.0, keep_alive=1, max_connections=6)


async def _echo(request: Request) -> Response:
    return Response(await request.body())


@pytest.fixture(scope="module")
def kit_url() -> Iterator[str]:
    """The health routes both servers mount, served by uvicorn as `serve_http` configures it."""
    app = Starlette(routes=[*health_routes(), Route("/echo", _echo, methods=["POST"])])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn_config(app, host="127.0.0.1", port=0, limits=LIMITS, access_log=False)

    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])))
    thread.start()
    try:
        deadline = time.monotonic() + WAIT
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(WAIT)


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=WAIT)


def _drip(sock: socket.socket, data: bytes, every: float, url: str) -> tuple[float, bytes, float]:
    """Send `data` one byte every `every` seconds until the server hangs up; meanwhile ask
    `/healthz`. Returns (seconds until hung up, what the server sent, slowest health answer)."""
    started = time.monotonic()
    slowest = 0.0
    answer = b""
    with httpx.Client(timeout=WAIT) as http:
        for byte in data:
            sock.sendall(bytes([byte]))
            readable, _, _ = select.select([sock], [], [], every)
            if readable:
                answer = _read_all(sock)
                break
            before = time.monotonic()
            assert http.get(f"{url}/healthz").status_code == 200
            slowest = max(slowest, time.monotonic() - before)
            if time.monotonic() - started > 4 * LIMITS.header_timeout:
                break
    return time.monotonic() - started, answer, slowest


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(4096):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_client_sending_a_header_byte_a_second_is_cut_off_and_health_still_answers(
    kit_url: str,
) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100
    with _connect(kit_url) as sock:
        elapsed, answer, slowest = _drip(sock, request, 1.0, kit_url)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert LIMITS.header_timeout - 0.1 < elapsed < LIMITS.header_timeout + 1.0
    assert slowest < 0.25  # ~40 ms a request on this loopback, more on a busy machine


def test_a_connection_that_sends_nothing_is_closed(kit_url: str) -> None:
    with _connect(kit_url) as sock:
        started = time.monotonic()
        readable, _, _ = select.select([sock], [], [], 4 * LIMITS.header_timeout)
        elapsed = time.monotonic() - started
        answer = _read_all(sock) if readable else b""
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert elapsed < LIMITS.header_timeout + 1.0


def test_a_body_trickling_in_is_cut_off(kit_url: str) -> None:
    headers = b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n"
    with _connect(kit_url) as sock:
        sock.sendall(headers)
        elapsed, answer, _ = _drip(sock, b"x" * 100, 0.25, kit_url)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert LIMITS.body_timeout - 0.1 < elapsed < LIMITS.body_timeout + 1.0


def test_connections_past_the_limit_get_503_at_once(kit_url: str) -> None:
    held = [_connect(kit_url) for _ in range(LIMITS.max_connections)]
    try:
        time.sleep(0.1)  # the server accepts them on its own thread
        started = time.monotonic()
        with httpx.Client(timeout=WAIT) as http:
            refused = http.get(f"{kit_url}/healthz")
        elapsed = time.monotonic() - started
    finally:
        for sock in held:
            sock.close()
    assert refused.status_code == 503
    assert elapsed < 0.5


# --- tokens, hosts, names --------------------------------------------------------------------


@pytest.mark.parametrize("token", ["x", "short-token-of-31-characters-xx", " " * 40])
def test_a_short_token_is_refused_saying_how_to_make_one(settings: Settings, token: str) -> None:
    with pytest.raises(ConfigurationError, match="CRMOPS_MCP_TOKEN") as refused:
        build_http_app(build_server(settings), token=SecretStr(token), host="127.0.0.1")
    assert "secrets.token_urlsafe(32)" in str(refused.value)
    assert token.strip() == "" or token not in str(refused.value)


async def test_a_token_with_surrounding_spaces_matches_what_a_client_sends(
    settings: Settings,
) -> None:
    with mcp_app(settings, SessionLimits(), token=f"  {TOKEN}\n") as url:
        async with httpx.AsyncClient(timeout=WAIT) as http:
            answer = await open_session(http, url)
    assert answer.status_code == 200


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Host": "localhost:8800.evil.com"}, 421),
        ({"Host": "127.0.0.1:80.evil.com"}, 421),
        ({"Host": "[::1]:1.evil.com"}, 421),
        ({"Host": "localhost:"}, 421),
        ({"Origin": "http://localhost:8800.evil.com"}, 403),
        ({"Origin": "http://127.0.0.1:3000@evil.com"}, 403),
        ({"Origin": "http://localhost:3000/evil"}, 403),
        ({"Host": "localhost:8800", "Origin": "http://localhost:3000"}, 200),
        ({"Host": "[::1]:8800", "Origin": "https://127.0.0.1"}, 200),
    ],
)
def test_look_alike_host_and_origin_are_refused_and_the_right_ones_pass(
    mcp_url: str, http: httpx.Client, headers: dict[str, str], status: int
) -> None:
    answer = http.post(f"{mcp_url}/mcp", json=INITIALIZE, headers={**AUTHORIZED, **headers})
    assert answer.status_code == status


async def test_a_client_name_of_3_mb_with_newlines_and_bidi_is_stored_bounded_and_clean(
    services: Services, sandbox: Sandbox
) -> None:
    forged = "claude\n2026-12-01 INFO crmops: admin approved\u202egnp.exe\u2066" + "x" * 3_000_000
    server = build_server(services.settings, services=services)
    async with Client(server, client_info=Implementation(name=forged, version="1")) as client:
        result: Any = await client.call_tool("create_ticket", {"subject": "s", "message": "m"})
    assert result.is_error is False
    (entry,) = await services.store.audit.recent()
    assert len(entry.actor.name) == MAX_ACTOR_NAME
    # Who acted comes first (`Actor.of`); the client's own words after it, marked as such.
    assert '(client says "claude 2026-12-01 INFO crmops: admin approvedgnp.exe' in entry.actor.name
    assert not any(char in entry.actor.name for char in "\n\r\u202e\u2066")
