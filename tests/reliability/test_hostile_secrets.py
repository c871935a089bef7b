"""Secrets on a bad day: a gateway that echoes the request, passwords in URLs, plain HTTP.

A vendor error whose body echoes the request carries `Authorization: Basic base64(id:secret)`:
the raw secret never appears, so the canary plugin alone (tests/conftest.py) cannot see it.
Each test here looks for every form a secret takes on the wire (`wire_forms`: raw, base64
of the Basic pair and of the secret, URL-quoted) in what crmops shows, logs and stores.
The forms are computed here, not with crmops's own redaction code.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import socket
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import anyio
import pytest
from mcp import Client
from pydantic import SecretStr
from rich.console import Console
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from typer.testing import CliRunner

from server.cli import app as crmops
from server.cli_doctor import print_report
from server.mcp_server import build_server
from tests.bots.conftest import SlackEndpoint, access, endpoint, fake_slack, slack_settings
from tests.bots.waiting import wait_until
from tests.bulk.conftest import XLB_HEADER, write_csv, xiaolanben_rows
from tests.conftest import CANARY
from tests.storage.stores import stored_text
from tools.bulk import bulk_import
from tools.doctor import diagnose_settings
from tools.errors import CrmopsError, StorageUnavailableError
from tools.redaction import RedactingFilter, install_log_redaction
from tools.sandbox.simulation import ServedApp, start_server
from tools.services import Services
from tools.settings import (
    Bangwo8Settings,
    CrmopsSettings,
    Settings,
    SocialEpochSettings,
    XiaolanbenSettings,
)
from tools.storage.audit import Actor
from tools.storage.redis import RedisBackend
from tools.storage.store import Store, sqlite_store
from tools.transport import RetryPolicy

CLIENT_ID = "echo-client-7"
CLIENT_SECRET = f"echo-{CANARY}-client/secret+1"
ACCOUNT = "echo@example.com"
PASSWORD = f"echo-{CANARY}-pass word&2"
__all__ = ["access", "endpoint", "fake_slack", "slack_settings"]
NO_RETRY = RetryPolicy(attempts=1, wait_initial=0, wait_max=0, wait_jitter=0, timeout=10)


def wire_forms(secret: str, user: str = "") -> set[str]:
    """What `secret` looks like on the wire: itself, URL-quoted, base64 of it and of the
    HTTP Basic pair `user:secret` (standard and URL-safe alphabets, padding or none)."""
    forms = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret)}
    for plain in {secret, f"{user}:{secret}"}:
        raw = plain.encode()
        for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
            forms |= {encoded.decode(), encoded.decode().rstrip("=")}
    return forms


FORMS = wire_forms(CLIENT_SECRET, CLIENT_ID) | wire_forms(PASSWORD, ACCOUNT)


def assert_no_form(texts: Iterable[str], where: str, forms: set[str] = FORMS) -> int:
    count = 0
    for text in texts:
        count += 1
        shown = [form for form in forms if form in text]
        assert not shown, f"a secret (as {shown[0]!r}) in {where}: {text[:400]!r}"
    return count


# --- a gateway that echoes the request ------------------------------------------------------


class Echo:
    """Answers every request 401 with the request, headers and body, in its error text."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def answer(self, request: Request) -> JSONResponse:
        body = (await request.body()).decode("utf-8", "replace")
        headers = "\n".join(f"{name}: {value}" for name, value in request.headers.items())
        echoed = f"{request.method} {request.url}\n{headers}\n\n{body}"
        self.seen.append(echoed)
        answer = {"error": "invalid_client", "error_description": f"refused: {echoed}"}
        answer |= {"errcode": "401", "errmsg": f"refused: {echoed}", "echo": echoed}
        return JSONResponse(answer, status_code=401)


@pytest.fixture(scope="module")
def _echo_server() -> Iterator[tuple[Echo, ServedApp]]:
    echo = Echo()
    routes = [Route("/{path:path}", echo.answer, methods=["GET", "POST", "PUT"])]
    served = start_server(Starlette(routes=routes))
    try:
        yield echo, served
    finally:
        served.server.should_exit = True
        served.stop()


@pytest.fixture
def echo(_echo_server: tuple[Echo, ServedApp]) -> Echo:
    _echo_server[0].seen.clear()
    return _echo_server[0]


