"""No secret anywhere: tool results, Slack messages, exception texts and reprs, database rows.

Every secret the suite uses carries the marker `CANARY` (tests/conftest.py), and a plugin
there fails any test whose output or log records show one, as is, URL-encoded or inside
base64 (HTTP Basic). These tests drive the places a secret could slip into besides: each is
searched for the marker and for every form of each secret on the wire (`wire_forms`: raw,
URL-quoted, base64 of the secret and of its Basic `user:secret` pair).
"""

from __future__ import annotations

import base64
import json
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import anyio
import pytest
from mcp import Client
from pydantic import SecretStr

from server.mcp_server import build_server
from tests.bots.conftest import (
    SLACK_SECRETS,
    SlackEndpoint,
    access,
    endpoint,
    fake_slack,
    slack_settings,
    store,
)
from tests.bots.waiting import wait_until
from tests.bulk.conftest import XLB_HEADER, write_csv, xiaolanben_rows
from tests.conftest import CANARY, shows_canary
from tests.reliability.test_hostile_secrets import wire_forms
from tests.sandbox_fixtures import SECRETS, Sandbox
from tools.bulk import bulk_import
from tools.errors import CrmopsError
from tools.sandbox.bangwo8 import SANDBOX_ACCOUNT, SANDBOX_PASSWORD
from tools.sandbox.stack import BW8_CLIENT_ID, BW8_CLIENT_SECRET
from tools.services import Services
from tools.settings import Settings
from tools.storage.audit import Actor
from tools.storage.store import sqlite_store
from tools.transport import RetryPolicy
from tools.vendors.bangwo8.client import Bangwo8Client
from tools.vendors.socialepoch.client import SocialEpochClient
from tools.vendors.xiaolanben.client import XiaolanbenClient

__all__ = ["access", "endpoint", "fake_slack", "slack_settings", "store"]

ROOT = Path(__file__).resolve().parents[2]
NO_WAIT = RetryPolicy(attempts=2, wait_initial=0, wait_max=0, wait_jitter=0, timeout=10)
ALL_SECRETS = (*SECRETS, *SLACK_SECRETS, SANDBOX_PASSWORD.get_secret_value())
WIRE_FORMS = frozenset(
    {form for secret in ALL_SECRETS for form in wire_forms(secret)}
    | wire_forms(BW8_CLIENT_SECRET, BW8_CLIENT_ID)
    | wire_forms(SANDBOX_PASSWORD.get_secret_value(), SANDBOX_ACCOUNT)
)
"""Every form a suite secret takes on the wire (the Basic pairs are the Bangwo8 sandbox's)."""


def assert_clean(texts: Iterable[str], where: str) -> int:
    """Checks each text for the marker (also encoded) and every form of every secret;
    returns how many were checked."""
    count = 0
    for text in texts:
        count += 1
        assert not shows_canary(text), f"a canary secret in {where}: {text[:300]!r}"
        for form in WIRE_FORMS:
            assert form not in text, f"a secret in {where} (as {form!r})"
    return count


def test_the_checks_see_a_secret_in_each_form_it_takes_on_the_wire() -> None:
    basic = base64.b64encode(f"{BW8_CLIENT_ID}:{BW8_CLIENT_SECRET}".encode()).decode()
    leaks = [
        f"Authorization: Basic {basic}",
        f"https://u:{quote(BW8_CLIENT_SECRET, safe='')}@host/",
        f"redis://host/0?password={quote_plus(BW8_CLIENT_SECRET)}",
    ]
    for leak in leaks:
        assert shows_canary(leak), leak
        with pytest.raises(AssertionError):
            assert_clean([leak], "a probe")
    assert assert_clean(["Authorization: Basic ***", "https://u:***@host/"], "a probe") == 2


def test_every_suite_secret_carries_the_canary() -> None:
    assert ALL_SECRETS
    assert all(CANARY in secret for secret in ALL_SECRETS)


