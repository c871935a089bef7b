"""A person confirms a write: real MCP clients (the SDK's), over streamable HTTP on loopback
and in memory, both protocol eras, against the vendor simulators."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, TextContent
from mcp_types import ElicitRequestParams, ElicitResult, ErrorData
from pydantic import SecretStr

from server.confirm import Confirmation, shown, state_security
from server.http_app import SessionLimits, build_http_app
from server.mcp_server import build_server
from tests.sandbox_fixtures import SECRETS, Sandbox
from tests.server.test_stdio import crmops_command
from tools.customers import CustomerImport
from tools.errors import ConfigurationError
from tools.sandbox.simulation import serve
from tools.services import Services
from tools.settings import Settings
from tools.tickets import CreatedTicket

TOKEN = "test-token-5b0f3c9e8d7a-1c2e4a6b8d0f"
WAIT = 30
MODERN = "2026-07-28"
LEGACY = "legacy"  # the SDK client's initialize handshake: protocol 2025-11-25
TICKET = {"subject": "无法登录", "message": "客户说登录页报错 502"}
CUSTOMERS = [
    {"whatsApp": "8618221733141", "friendName": "王伟"},
    {"whatsApp": "8618221733142", "friendName": "李娜"},
    {"whatsApp": "8618221733143"},
    {"whatsApp": "8618221733144"},
]


class User:
    """The person behind a client: answers each question as told, and remembers it."""

    def __init__(self, action: str = "accept", send: bool = True) -> None:
        self.action = action
        self.send = send
        self.asked: list[str] = []

    async def __call__(
        self, context: ClientRequestContext, params: ElicitRequestParams
    ) -> ElicitResult | ErrorData:
        del context
        self.asked.append(params.message)
        content: dict[str, Any] | None = {"send": self.send} if self.action == "accept" else None
        return ElicitResult.model_validate({"action": self.action, "content": content})


@contextmanager
def mcp_http(settings: Settings, *, sticky: bool = False) -> Iterator[str]:
    """`/mcp` for `settings` (stateless unless `sticky`) served on loopback; its URL."""
    settings.crmops.mcp_token = SecretStr(TOKEN)
    app = build_http_app(
        build_server(settings),
        token=settings.crmops.mcp_token,
        host="127.0.0.1",
        sessions=SessionLimits() if sticky else None,
    )
    with serve(app, lifespan="on") as served:
        yield f"{served.url}/mcp"


class RoundRobin(httpx2.AsyncBaseTransport):
    """Sends each request to the next of `bases` in turn: a balancer without affinity."""

    def __init__(self, bases: list[str]) -> None:
        self._next = itertools.cycle([httpx2.URL(base) for base in bases])
        self._inner = httpx2.AsyncHTTPTransport()
        self.calls: list[int] = []
        """The port of the replica each `tools/call` reached, in order."""

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        base = next(self._next)
        request.url = request.url.copy_with(host=base.host, port=base.port)
        if b'"tools/call"' in await request.aread():
            self.calls.append(int(base.port or 0))
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


@asynccontextmanager
async def http_client(
    url: str, mode: str, user: User | None, *, transport: httpx2.AsyncBaseTransport | None = None
) -> AsyncIterator[Client]:
    """A real MCP client of `url` speaking `mode`, with `user` answering questions (None: the
    client declares no elicitation)."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=WAIT, transport=transport) as http,
        Client(
            streamable_http_client(url, http_client=http), mode=mode, elicitation_callback=user
        ) as client,
    ):
        yield client


async def call(client: Client, name: str, arguments: dict[str, Any]) -> CallToolResult:
    with anyio.fail_after(WAIT):
        return await client.call_tool(name, arguments)


def text_of(result: CallToolResult) -> str:
    assert isinstance(result.content[0], TextContent)
    text = result.content[0].text
    assert not any(secret in text for secret in SECRETS)
    assert "Traceback" not in text
    return text


# --- the question, and what each answer does --------------------------------------------------


