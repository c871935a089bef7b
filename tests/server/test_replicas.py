"""Any MCP request on any replica (issue 15): two real `crmops mcp --http` processes behind a
round-robin proxy with no affinity (`tests/server/round_robin.py`), sharing PostgreSQL (the
journal and the audit log) and Redis (the vendors' rate limits), against the simulators.

Clients of protocol 2025-06-18 (raw JSON-RPC over HTTP, as Claude Desktop, Cursor and the
Inspector send it today: the SDK client cannot be told to offer that version), 2025-11-25
(the SDK's initialize handshake) and 2026-07-28 (the SDK, per-request envelope) each make
every call: initialize, the lists, every tool, a resource and a prompt, a long
`import_customer` with its progress notifications, and writes. Each request reaches the
other replica from the one before it.

A confirmation needs a question and its answer to travel between requests. A 2026-07-28
client carries the call's sealed state itself, so any replica takes the answer; a client of
2025-11-25 or older can only be asked on a session, which stateless replicas do not keep:
with `CRMOPS_MCP_CONFIRM_WRITES=ask` it writes unasked, with `require` it is refused with the
way out (README "Several replicas").

And what breaks it: replicas keeping sessions (`CRMOPS_MCP_SESSIONS=sticky`, the SDK's
default, what crmops did before) answer "Session not found" to every request that reaches
the other one; replicas with different `CRMOPS_MCP_STATE_KEY`s refuse each other's answers.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import AsyncExitStack, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import psycopg
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, TextContent

from tests.server.round_robin import RoundRobin, serve_round_robin
from tests.server.test_confirm import User
from tests.storage.postgres_server import PostgresServer, free_port, postgres_server
from tests.storage.redis_server import RedisServer, redis_server
from tools.customers import CustomerImport
from tools.sandbox.stack import SANDBOX_SECRETS, Sandbox, start_sandbox
from tools.tickets import CreatedTicket

__all__ = ["postgres_server", "redis_server"]  # fixtures, used by name

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "replica-token-4f1c9a7e2b6d8c0e5a3f1b7d9c2e4a60"
WAIT = 60
START = 45.0
LONG_IMPORT = 60
"""Xiaolanben takes 10 customers a call: six calls, six progress notifications."""
OLD = "2025-06-18"
HANDSHAKE = "2025-11-25"
MODERN = "2026-07-28"
PROTOCOLS = (OLD, HANDSHAKE, MODERN)
TOOLS = {
    "lookup_error_code",
    "import_customer",
    "query_customer",
    "list_staff",
    "create_ticket",
    "list_tickets",
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


# --- the replicas ---------------------------------------------------------------------------


@dataclass
class Replica:
    """One `crmops mcp --http` process, and where its log goes."""

    url: str
    log: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@dataclass
class Cluster:
    """Two replicas behind the proxy, and the simulators they call."""

    sandbox: Sandbox
    replicas: list[Replica]
    proxy: RoundRobin
    database_url: str
    seen: dict[Path, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"{self.proxy.url}/mcp"

    def seen_text(self) -> str:
        """Everything the replicas have logged so far."""
        return "".join(r.log.read_text(encoding="utf-8", errors="replace") for r in self.replicas)

    def new_log_lines(self) -> str:
        """What the replicas logged since the last call."""
        text = ""
        for replica in self.replicas:
            content = replica.log.read_text(encoding="utf-8", errors="replace")
            text += content[self.seen.get(replica.log, 0) :]
            self.seen[replica.log] = len(content)
        return text


def _start_replica(env: dict[str, str], directory: Path, name: str) -> Replica:
    port = free_port()
    log = directory / f"{name}.log"
    command = [sys.executable, "-m", "server", "mcp", "--http", "--host", "127.0.0.1"]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*command, "--port", str(port), "--env-file", str(directory / "none.env")],
            env=env,
            cwd=directory,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    return Replica(f"http://127.0.0.1:{port}", log, process)


def _wait_until_ready(replica: Replica) -> None:
    deadline = time.monotonic() + START
    while time.monotonic() < deadline:
        if replica.process.poll() is not None:
            break
        try:
            if httpx.get(f"{replica.url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    replica.stop()
    raise AssertionError(f"replica {replica.url} did not start:\n{replica.log.read_text()}")


@contextmanager
def running_cluster(
    directory: Path,
    postgres: PostgresServer,
    redis: RedisServer,
    *,
    settings: Mapping[str, str] | None = None,
    each: tuple[dict[str, str], dict[str, str]] = ({}, {}),
) -> Iterator[Cluster]:
    """The simulators, two replicas sharing one database and one Redis, and the proxy;
    `settings` for both replicas, `each` for one and the other."""
    directory.mkdir(parents=True, exist_ok=True)
    database_url = postgres.create_database()
    with ExitStack() as stack:
        sandbox = stack.enter_context(start_sandbox(seed=True))
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(directory),
            "PYTHONPATH": str(ROOT),
            **sandbox.env(),
            "CRMOPS_MCP_TOKEN": TOKEN,
            "CRMOPS_DATABASE_URL": database_url,
            "CRMOPS_REDIS_URL": redis.url,
            **(settings or {}),
        }
        replicas = [
            _start_replica({**env, **own}, directory, name)
            for name, own in zip(("a", "b"), each, strict=True)
        ]
        for replica in replicas:
            stack.callback(replica.stop)
        for replica in replicas:
            _wait_until_ready(replica)
        proxy = stack.enter_context(serve_round_robin([replica.url for replica in replicas]))
        yield Cluster(sandbox, replicas, proxy, database_url)


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_server: PostgresServer,
    redis_server: RedisServer,
) -> Iterator[Cluster]:
    """The replicas as deployed by default: stateless, writes confirmed where they can be."""
    directory = tmp_path_factory.mktemp("replicas")
    with running_cluster(directory, postgres_server, redis_server) as running:
        yield running


@pytest.fixture(scope="module")
def strict_cluster(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_server: PostgresServer,
    redis_server: RedisServer,
) -> Iterator[Cluster]:
    """Replicas that refuse a write nobody could be asked to confirm."""
    directory = tmp_path_factory.mktemp("strict-replicas")
    settings = {"CRMOPS_MCP_CONFIRM_WRITES": "require"}
    with running_cluster(directory, postgres_server, redis_server, settings=settings) as running:
        yield running


# --- the clients ------------------------------------------------------------------------------


Progress = ProgressFnT


@dataclass
class Answer:
    """A tool call's result, as any of the clients gives it back."""

    is_error: bool
    structured: dict[str, Any] | None
    text: str