def test_the_plugin_fails_a_test_that_leaks_and_passes_one_that_does_not(tmp_path: Path) -> None:
    probe = tmp_path / "test_probe.py"
    probe.write_text(
        textwrap.dedent(
            f"""
            import logging

            def test_prints_a_secret():
                print("token: sim-{CANARY}-x")

            def test_logs_a_secret_at_debug():
                logging.getLogger("crmops.http").debug("key=%s", "k-{CANARY}")

            def test_logs_an_exception_with_a_secret():
                try:
                    raise ValueError("k-{CANARY}")
                except ValueError:
                    logging.getLogger("crmops").warning("failed", exc_info=True)

            def test_prints_a_secret_as_basic_auth():
                import base64
                print("Basic", base64.b64encode(b"id:k-{CANARY}").decode())

            def test_writes_a_secret_to_stderr():
                import sys
                sys.stderr.write("k-{CANARY}\\n")

            def test_is_clean():
                print("nothing to see")
                logging.getLogger("crmops").warning("all fine")
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
         "-q", "-rA", str(probe), "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    out = result.stdout
    assert "5 failed, 1 passed" in out, out[-2000:]
    assert "PASSED ../" in out or "PASSED " in out
    assert out.count("a canary secret leaked") >= 5


async def test_tool_results_and_errors_over_mcp_hold_no_secret(
    services: Services, sandbox: Sandbox
) -> None:
    sandbox.xiaolanben.seed()
    sandbox.socialepoch.seed()
    calls: list[tuple[str, dict[str, Any]]] = [
        ("list_staff", {"limit": 3}),
        ("lookup_error_code", {"code": "401"}),
        ("query_customer", {"whatsapp": next(iter(sandbox.socialepoch.customers))}),
        ("import_customer", {"vendor": "socialepoch", "customers": [{"whatsApp": "86138000001"}]}),
        ("import_customer", {"vendor": "xiaolanben", "customers": [{"customerName": "密钥测试"}]}),
        ("create_ticket", {"subject": "密钥", "message": "测试"}),
        ("list_tickets", {"per_page": 5}),
        ("import_customer", {"vendor": "socialepoch", "customers": [{"whatsApp": "12"}]}),
    ]  # fmt: skip
    texts: list[str] = []
    async with Client(build_server(services.settings, services=services)) as client:
        with anyio.fail_after(60):
            for name, arguments in calls:
                texts.append(_result_text(await client.call_tool(name, arguments)))
            for sim in (sandbox.socialepoch, sandbox.xiaolanben, sandbox.bangwo8):
                sim.faults.fail_next = 10
            for name, arguments in calls[:6]:
                result = await client.call_tool(name, arguments)
                texts.append(_result_text(result))
    assert assert_clean(texts, "an MCP tool result") == 14


def _result_text(result: Any) -> str:
    return json.dumps(result.model_dump(mode="json"), ensure_ascii=False)


async def test_exception_texts_reprs_and_attributes_hold_no_secret(
    settings: Settings, sandbox: Sandbox
) -> None:
    """Wrong secrets, vendor failures, HTML answers and dropped connections, per client."""
    errors: list[BaseException] = []
    wrong = settings.model_copy(deep=True)
    wrong.socialepoch.api_key = SecretStr(f"wrong-{CANARY}-se")
    wrong.xiaolanben.sign_key = SecretStr(f"wrong-{CANARY}-xlb")
    wrong.bangwo8.client_secret = SecretStr(f"wrong-{CANARY}-bw8")
    for config in (settings, wrong):
        for sim in (sandbox.socialepoch, sandbox.xiaolanben, sandbox.bangwo8):
            sim.faults.malformed_next = 1
            sim.faults.fail_next = 1
            sim.faults.drop_next = 1
        clients = (
            SocialEpochClient(config.socialepoch, retry=NO_WAIT),
            XiaolanbenClient(config.xiaolanben, retry=NO_WAIT),
            Bangwo8Client(config.bangwo8, retry=NO_WAIT),
        )
        se, xlb, bw8 = clients
        for _ in range(3):
            for call in (
                se.query_customers(["8613800000001"]),
                xlb.list_staff(),
                bw8.list_tickets(),
            ):
                try:
                    await call
                except CrmopsError as exc:
                    errors.append(exc)
        for client in clients:
            assert_clean([repr(client)], "a client repr")
            await client.aclose()
    assert len(errors) >= 9
    texts = [f"{e}\n{e!r}\n{vars(e)!r}\n{e.__cause__!r}" for e in errors]
    assert_clean(texts, "an exception")
    assert_clean([repr(settings), str(settings), repr(wrong)], "settings")
    assert not any("wrong-" in text for text in texts)


async def test_database_rows_hold_no_secret(
    settings: Settings, sandbox: Sandbox, tmp_path: Path
) -> None:
    """A bulk import with failures and audit entries; then every row of every table."""
    db = tmp_path / "crmops.db"
    source = write_csv(tmp_path / "in.csv", XLB_HEADER, xiaolanben_rows(25))
    sandbox.xiaolanben.faults.fail_next = 3
    sandbox.xiaolanben.faults.malformed_next = 1
    async with Services(settings, retry=NO_WAIT) as services, sqlite_store(db) as store:
        report = await bulk_import(
            services, source=source, vendor="xiaolanben", store=store, actor=Actor("cli", "me")
        )
    assert report.rows_read == 25
    rows = _all_rows(db)
    assert len(rows) > 25
    assert_clean(rows, f"a row of {db.name}")


def _all_rows(db: Path) -> list[str]:
    with sqlite3.connect(db) as connection:
        query = "SELECT name FROM sqlite_master WHERE type = 'table'"
        tables = [name for (name,) in connection.execute(query)]
        rows: list[str] = []
        for table in tables:
            if not table.startswith("sqlite_"):
                rows += [repr(r) for r in connection.execute(f'SELECT * FROM "{table}"')]  # noqa: S608
        return rows


async def test_slack_messages_and_the_bot_database_hold_no_secret(
    endpoint: SlackEndpoint, sandbox: Sandbox, tmp_path: Path
) -> None:
    sandbox.xiaolanben.seed()
    sandbox.socialepoch.seed()
    number = next(iter(sandbox.socialepoch.customers))
    for text in ("help", "staff 王", f"customer {number}", "error 401 xiaolanben"):
        assert (await endpoint.command(text, hook=text)).status_code == 200
    ask = (await endpoint.command('ticket "密钥" "测试"', hook="ticket")).json()
    actions = next(block for block in ask["blocks"] if block["type"] == "actions")
    await endpoint.press("crm_confirm", str(actions["elements"][0]["value"]), hook="confirm")
    sandbox.xiaolanben.faults.fail_next = 99
    await endpoint.command("staff", hook="failing")
    await wait_until(lambda: len(endpoint.fake.hook_posts["confirm"]) >= 3, within=20)
    await wait_until(lambda: bool(endpoint.fake.hook_posts["failing"]), within=20)
    posted = [
        json.dumps(p, ensure_ascii=False) for ps in endpoint.fake.hook_posts.values() for p in ps
    ]
    calls = [json.dumps(call.data, ensure_ascii=False) for call in endpoint.fake.calls]
    acks = [json.dumps(ack, ensure_ascii=False) for ack in endpoint.fake.acks]
    assert assert_clean(posted + calls + acks, "a Slack message") >= 6
    assert "server error" in posted[-1] or any("server error" in p for p in posted)
    assert_clean(_all_rows(tmp_path / "crmops.db"), "a row of the bot's database")