@pytest.mark.parametrize("mode", [MODERN, LEGACY])
async def test_an_accepted_ticket_is_created_after_showing_its_subject_and_first_reply(
    settings: Settings, sandbox: Sandbox, mode: str
) -> None:
    user = User()
    with mcp_http(settings, sticky=mode == LEGACY) as url:
        async with http_client(url, mode, user) as client:
            result = await call(client, "create_ticket", TICKET)
    assert not result.is_error, text_of(result)
    created = CreatedTicket.model_validate(result.structured_content)
    assert list(sandbox.bangwo8.tickets) == [created.ticket.id]
    [question] = user.asked
    assert "Subject: 无法登录" in question
    assert "First reply: 客户说登录页报错 502" in question


@pytest.mark.parametrize("answer", ["accept", "decline"])
async def test_a_2025_06_18_client_on_a_sticky_session_is_asked(
    settings: Settings, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, answer: str
) -> None:
    # The SDK's client always offers its latest handshake version; make it an older client.
    monkeypatch.setattr("mcp.client.session.LATEST_HANDSHAKE_VERSION", "2025-06-18")
    user = User(answer)
    with mcp_http(settings, sticky=True) as url:
        async with http_client(url, LEGACY, user) as client:
            assert client.protocol_version == "2025-06-18"
            result = await call(client, "create_ticket", TICKET)
    assert result.is_error is (answer == "decline")
    assert len(user.asked) == 1
    assert len(sandbox.bangwo8.tickets) == (answer == "accept")


@pytest.mark.parametrize("mode", [MODERN, LEGACY])
@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (("decline", True), "the user declined"),
        (("cancel", True), "the user cancelled"),
        (("accept", False), "the user answered no"),
    ],
    ids=["decline", "cancel", "no"],
)
async def test_a_ticket_not_confirmed_sends_nothing_and_says_so(
    settings: Settings, sandbox: Sandbox, mode: str, answer: tuple[str, bool], said: str
) -> None:
    user = User(answer[0], send=answer[1])
    with mcp_http(settings, sticky=mode == LEGACY) as url:
        async with http_client(url, mode, user) as client:
            result = await call(client, "create_ticket", TICKET)
    assert result.is_error
    text = text_of(result)
    assert "nothing was sent, no ticket was created" in text
    assert said in text
    assert "internal error" not in text
    assert sandbox.bangwo8.tickets == {}
    assert len(user.asked) == 1
    async with Services(settings) as services:
        (entry,) = await services.store.audit.recent()
    assert (entry.operation, entry.outcome) == ("create_ticket", "failed")
    assert (entry.error or "").startswith(f"refused: {said}")
    assert entry.sent == {}


@pytest.mark.parametrize("mode", [MODERN, LEGACY])
async def test_an_import_shows_vendor_count_and_first_rows_and_declined_sends_nothing(
    settings: Settings, sandbox: Sandbox, mode: str
) -> None:
    user = User("decline")
    arguments = {"vendor": "socialepoch", "customers": CUSTOMERS}
    with mcp_http(settings, sticky=mode == LEGACY) as url:
        async with http_client(url, mode, user) as client:
            result = await call(client, "import_customer", arguments)
    assert "no customer was imported" in text_of(result)
    assert sandbox.socialepoch.customers == {}
    [question] = user.asked
    assert "Import 4 customers into SocialEpoch (socialepoch), in 1 vendor call?" in question
    assert "none was rejected" in question
    assert "8618221733141" in question
    assert "王伟" in question
    assert "8618221733143" in question
    assert "8618221733144" not in question  # only the first three
    assert "… and 1 more." in question


@pytest.mark.parametrize("mode", [MODERN, LEGACY])
async def test_an_accepted_import_is_sent(settings: Settings, sandbox: Sandbox, mode: str) -> None:
    user = User()
    arguments = {"vendor": "socialepoch", "customers": CUSTOMERS}
    with mcp_http(settings, sticky=mode == LEGACY) as url:
        async with http_client(url, mode, user) as client:
            result = await call(client, "import_customer", arguments)
    assert not result.is_error, text_of(result)
    assert CustomerImport.model_validate(result.structured_content).created == 4
    assert len(sandbox.socialepoch.customers) == 4
    assert len(user.asked) == 1


async def test_a_bad_record_is_refused_before_anyone_is_asked(
    settings: Settings, sandbox: Sandbox
) -> None:
    user = User()
    customers = [*CUSTOMERS, {"whatsApp": "not a number"}]
    with mcp_http(settings) as url:
        async with http_client(url, MODERN, user) as client:
            result = await call(
                client, "import_customer", {"vendor": "socialepoch", "customers": customers}
            )
    text = text_of(result)
    assert "invalid customers, nothing was sent" in text
    assert "record 4: whatsApp" in text
    assert user.asked == []
    assert sandbox.socialepoch.customers == {}