class RawClient:
    """A client of protocol 2025-06-18 speaking plain JSON-RPC over streamable HTTP, as the
    clients of that version send it: `initialize`, then every request with the
    `MCP-Protocol-Version` header (and the `Mcp-Session-Id`, if the server gave one)."""

    def __init__(
        self, http: httpx.AsyncClient, url: str, user: User | None, version: str = OLD
    ) -> None:
        self.http = http
        self.url = url
        self.user = user
        self.version = version
        self.session_id: str | None = None
        self.server_requests: list[dict[str, Any]] = []
        """Requests the server sent this client (an `elicitation/create`), which it cannot
        answer here: its answer would be a new POST, to whichever replica."""
        self._ids = iter(range(1, 1_000_000))

    async def initialize(self) -> dict[str, Any]:
        capabilities: dict[str, Any] = {"elicitation": {}} if self.user is not None else {}
        result = await self.request(
            "initialize",
            {
                "protocolVersion": self.version,
                "capabilities": capabilities,
                "clientInfo": {"name": f"raw-{self.version}", "version": "1"},
            },
        )
        await self.notify("notifications/initialized")
        return result

    async def request(
        self, method: str, params: dict[str, Any], progress: Progress | None = None
    ) -> dict[str, Any]:
        """The result of `method`; `AssertionError` for an HTTP or JSON-RPC error."""
        number = next(self._ids)
        if progress is not None:
            params = {**params, "_meta": {"progressToken": f"p{number}"}}
        message = {"jsonrpc": "2.0", "id": number, "method": method, "params": params}
        async with self.http.stream("POST", self.url, json=message, headers=self._headers()) as r:
            body = b"" if r.status_code == 200 else await r.aread()
            assert r.status_code == 200, (method, r.status_code, body)
            self.session_id = r.headers.get("mcp-session-id", self.session_id)
            if r.headers["content-type"].startswith("application/json"):
                return self._result(json.loads(await r.aread()), method)
            async for event in _sse_messages(r):
                if event.get("id") == number and "method" not in event:
                    return self._result(event, method)
                if event.get("method") == "notifications/progress" and progress is not None:
                    p = event["params"]
                    await progress(p["progress"], p.get("total"), p.get("message"))
                elif "id" in event and "method" in event:
                    self.server_requests.append(event)
        raise AssertionError(f"{method}: the stream ended without an answer")

    async def notify(self, method: str) -> None:
        message = {"jsonrpc": "2.0", "method": method}
        answer = await self.http.post(self.url, json=message, headers=self._headers())
        assert answer.status_code == 202, (method, answer.status_code, answer.text)

    async def call_tool(
        self, name: str, arguments: dict[str, Any], progress: Progress | None = None
    ) -> Answer:
        result = await self.request("tools/call", {"name": name, "arguments": arguments}, progress)
        texts = [item["text"] for item in result.get("content", []) if item.get("type") == "text"]
        return Answer(bool(result.get("isError")), result.get("structuredContent"), "".join(texts))

    def _headers(self) -> dict[str, str]:
        headers = {**MCP_HEADERS, "Authorization": f"Bearer {TOKEN}"}
        headers["MCP-Protocol-Version"] = self.version
        if self.session_id is not None:
            headers["Mcp-Session-Id"] = self.session_id
        return headers

    @staticmethod
    def _result(message: dict[str, Any], method: str) -> dict[str, Any]:
        assert "error" not in message, (method, message["error"])
        result: dict[str, Any] = message["result"]
        return result


