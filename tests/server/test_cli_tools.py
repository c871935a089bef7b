"""`crmops staff`, `customer`, `ticket`, `tickets` (and `errors --json`) against the simulators
on loopback: the settings come from the environment, as for a person at a terminal."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from server.cli import EXIT_CONFIG, EXIT_INPUT, EXIT_VENDOR, app
from server.cli_tools import standalone_app
from tests.sandbox_fixtures import SECRETS, Sandbox
from tools.customers import CustomerQuery
from tools.lookup import ErrorLookup
from tools.staff import StaffList
from tools.storage.audit import Actor
from tools.storage.store import sqlite_store
from tools.tickets import CreatedTicket, TicketList

WAIT = 60


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "crmops.db"


@pytest.fixture
def configured(sandbox: Sandbox, db: Path, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """The environment points every vendor at the sandbox and the database at `db`."""
    for name, value in sandbox.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CRMOPS_DB", str(db))
    monkeypatch.setenv("CRMOPS_MAX_ATTEMPTS", "1")  # a vendor failure fails at once
    return sandbox


def run(*args: str) -> Result:
    return CliRunner().invoke(standalone_app(), list(args))


def one_error_line(result: Result) -> str:
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


# --- staff ------------------------------------------------------------------------------------


def test_staff_searches_and_prints_a_table(configured: Sandbox) -> None:
    configured.xiaolanben.seed()
    wanted = next(iter(configured.xiaolanben.staff.values()))
    result = run("staff", str(wanted["realName"]))
    assert result.exit_code == 0, result.output
    assert "Xiaolanben staff" in result.stdout
    assert str(wanted["realName"]) in result.stdout
    assert str(wanted["staffId"]) in result.stdout


def test_staff_json_is_the_tools_result(configured: Sandbox) -> None:
    configured.xiaolanben.seed()
    result = run("staff", "--limit", "3", "--json")
    assert result.exit_code == 0, result.output
    listed = StaffList.model_validate_json(result.stdout)
    assert len(listed.staff) == 3
    assert listed.more_available is True


def test_an_unconfigured_vendor_exits_with_the_configuration_code(db: Path) -> None:
    result = run("staff", "--json")
    assert result.exit_code == EXIT_CONFIG
    assert "XIAOLANBEN_COMPANY_ID" in one_error_line(result)
    assert json.loads(result.stdout)["error"]["exit_code"] == EXIT_CONFIG


# --- customer ---------------------------------------------------------------------------------


def test_a_malformed_setting_is_named_with_the_configuration_code(
    configured: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOCIALEPOCH_BATCH_SIZE", "500")
    monkeypatch.setenv("XIAOLANBEN_RATE_LIMIT", "CANARY-fast")  # never echoed: could be a secret

    for args in (["staff"], ["customer", "8613800000000"]):
        result = run(*args)
        assert result.exit_code == EXIT_CONFIG
        line = one_error_line(result)
        assert "SOCIALEPOCH_BATCH_SIZE: Input should be less than or equal to 100" in line
    monkeypatch.delenv("SOCIALEPOCH_BATCH_SIZE")
    result = run("staff")
    assert "XIAOLANBEN_RATE_LIMIT: Input should be a valid number" in one_error_line(result)
    assert "CANARY" not in result.output + result.stderr


def test_customer_takes_a_number_written_with_spaces(configured: Sandbox) -> None:
    configured.socialepoch.seed()
    number, record = next(iter(configured.socialepoch.customers.items()))
    spaced = ["+" + number[:2], number[2:5], number[5:]]
    result = run("customer", *spaced)
    assert result.exit_code == 0, result.output
    assert number in result.stdout
    assert str(record.get("friendName", "")) in result.stdout


def test_customer_json_lists_a_number_it_does_not_know(configured: Sandbox) -> None:
    result = run("customer", "8613800138000", "--json")
    assert result.exit_code == 0, result.output
    assert CustomerQuery.model_validate_json(result.stdout).not_found == ["8613800138000"]


def test_a_bad_number_is_bad_input_before_any_request(configured: Sandbox) -> None:
    result = run("customer", "12", "--json")
    assert result.exit_code == EXIT_INPUT
    assert "whatsapp" in one_error_line(result)
    error = json.loads(result.stdout)["error"]
    assert (error["type"], error["problems"][0]["field"]) == ("InputError", "whatsapp")
    assert configured.socialepoch.counters["requests"] == 0


# --- ticket, tickets --------------------------------------------------------------------------


def test_ticket_creates_it_and_audits_the_os_user(configured: Sandbox, db: Path) -> None:
    result = run("ticket", "无法登录", "--message", "登录页报错 502", "--priority", "2", "--json")
    assert result.exit_code == 0, result.output
    created = CreatedTicket.model_validate_json(result.stdout)
    stored = configured.bangwo8.tickets[created.ticket.id]
    assert (stored["subject"], stored["priorityLevel"]) == ("无法登录", 2)

    async def audited() -> list[tuple[Actor, str, str]]:
        store = sqlite_store(db)
        try:
            return [(e.actor, e.operation, e.outcome) for e in await store.audit.recent()]
        finally:
            await store.aclose()

    assert asyncio.run(audited()) == [(Actor.local_user("cli"), "create_ticket", "ok")]
    assert not any(secret in result.stdout for secret in SECRETS)


def test_ticket_prints_the_id_and_the_request_id(configured: Sandbox) -> None:
    result = run("ticket", "打印机坏了", "-m", "三楼打印机卡纸")
    assert result.exit_code == 0, result.output
    assert "Bangwo8 ticket created" in result.stdout
    [ticket] = configured.bangwo8.tickets.values()
    assert str(ticket["ticketId"]) in result.stdout
    assert str(configured.bangwo8.create_request_ids[0]) in result.stdout


def test_ticket_without_a_message_is_a_usage_error(configured: Sandbox) -> None:
    result = run("ticket", "无法登录")
    assert result.exit_code == 2
    assert configured.bangwo8.counters["requests"] == 0


def test_tickets_lists_the_newest_first(configured: Sandbox) -> None:
    configured.bangwo8.seed()
    result = run("tickets", "--limit", "5", "--json")
    assert result.exit_code == 0, result.output
    listed = TicketList.model_validate_json(result.stdout)
    assert len(listed.tickets) == 5
    created = [t.created_at for t in listed.tickets]
    assert created == sorted(created, reverse=True)  # type: ignore[type-var]
    table = run("tickets", "--limit", "5")
    assert "Bangwo8 tickets" in table.stdout
    assert listed.tickets[0].subject in table.stdout


def test_tickets_refuses_a_date_it_cannot_read(configured: Sandbox) -> None:
    result = run("tickets", "--since", "yesterday")
    assert result.exit_code == EXIT_INPUT
    assert "--since" in one_error_line(result)


def test_a_vendor_failure_exits_with_the_vendor_code(configured: Sandbox) -> None:
    configured.bangwo8.faults.fail_next = 10
    result = run("tickets")
    assert result.exit_code == EXIT_VENDOR
    assert "bangwo8" in one_error_line(result)


# --- errors --json, and the commands in the installed `crmops` ----------------------------------


def test_errors_json_is_the_lookup_result() -> None:
    result = CliRunner().invoke(app, ["errors", "502", "--json"])
    assert result.exit_code == 0, result.output
    assert ErrorLookup.model_validate_json(result.stdout).matches[0].code == "502"


def test_the_crmops_command_has_them(configured: Sandbox) -> None:
    configured.bangwo8.seed()
    done = subprocess.run(
        [sys.executable, "-m", "server", "tickets", "--limit", "2", "--json"],
        capture_output=True,
        text=True,
        timeout=WAIT,
        env=dict(os.environ),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert len(TicketList.model_validate_json(done.stdout).tickets) == 2