async def test_a_dry_run_is_never_asked(settings: Settings, sandbox: Sandbox) -> None:
    user = User("decline")
    arguments = {"vendor": "socialepoch", "customers": CUSTOMERS, "dry_run": True}
    with mcp_http(settings) as url:
        async with http_client(url, MODERN, user) as client:
            result = await call(client, "import_customer", arguments)
    assert not result.is_error, text_of(result)
    assert len(CustomerImport.model_validate(result.structured_content).would_send) == 4
    assert user.asked == []
    assert sandbox.socialepoch.customers == {}


async def test_reads_are_never_asked(settings: Settings) -> None:
    user = User("decline")
    with mcp_http(settings) as url:
        async with http_client(url, MODERN, user) as client:
            result = await call(client, "lookup_error_code", {"code": "invalid_client"})
    assert not result.is_error
    assert user.asked == []


@pytest.mark.parametrize("mode", [MODERN, LEGACY])
async def test_a_write_the_policy_refuses_is_never_asked_and_is_audited(
    settings: Settings, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setenv("CRMOPS_MCP_WRITE_SUBJECTS", "someone-else")
    user = User()
    with mcp_http(settings, sticky=mode == LEGACY) as url:
        async with http_client(url, mode, user) as client:
            refused = await call(client, "create_ticket", TICKET)
            read = await call(client, "lookup_error_code", {"code": "invalid_client"})
    assert "may not call `create_ticket`" in text_of(refused)
    assert "CRMOPS_MCP_WRITE_SUBJECTS" in text_of(refused)
    assert not read.is_error  # reads stay open
    assert user.asked == []
    assert sandbox.bangwo8.tickets == {}
    async with Services(settings) as services:
        (entry,) = await services.store.audit.recent()
    assert entry.operation == "create_ticket"
    assert entry.outcome == "failed"
    assert entry.error is not None
    assert entry.error.startswith("refused: ")
    assert entry.actor.name.startswith("static-token")


# --- the modes: ask, require, off -------------------------------------------------------------


@pytest.mark.parametrize("mode", [MODERN, LEGACY])
async def test_ask_lets_a_client_that_cannot_elicit_write_unasked(
    settings: Settings, sandbox: Sandbox, mode: str
) -> None:
    with mcp_http(settings, sticky=mode == LEGACY) as url:
        async with http_client(url, mode, None) as client:
            result = await call(client, "create_ticket", TICKET)
    assert not result.is_error, text_of(result)
    assert len(sandbox.bangwo8.tickets) == 1


async def test_ask_lets_an_old_client_on_stateless_http_write_unasked(
    settings: Settings, sandbox: Sandbox
) -> None:
    # Without a session the server has no channel to ask a 2025-11-25 client on.
    user = User("decline")
    with mcp_http(settings) as url:
        async with http_client(url, LEGACY, user) as client:
            result = await call(client, "create_ticket", TICKET)
    assert not result.is_error, text_of(result)
    assert user.asked == []
    assert len(sandbox.bangwo8.tickets) == 1


@pytest.mark.parametrize(("mode", "sticky"), [(MODERN, False), (LEGACY, True), (LEGACY, False)])
async def test_require_refuses_a_client_that_cannot_be_asked_saying_how_to_allow_it(
    settings: Settings, sandbox: Sandbox, mode: str, sticky: bool
) -> None:
    settings.crmops.mcp_confirm_writes = "require"
    # Stateless HTTP and an old client: it declares elicitation, but cannot be asked.
    user = None if sticky or mode == MODERN else User()
    with mcp_http(settings, sticky=sticky) as url:
        async with http_client(url, mode, user) as client:
            ticket = await call(client, "create_ticket", TICKET)
            imported = await call(
                client, "import_customer", {"vendor": "socialepoch", "customers": CUSTOMERS}
            )
            dry = await call(
                client,
                "import_customer",
                {"vendor": "socialepoch", "customers": CUSTOMERS, "dry_run": True},
            )
    for refused in (ticket, imported):
        text = text_of(refused)
        assert "CRMOPS_MCP_CONFIRM_WRITES=require" in text
        assert "Nothing was sent" in text
        assert "CRMOPS_MCP_CONFIRM_WRITES=ask" in text
        assert "elicitation" in text
    assert not dry.is_error  # a dry run needs no confirmation
    assert sandbox.bangwo8.tickets == {}
    assert sandbox.socialepoch.customers == {}


async def test_require_asks_a_client_that_can_be_asked(
    settings: Settings, sandbox: Sandbox
) -> None:
    settings.crmops.mcp_confirm_writes = "require"
    user = User()
    with mcp_http(settings) as url:
        async with http_client(url, MODERN, user) as client:
            result = await call(client, "create_ticket", TICKET)
    assert not result.is_error, text_of(result)
    assert len(user.asked) == 1
    assert len(sandbox.bangwo8.tickets) == 1


async def test_off_sends_without_asking(settings: Settings, sandbox: Sandbox) -> None:
    settings.crmops.mcp_confirm_writes = "off"
    user = User("decline")
    with mcp_http(settings) as url:
        async with http_client(url, MODERN, user) as client:
            result = await call(client, "create_ticket", TICKET)
    assert not result.is_error, text_of(result)
    assert user.asked == []
    assert len(sandbox.bangwo8.tickets) == 1


# --- in memory and over stdio's kind of session: the SDK's in-process client ---------------


@pytest.mark.parametrize("mode", [MODERN, LEGACY])
async def test_an_in_process_client_is_asked_too(
    settings: Settings, sandbox: Sandbox, mode: str
) -> None:
    user = User("decline")
    with anyio.fail_after(WAIT):
        async with Client(build_server(settings), mode=mode, elicitation_callback=user) as client:
            result = await client.call_tool("create_ticket", TICKET)
    assert "the user declined" in text_of(result)
    assert sandbox.bangwo8.tickets == {}


# --- two replicas, no affinity ----------------------------------------------------------


@contextmanager
def replicas(settings: Settings, count: int = 2) -> Iterator[list[str]]:
    with ExitStack() as stack:
        yield [stack.enter_context(mcp_http(settings.model_copy(deep=True))) for _ in range(count)]


async def test_a_confirmation_asked_on_one_replica_is_answered_on_another(
    settings: Settings, sandbox: Sandbox
) -> None:
    user = User()
    with replicas(settings) as urls:
        balancer = RoundRobin(urls)
        async with http_client(urls[0], MODERN, user, transport=balancer) as client:
            result = await call(client, "create_ticket", TICKET)
    assert not result.is_error, text_of(result)
    # The question came from one replica, the answer went to the other.
    assert len(balancer.calls) == 2
    assert balancer.calls[0] != balancer.calls[1]
    assert len(user.asked) == 1
    assert len(sandbox.bangwo8.tickets) == 1


@pytest.mark.parametrize("version", ["2025-06-18", "2025-11-25"])
async def test_an_old_client_is_served_by_replicas_in_turn_with_progress(
    settings: Settings, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    monkeypatch.setattr("mcp.client.session.LATEST_HANDSHAKE_VERSION", version)
    settings.socialepoch.batch_size = 10
    customers = [{"whatsApp": f"86182217{n:05d}"} for n in range(30)]
    seen: list[float] = []

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        del total, message
        seen.append(progress)

    with replicas(settings) as urls:
        balancer = RoundRobin(urls)
        async with http_client(urls[0], LEGACY, User(), transport=balancer) as client:
            assert client.protocol_version == version
            with anyio.fail_after(WAIT):
                listed = await client.list_tools()
                ticket = await client.call_tool("create_ticket", TICKET)
                imported = await client.call_tool(
                    "import_customer",
                    {"vendor": "socialepoch", "customers": customers},
                    progress_callback=progress,
                )
    assert len(listed.tools) == 6
    assert not ticket.is_error, text_of(ticket)
    assert not imported.is_error, text_of(imported)
    assert len(set(balancer.calls)) == 2  # the two calls reached different replicas
    assert seen[-1] == 30
    assert len(sandbox.socialepoch.customers) == 30


async def test_without_a_shared_key_the_answer_reaching_another_replica_is_refused(
    settings: Settings, sandbox: Sandbox
) -> None:
    user = User()
    copies = [settings.model_copy(deep=True) for _ in range(2)]
    for copy, key in zip(copies, "ab", strict=True):
        copy.crmops.mcp_state_key = SecretStr(key * 40)  # each replica its own key
    with ExitStack() as stack:
        urls = [stack.enter_context(mcp_http(copy)) for copy in copies]
        async with http_client(urls[0], MODERN, user, transport=RoundRobin(urls)) as client:
            with pytest.raises(MCPError, match="Invalid or expired requestState"):
                await call(client, "create_ticket", TICKET)
    assert sandbox.bangwo8.tickets == {}


# --- over stdio: `crmops mcp` as a subprocess ---------------------------------------------


async def test_crmops_mcp_over_stdio_asks_and_a_decline_sends_nothing(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    params = crmops_command("mcp")
    params.env = {**(params.env or {}), **sandbox.env(), "CRMOPS_DB": str(tmp_path / "db")}
    user = User("decline")
    with (tmp_path / "stderr.log").open("w", encoding="utf-8") as stderr, anyio.fail_after(60):
        async with Client(
            stdio_client(params, errlog=stderr), mode=LEGACY, elicitation_callback=user
        ) as client:
            declined = await client.call_tool("create_ticket", TICKET)
    assert "the user declined" in text_of(declined)
    assert len(user.asked) == 1
    assert sandbox.bangwo8.tickets == {}


# --- progress over stateless HTTP -----------------------------------------------------------


@pytest.mark.parametrize("mode", [MODERN, LEGACY])
async def test_a_long_import_reports_progress_over_stateless_http(
    settings: Settings, sandbox: Sandbox, mode: str
) -> None:
    settings.socialepoch.batch_size = 10
    customers = [{"whatsApp": f"86182217{n:05d}"} for n in range(50)]
    seen: list[tuple[float, float | None]] = []

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        del message
        seen.append((progress, total))

    settings.crmops.mcp_confirm_writes = "off"
    with mcp_http(settings) as url:
        async with http_client(url, mode, None) as client:
            with anyio.fail_after(WAIT):
                result = await client.call_tool(
                    "import_customer",
                    {"vendor": "socialepoch", "customers": customers},
                    progress_callback=progress,
                )
    assert not result.is_error, text_of(result)
    assert len(seen) >= 2
    assert seen[-1] == (50, 50)
    assert len(sandbox.socialepoch.customers) == 50


# --- the question's text, and the shared state key ------------------------------------------


def test_a_value_cannot_forge_lines_of_the_question() -> None:
    assert shown("ok\nSubject: fake\u202e") == "ok\\nSubject: fake\\u202e"
    assert shown("x" * 1000).endswith("…")
    assert len(shown("x" * 1000)) == 301
    assert shown({"whatsApp": "1", "tags": ["a"]}) == '{"whatsApp": "1", "tags": ["a"]}'


def test_the_confirmation_form_is_one_yes_or_no() -> None:
    assert list(Confirmation.model_fields) == ["send"]


def test_the_state_key_is_shared_through_the_settings(settings: Settings) -> None:
    assert state_security(settings.crmops) is None  # one key per process
    settings.crmops.mcp_token = SecretStr(TOKEN)
    assert state_security(settings.crmops) is not None  # derived from the shared token
    settings.crmops.mcp_state_key = SecretStr("short")
    with pytest.raises(ConfigurationError, match="CRMOPS_MCP_STATE_KEY must be at least 32"):
        state_security(settings.crmops)


def test_sessions_are_kept_only_when_sticky(settings: Settings) -> None:
    assert SessionLimits.of(settings.crmops) is None  # stateless: the default
    settings.crmops.mcp_sessions = "sticky"
    settings.crmops.mcp_sessions_per_client = 3
    limits = SessionLimits.of(settings.crmops)
    assert limits is not None
    assert limits.per_client == 3


def test_an_unknown_confirmation_mode_is_refused_naming_the_choices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRMOPS_MCP_CONFIRM_WRITES", "sometimes")
    with pytest.raises(ConfigurationError) as refused:
        Settings.load(env_file=None)
    assert "mcp_confirm_writes" in str(refused.value).lower()
    assert "'ask', 'require' or 'off'" in str(refused.value)