async def _sse_messages(response: httpx.Response) -> Any:
    """The JSON-RPC messages of an SSE stream, one per event."""
    data: list[str] = []
    async for line in response.aiter_lines():
        if line.startswith("data:"):
            data.append(line.removeprefix("data:").strip())
        elif not line and data:
            yield json.loads("\n".join(data))
            data = []


class SdkClient:
    """The SDK's client, speaking 2025-11-25 (`mode="legacy"`) or 2026-07-28."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def call_tool(
        self, name: str, arguments: dict[str, Any], progress: Progress | None = None
    ) -> Answer:
        result: CallToolResult = await self.client.call_tool(
            name, arguments, progress_callback=progress
        )
        texts = [item.text for item in result.content if isinstance(item, TextContent)]
        return Answer(result.is_error, result.structured_content, "".join(texts))


AnyClient = RawClient | SdkClient


class Session:
    """One client of `protocol` through the proxy: what it listed, and how to call a tool."""

    def __init__(self, client: AnyClient, tools: set[str], extra: dict[str, Any]) -> None:
        self.client = client
        self.tools = tools
        self.extra = extra


TRIAGE_ARGUMENTS = {"vendor": "xiaolanben", "failure": "x"}


async def _open(
    stack: AsyncExitStack, cluster: Cluster, protocol: str, user: User | None
) -> Session:
    """A connected client of `protocol` (entered on `stack`), after listing everything."""
    if protocol == OLD:
        return await _open_raw(stack, cluster, user)
    return await _open_sdk(stack, cluster, protocol, user)


async def _open_raw(stack: AsyncExitStack, cluster: Cluster, user: User | None) -> Session:
    http = await stack.enter_async_context(httpx.AsyncClient(timeout=WAIT))
    raw = RawClient(http, cluster.url, user)
    initialized = await raw.initialize()
    assert initialized["protocolVersion"] == OLD
    tools = await raw.request("tools/list", {})
    resources = await raw.request("resources/list", {})
    catalog = await raw.request("resources/read", {"uri": "crmops://errors/bangwo8"})
    prompt = await raw.request(
        "prompts/get", {"name": "triage_failed_import", "arguments": TRIAGE_ARGUMENTS}
    )
    extra = {
        "resources": [r["uri"] for r in resources["resources"]],
        "catalog": catalog["contents"][0]["text"],
        "prompt": prompt["messages"][0]["content"]["text"],
    }
    return Session(raw, {tool["name"] for tool in tools["tools"]}, extra)


async def _open_sdk(
    stack: AsyncExitStack, cluster: Cluster, protocol: str, user: User | None
) -> Session:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    http2 = await stack.enter_async_context(httpx2.AsyncClient(headers=headers, timeout=WAIT))
    mode = "legacy" if protocol == HANDSHAKE else protocol
    client = await stack.enter_async_context(
        Client(
            streamable_http_client(cluster.url, http_client=http2),
            mode=mode,
            elicitation_callback=user,
        )
    )
    assert client.protocol_version == protocol
    listed = await client.list_tools()
    resources = await client.list_resources()
    catalog = await client.read_resource("crmops://errors/bangwo8")
    prompt = await client.get_prompt("triage_failed_import", TRIAGE_ARGUMENTS)
    extra = {
        "resources": [str(r.uri) for r in resources.resources],
        "catalog": getattr(catalog.contents[0], "text", ""),
        "prompt": getattr(prompt.messages[0].content, "text", ""),
    }
    return Session(SdkClient(client), {tool.name for tool in listed.tools}, extra)


def _rows(prefix: str, count: int) -> list[dict[str, Any]]:
    contacts = [{"phone": "13909876543"}]
    return [{"customerName": f"{prefix}客户{n}", "contacts": contacts} for n in range(count)]


def _assert_clean(cluster: Cluster) -> None:
    """No session error, no traceback and no secret in what the replicas logged."""
    logged = cluster.new_log_lines()
    assert "Session not found" not in logged
    assert "Traceback" not in logged
    for secret in (TOKEN, *SANDBOX_SECRETS):
        assert secret not in logged


# --- the tests --------------------------------------------------------------------------------


READS: dict[str, dict[str, Any]] = {
    "lookup_error_code": {"code": 502},  # a number, as the Inspector sends it
    "query_customer": {"whatsapp": "8613800138000"},
    "list_staff": {"limit": 3},
    "list_tickets": {"limit": 5},
}


@dataclass
class Imports:
    """A long import with its progress, then the same records again."""

    first: Answer
    again: Answer
    progress: list[tuple[float, float | None, str | None]]
    vendor_calls_again: int


async def _import_twice(client: AnyClient, sandbox: Sandbox, prefix: str) -> Imports:
    reported: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        reported.append((progress, total, message))

    arguments = {"vendor": "xiaolanben", "customers": _rows(prefix, LONG_IMPORT)}
    first = await client.call_tool("import_customer", arguments, on_progress)
    vendor_calls = sandbox.xiaolanben.counters["requests"]
    again = await client.call_tool("import_customer", arguments)
    return Imports(first, again, reported, sandbox.xiaolanben.counters["requests"] - vendor_calls)


def _check_reads(answers: dict[str, Answer]) -> None:
    results: dict[str, dict[str, Any]] = {}
    for name, answer in answers.items():
        assert not answer.is_error, (name, answer.text)
        assert answer.structured is not None
        results[name] = answer.structured
    assert results["lookup_error_code"]["query"] == "502"
    assert len(results["list_staff"]["staff"]) == 3
    assert results["query_customer"]["customers"][0]["whatsApp"] == "8613800138000"
    assert results["list_tickets"]["tickets"]


def _check_imports(imports: Imports, sandbox: Sandbox, prefix: str) -> None:
    assert not imports.first.is_error, imports.first.text
    done = CustomerImport.model_validate(imports.first.structured)
    assert (done.created, done.batches) == (LONG_IMPORT, LONG_IMPORT // 10)
    # One notification per vendor call, on the call's own stream, to the last record.
    assert len(imports.progress) == LONG_IMPORT // 10
    last = (LONG_IMPORT, LONG_IMPORT, f"{LONG_IMPORT} of {LONG_IMPORT} records sent")
    assert imports.progress[-1] == last
    # The same records again, on the other replica: the shared journal knows them.
    assert not imports.again.is_error, imports.again.text
    repeated = CustomerImport.model_validate(imports.again.structured)
    assert repeated.batches == 0
    assert "already imported" in (repeated.note or "")
    assert imports.vendor_calls_again == 0
    assert len([name for name in sandbox.xiaolanben.customers if name.startswith(prefix)]) == (
        LONG_IMPORT
    )


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_every_call_of_a_client_is_served_across_both_replicas(
    cluster: Cluster, protocol: str
) -> None:
    sandbox, proxy = cluster.sandbox, cluster.proxy
    first = len(proxy.served)
    user = User()
    sandbox.xiaolanben.faults.latency = 0.05  # a long import: each vendor call takes a while
    try:
        with anyio.fail_after(WAIT * 2):
            async with AsyncExitStack() as stack:
                session = await _open(stack, cluster, protocol, user)
                client = session.client
                answers = {name: await client.call_tool(name, args) for name, args in READS.items()}
                imports = await _import_twice(client, sandbox, protocol)
    finally:
        sandbox.xiaolanben.faults.latency = 0
    assert session.tools == TOOLS
    assert "crmops://errors" in session.extra["resources"]
    assert "invalid_client" in session.extra["catalog"]
    assert "lookup_error_code" in session.extra["prompt"]
    _check_reads(answers)
    _check_imports(imports, sandbox, protocol)
    if protocol == MODERN:  # asked, and answered on another replica than the question's
        assert user.asked[0].startswith(f"Import {LONG_IMPORT} customers into Xiaolanben")
    else:  # no session to be asked on: `ask` lets it write unasked (see the tests below)
        assert user.asked == []

    served = proxy.served[first:]
    assert not [each for each in served if each.status >= 400]
    calls_served = [each.upstream for each in served if each.method == "tools/call"]
    assert len(calls_served) >= len(READS) + 2
    assert set(calls_served) == {0, 1}  # no affinity: both replicas served this client's calls
    _assert_clean(cluster)


def _tickets_with(sandbox: Sandbox, subject: str) -> list[tuple[int, dict[str, Any]]]:
    """The simulator's tickets with `subject`, as (id, ticket)."""
    tickets = sandbox.bangwo8.tickets.items()
    return [(number, ticket) for number, ticket in tickets if ticket["subject"] == subject]