@pytest.fixture
def echo_url(_echo_server: tuple[Echo, ServedApp]) -> str:
    return _echo_server[1].url


CREDENTIALS = {
    "oauth": {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
    "basic": {"account": ACCOUNT, "password": PASSWORD},
}


def _echo_settings(url: str, way: str, db: Path) -> Settings:
    given: dict[str, Any] = {
        name: SecretStr(value) if "secret" in name or name == "password" else value
        for name, value in CREDENTIALS[way].items()
    }
    return Settings(
        crmops=CrmopsSettings(_env_file=None, db=db),
        socialepoch=SocialEpochSettings(_env_file=None),
        xiaolanben=XiaolanbenSettings(_env_file=None),
        bangwo8=Bangwo8Settings(_env_file=None, base_url=url, **given),
    )


@pytest.fixture(params=sorted(CREDENTIALS))
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, echo_url: str) -> str:
    """Bangwo8 signed in by OAuth client credentials, or Basic account:password; the
    environment holds the same settings, for the CLI."""
    monkeypatch.setenv("BANGWO8_BASE_URL", echo_url)
    for name, value in CREDENTIALS[request.param].items():
        monkeypatch.setenv(f"BANGWO8_{name.upper()}", value)
    return str(request.param)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with sqlite_store(tmp_path / "crmops.db") as opened:
        yield opened


def _records_text(records: Iterable[logging.LogRecord]) -> list[str]:
    formatter = logging.Formatter()
    return [formatter.format(record) for record in records]


@pytest.fixture
def echo_settings(way: str, echo_url: str, tmp_path: Path) -> Settings:
    """Settings whose Bangwo8 is the echoing gateway, signed in `way`."""
    return _echo_settings(echo_url, way, tmp_path / "crmops.db")