def _audited(cluster: Cluster, subject: str) -> list[tuple[str, str]]:
    """(surface, outcome) of each row of the shared audit log that sent `subject`."""
    with psycopg.connect(cluster.database_url) as connection:
        rows = connection.execute(
            "SELECT surface, outcome FROM audit_log WHERE sent::text LIKE %s",
            (f"%{subject}%",),
        ).fetchall()
    return [(str(surface), str(outcome)) for surface, outcome in rows]


async def _create_ticket(
    cluster: Cluster, protocol: str, user: User, subject: str
) -> tuple[Answer, AnyClient, list[int]]:
    """`create_ticket` with `subject` by a fresh client of `protocol`; the answer, the client
    and the replica that took each `tools/call` request of it."""
    with anyio.fail_after(WAIT):
        async with AsyncExitStack() as stack:
            session = await _open(stack, cluster, protocol, user)
            before = len(cluster.proxy.served)
            answer = await session.client.call_tool(
                "create_ticket", {"subject": subject, "message": "客户说登录页报错 502"}
            )
    served = cluster.proxy.served[before:]
    return answer, session.client, [each.upstream for each in served if each.method == "tools/call"]


async def test_a_2026_client_confirms_a_write_on_one_replica_and_it_is_sent_by_the_other(
    cluster: Cluster,
) -> None:
    user = User()
    subject = "确认后创建 (2026-07-28)"
    answer, _, upstreams = await _create_ticket(cluster, MODERN, user, subject)
    assert not answer.is_error, answer.text
    assert len(user.asked) == 1
    assert f"Subject: {subject}" in user.asked[0]
    # The question came back from one replica; the call again, with the answer, went to the
    # other, which took the sealed state and sent the ticket.
    assert len(upstreams) == 2
    assert upstreams[0] != upstreams[1]
    created = CreatedTicket.model_validate(answer.structured)
    assert [number for number, _ in _tickets_with(cluster.sandbox, subject)] == [created.ticket.id]
    assert _audited(cluster, subject) == [("mcp", "ok")]  # in the log both replicas write
    _assert_clean(cluster)


@pytest.mark.parametrize("action", ["decline", "cancel", "no"])
async def test_a_2026_client_that_declines_sends_nothing_from_either_replica(
    cluster: Cluster, action: str
) -> None:
    user = User("accept", send=False) if action == "no" else User(action)
    subject = f"不要创建 ({action})"
    answer, _, upstreams = await _create_ticket(cluster, MODERN, user, subject)
    assert answer.is_error
    assert "nothing was sent" in answer.text
    assert len(user.asked) == 1
    assert set(upstreams) == {0, 1}
    assert _tickets_with(cluster.sandbox, subject) == []
    _assert_clean(cluster)


@pytest.mark.parametrize("protocol", [OLD, HANDSHAKE])
async def test_an_older_client_cannot_be_asked_without_affinity_and_writes_unasked(
    cluster: Cluster, protocol: str
) -> None:
    """`ask` (the default): a client of 2025-11-25 or older has no session on stateless
    replicas to be sent the question on, so its write goes ahead unasked."""
    user = User("decline")  # would refuse, if it were asked
    subject = f"未经确认 ({protocol})"
    answer, client, _ = await _create_ticket(cluster, protocol, user, subject)
    assert not answer.is_error, answer.text
    assert user.asked == []
    if isinstance(client, RawClient):
        assert client.server_requests == []  # no `elicitation/create` it could not answer
    assert len(_tickets_with(cluster.sandbox, subject)) == 1
    _assert_clean(cluster)