async def test_an_echoed_authorization_header_reaches_no_surface(
    echo_settings: Settings, echo: Echo, store: Store, caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = echo_settings
    texts: list[str] = []
    async with Services(settings, retry=NO_RETRY, store=store) as services:
        async with Client(build_server(settings, services=services)) as client:
            with anyio.fail_after(20):
                calls: list[tuple[str, dict[str, Any]]] = [
                    ("list_tickets", {"limit": 1}),
                    ("create_ticket", {"subject": "echo", "message": "echo"}),
                ]
                for name, arguments in calls:
                    result = await client.call_tool(name, arguments)
                    assert result.is_error
                    texts.append(json.dumps(result.model_dump(mode="json"), ensure_ascii=False))
        report = await diagnose_settings(settings)
    # The gateway did echo the credentials: what follows must hide them.
    assert echo.seen
    assert any(form in seen for seen in echo.seen for form in FORMS)
    assert "refused: " in texts[0]
    assert_no_form(texts, "an MCP tool error")
    printed = io.StringIO()
    print_report(Console(file=printed, width=300), report)
    assert_no_form([report.model_dump_json(), printed.getvalue()], "doctor's report")
    assert_no_form([await stored_text(store)], "the audit log")
    assert_no_form(_records_text(caplog.records), "a log record")


@pytest.fixture
async def services(echo_settings: Settings) -> AsyncIterator[Services]:
    """What the Slack bot (`endpoint`) calls: Bangwo8 is the echoing gateway."""
    async with Services(echo_settings, retry=NO_RETRY) as services:
        yield services


async def test_the_slack_answer_shows_no_echoed_credential(
    endpoint: SlackEndpoint, echo: Echo
) -> None:
    assert (await endpoint.command("tickets", hook="tickets")).status_code == 200
    await wait_until(lambda: bool(endpoint.fake.hook_posts["tickets"]), within=10)
    assert echo.seen
    posted = [json.dumps(post, ensure_ascii=False) for post in endpoint.fake.hook_posts["tickets"]]
    acks = [json.dumps(ack, ensure_ascii=False) for ack in endpoint.fake.acks]
    assert "refused" in "".join(posted)
    assert_no_form(posted + acks, "a Slack message")


def test_the_cli_shows_no_echoed_credential(way: str, echo: Echo) -> None:
    runner = CliRunner()
    outputs = []
    for arguments in (["tickets"], ["tickets", "--json"], ["doctor"], ["doctor", "--json"]):
        result = runner.invoke(crmops, arguments)
        assert result.exit_code != 0, result.output
        outputs += [result.stdout, result.stderr]
    assert echo.seen
    assert "invalid_client" in "".join(outputs) or "401" in "".join(outputs)
    assert_no_form(outputs, "the CLI's output")


def test_the_log_filter_redacts_records_their_arguments_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("crmops.test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    Bangwo8Settings(_env_file=None, client_id=CLIENT_ID, client_secret=SecretStr(CLIENT_SECRET))
    Bangwo8Settings(_env_file=None, account=ACCOUNT, password=SecretStr(PASSWORD))
    basic = base64.b64encode(f"{ACCOUNT}:{PASSWORD}".encode()).decode()
    try:
        install_log_redaction(logger)
        assert any(isinstance(each, RedactingFilter) for each in handler.filters)
        logger.warning("gateway said %s", f"Authorization: Basic {basic}")
        logger.warning("url %s", f"https://{ACCOUNT}:{quote(PASSWORD)}@vendor.example/")
        error = ValueError(f"echo {CLIENT_SECRET}")
        logger.error("failed", exc_info=(ValueError, error, None))
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    written = stream.getvalue()
    assert written.count("***") >= 3
    assert "vendor.example" in written
    assert_no_form([written], "a log line")


# --- passwords in URLs ----------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


REDIS_PASSWORD = f"redis-{CANARY}-pw/7"


@pytest.mark.parametrize(
    "url",
    [
        f"redis://127.0.0.1:{_closed_port()}/0?password={quote(REDIS_PASSWORD, safe='')}",
        f"unix:///nonexistent/crmops-redis.sock?password={quote(REDIS_PASSWORD, safe='')}",
        f"redis://:{quote(REDIS_PASSWORD, safe='')}@127.0.0.1:{_closed_port()}/0",
    ],
)
async def test_a_redis_password_in_the_query_or_userinfo_is_never_shown(
    url: str, tmp_path: Path, store: Store, caplog: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    forms = wire_forms(REDIS_PASSWORD)
    settings = Settings(
        crmops=CrmopsSettings(_env_file=None, redis_url=SecretStr(url)),
        socialepoch=SocialEpochSettings(_env_file=None),
        xiaolanben=XiaolanbenSettings(_env_file=None),
        bangwo8=Bangwo8Settings(
            _env_file=None, base_url="http://127.0.0.1:9", account=ACCOUNT, password=PASSWORD
        ),
    )
    async with RedisBackend(SecretStr(url), timeout=1) as backend:
        with pytest.raises(StorageUnavailableError) as down:
            await backend.ping()
    assert "password=***" in backend.url or ":***@" in backend.url
    texts = [backend.url, str(down.value), repr(vars(down.value))]
    async with (
        Services(settings, retry=NO_RETRY, store=store) as services,
        Client(build_server(settings, services=services)) as client,
    ):
        with anyio.fail_after(20):
            result = await client.call_tool("create_ticket", {"subject": "s", "message": "m"})
    assert result.is_error
    texts.append(json.dumps(result.model_dump(mode="json"), ensure_ascii=False))
    assert "Redis at" in texts[-1]
    texts += [await stored_text(store), *_records_text(caplog.records)]
    monkeypatch.setenv("CRMOPS_REDIS_URL", url)
    monkeypatch.setenv("CRMOPS_DB", str(tmp_path / "cli.db"))
    texts.append(CliRunner().invoke(crmops, ["doctor", "--json"]).output)
    assert_no_form(texts, "a text naming the Redis URL", forms)


XLB_PASSWORD = f"proxy-{CANARY}-pw"


async def test_a_vendor_url_with_a_password_is_never_shown_or_stored(
    tmp_path: Path, store: Store, caplog: Any
) -> None:
    """`user:pw@` in a base URL: not in an error, a log line, the journal or the audit log."""
    caplog.set_level(logging.DEBUG)
    url = f"http://proxy-user:{XLB_PASSWORD}@127.0.0.1:{_closed_port()}"
    settings = Settings(
        crmops=CrmopsSettings(_env_file=None, db=tmp_path / "crmops.db"),
        socialepoch=SocialEpochSettings(_env_file=None),
        xiaolanben=XiaolanbenSettings(
            _env_file=None, base_url=url, company_id="company-42", sign_key=SecretStr("k" * 12)
        ),
        bangwo8=Bangwo8Settings(_env_file=None),
    )
    source = write_csv(tmp_path / "in.csv", XLB_HEADER, xiaolanben_rows(3))
    errors: list[str] = []
    async with Services(settings, retry=NO_RETRY, store=store) as services:
        try:
            report = await bulk_import(
                services, source=source, vendor="xiaolanben", store=store, actor=Actor("cli", "me")
            )
            errors.append(report.model_dump_json())
        except CrmopsError as exc:
            errors.append(f"{exc}\n{vars(exc)!r}")
        try:
            await services.xiaolanben.list_staff()
        except CrmopsError as exc:
            errors.append(f"{exc}\n{vars(exc)!r}")
    assert "127.0.0.1" in errors[-1]
    stored = await stored_text(store)
    assert "company-42" in stored  # the import was journaled, under its tenant
    texts = [*errors, stored, *_records_text(caplog.records)]
    assert_no_form(texts, "a text naming the vendor URL", wire_forms(XLB_PASSWORD, "proxy-user"))


# --- plain HTTP -----------------------------------------------------------------------------


def _write_env(path: Path, **values: str) -> None:
    path.write_text("".join(f"{name}={value}\n" for name, value in values.items()))


@pytest.fixture
def plain_http_dotenv(tmp_path: Path) -> Path:
    """A `.env` in the working directory pointing Bangwo8 at plain HTTP on a real host."""
    path = tmp_path / ".env"
    _write_env(
        path,
        BANGWO8_BASE_URL="http://api.example.com",
        BANGWO8_CLIENT_ID=CLIENT_ID,
        BANGWO8_CLIENT_SECRET=CLIENT_SECRET,
    )
    return path


async def test_a_dotenv_pointing_a_vendor_at_plain_http_is_refused(plain_http_dotenv: Path) -> None:
    settings = Settings.load(env_file=plain_http_dotenv)
    async with Services(settings, retry=NO_RETRY) as services:
        with pytest.raises(CrmopsError) as refused:
            await services.bangwo8.list_tickets()
    text = str(refused.value)
    assert "BANGWO8_BASE_URL" in text
    assert "http://api.example.com" in text
    assert "BANGWO8_ALLOW_INSECURE_HTTP=true" in text
    assert "BANGWO8_ALLOW_INSECURE_HTTP" in refused.value.action


def test_the_cli_refuses_plain_http_with_the_configuration_exit(plain_http_dotenv: Path) -> None:
    assert plain_http_dotenv.parent == Path.cwd()
    result = CliRunner().invoke(crmops, ["tickets"])
    assert result.exit_code == 78, result.output
    assert "plain http://" in result.stderr
    assert "BANGWO8_ALLOW_INSECURE_HTTP=true" in result.stderr


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9", "http://localhost:9", "http://[::1]:9", "https://api.example.com"]
)
def test_loopback_and_https_need_no_permission(url: str) -> None:
    Bangwo8Settings(_env_file=None, base_url=url, account=ACCOUNT, password=PASSWORD).require()


def test_plain_http_to_a_real_host_is_allowed_only_when_asked() -> None:
    given: dict[str, Any] = {"account": ACCOUNT, "password": PASSWORD}
    refused = Bangwo8Settings(_env_file=None, base_url="http://10.1.2.3:8080", **given)
    with pytest.raises(CrmopsError, match="BANGWO8_BASE_URL"):
        refused.require()
    Bangwo8Settings(
        _env_file=None, base_url="http://10.1.2.3:8080", allow_insecure_http=True, **given
    ).require()
    key = SecretStr("k" * 10)
    # The Indonesian host 000 documents is http:// only: taken as documented ...
    SocialEpochSettings(_env_file=None, region="id", tenant_id="1", api_key=key).require()
    # ... but not any other plain-http host.
    with pytest.raises(CrmopsError, match="SOCIALEPOCH_BASE_URL"):
        SocialEpochSettings(
            _env_file=None, base_url="http://id.example.com", tenant_id="1", api_key=key
        ).require()