@pytest.mark.parametrize("protocol", [OLD, HANDSHAKE])
async def test_require_refuses_an_older_clients_write_saying_how_to_allow_it(
    strict_cluster: Cluster, protocol: str
) -> None:
    subject = f"必须确认 ({protocol})"
    answer, _, _ = await _create_ticket(strict_cluster, protocol, User(), subject)
    assert answer.is_error
    assert "CRMOPS_MCP_CONFIRM_WRITES=require" in answer.text
    assert "CRMOPS_MCP_SESSIONS=sticky" in answer.text
    assert "Nothing was sent" in answer.text
    assert _tickets_with(strict_cluster.sandbox, subject) == []
    _assert_clean(strict_cluster)


async def test_require_still_lets_a_2026_client_confirm_across_replicas(
    strict_cluster: Cluster,
) -> None:
    user = User()
    subject = "必须确认 (2026-07-28)"
    answer, _, upstreams = await _create_ticket(strict_cluster, MODERN, user, subject)
    assert not answer.is_error, answer.text
    assert len(user.asked) == 1
    assert set(upstreams) == {0, 1}
    assert len(_tickets_with(strict_cluster.sandbox, subject)) == 1
    _assert_clean(strict_cluster)


@pytest.fixture(scope="module")
def sticky_cluster(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_server: PostgresServer,
    redis_server: RedisServer,
) -> Iterator[Cluster]:
    """Replicas that keep sessions (`CRMOPS_MCP_SESSIONS=sticky`), behind the same proxy."""
    directory = tmp_path_factory.mktemp("sticky-replicas")
    settings = {"CRMOPS_MCP_SESSIONS": "sticky"}
    with running_cluster(directory, postgres_server, redis_server, settings=settings) as running:
        yield running


@pytest.mark.parametrize("protocol", [OLD, HANDSHAKE])
async def test_sticky_sessions_need_affinity_which_round_robin_does_not_give(
    sticky_cluster: Cluster, protocol: str
) -> None:
    """Why stateless is the default (README "Several replicas"): with sessions, every
    request that reaches the replica that did not open the session is refused."""
    with anyio.fail_after(WAIT):
        async with httpx.AsyncClient(timeout=WAIT) as http:
            raw = RawClient(http, sticky_cluster.url, None, version=protocol)
            with pytest.raises(AssertionError) as refused:
                await raw.initialize()  # its `notifications/initialized` reaches the other one
    assert raw.session_id is not None
    assert "404" in str(refused.value)
    assert "Session not found" in str(refused.value)


@pytest.fixture(scope="module")
def mismatched_cluster(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_server: PostgresServer,
    redis_server: RedisServer,
) -> Iterator[Cluster]:
    """Replicas misconfigured with different `CRMOPS_MCP_STATE_KEY`s."""
    directory = tmp_path_factory.mktemp("mismatched-replicas")
    keys = ({"CRMOPS_MCP_STATE_KEY": "a" * 40}, {"CRMOPS_MCP_STATE_KEY": "b" * 40})
    with running_cluster(directory, postgres_server, redis_server, each=keys) as running:
        yield running


async def test_replicas_without_one_state_key_refuse_the_answer_and_send_nothing(
    mismatched_cluster: Cluster,
) -> None:
    """The shared key is what lets the answer reach another replica: with two keys, the
    replica that did not ask cannot open the question's sealed state."""
    user = User()
    subject = "密钥不一致"
    with pytest.raises(ExceptionGroup) as refused:
        await _create_ticket(mismatched_cluster, MODERN, user, subject)
    assert refused.group_contains(MCPError, match="Invalid or expired requestState", depth=2)
    assert len(user.asked) == 1
    assert _tickets_with(mismatched_cluster.sandbox, subject) == []
    # The operator learns why from the replica that refused, without a traceback.
    assert "requestState rejected on tools/call: unknown key" in mismatched_cluster.seen_text()
    _assert_clean(mismatched_cluster)
