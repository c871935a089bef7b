"""`CRMOPS_DATABASE_URL`: choosing PostgreSQL, creating its schema, and failing clearly
without ever showing the password. (The journal and audit log behaviour itself is the
tests/bulk suite, which runs on both backends.)"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from server.cli_import import standalone_app
from tests.bulk.conftest import XLB_HEADER, write_csv, xiaolanben_rows
from tests.storage.postgres_server import PASSWORD, PostgresServer, free_port
from tools.errors import ConfigurationError, StorageUnavailableError
from tools.exit_codes import EXIT_STORAGE
from tools.redaction import shown_url
from tools.sandbox.stack import start_sandbox
from tools.settings import CrmopsSettings
from tools.storage.audit import Actor, AuditEntry
from tools.storage.configured import open_store
from tools.storage.journal import ImportKey, NewRow, RowUpdate
from tools.storage.postgres import SCHEMA_VERSION, PostgresJournal
from tools.storage.shared import check_readiness, readiness_checks

KEY = ImportKey("xiaolanben", "company-42@http://127.0.0.1:1", "f" * 64)


def _settings(monkeypatch: pytest.MonkeyPatch, url: str) -> CrmopsSettings:
    monkeypatch.setenv("CRMOPS_DATABASE_URL", url)
    return CrmopsSettings(_env_file=None)


async def test_a_postgresql_url_puts_the_journal_in_postgresql(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sqlite_file = tmp_path / "crmops.db"
    monkeypatch.setenv("CRMOPS_DB", str(sqlite_file))
    settings = _settings(monkeypatch, postgres_url)
    assert PASSWORD not in repr(settings)

    async with open_store(settings) as store:
        assert isinstance(store.journal, PostgresJournal)
        assert store.location == postgres_url.replace(PASSWORD, "***")
        record = await store.journal.open_import(KEY, source="in.csv")

    with psycopg.connect(postgres_url) as connection:
        assert connection.execute("SELECT version FROM crmops_schema").fetchall() == [
            (SCHEMA_VERSION,)
        ]
        assert connection.execute("SELECT id, source FROM imports").fetchall() == [
            (record.id, "in.csv")
        ]
    assert not sqlite_file.exists()


async def test_replicas_starting_together_create_the_schema_once(postgres_url: str) -> None:
    settings = CrmopsSettings(database_url=postgres_url)
    stores = [open_store(settings) for _ in range(4)]
    try:
        found = await asyncio.gather(*(store.journal.find_import(KEY) for store in stores))
    finally:
        for store in stores:
            await store.aclose()
    assert found == [None] * 4


async def test_a_database_from_a_newer_crmops_is_refused(postgres_url: str) -> None:
    settings = CrmopsSettings(database_url=postgres_url)
    async with open_store(settings) as store:
        await store.journal.find_import(KEY)
    with psycopg.connect(postgres_url) as connection:
        connection.execute("UPDATE crmops_schema SET version = %s", (SCHEMA_VERSION + 1,))

    async with open_store(settings) as store:
        with pytest.raises(ConfigurationError, match="newer than this crmops") as raised:
            await store.journal.find_import(KEY)
    assert PASSWORD not in str(raised.value)


async def test_an_unreachable_server_is_a_quick_clear_error_without_the_password() -> None:
    url = f"postgresql://crmops:{PASSWORD}@127.0.0.1:{free_port()}/crmops"
    settings = CrmopsSettings(database_url=url)
    started = time.monotonic()
    async with open_store(settings) as store:
        with pytest.raises(StorageUnavailableError) as raised:
            await store.journal.find_import(KEY)
    assert time.monotonic() - started < 5
    assert raised.value.backend == "postgresql"
    assert "CRMOPS_DATABASE_URL" in raised.value.action
    message = str(raised.value)
    assert "postgresql://crmops:***@127.0.0.1" in message
    assert "CRMOPS_DATABASE_URL" in message
    assert PASSWORD not in message


async def test_a_wrong_password_is_refused_without_showing_either(
    postgres_server: PostgresServer,
) -> None:
    url = postgres_server.url().replace(PASSWORD, "not-the-password")
    settings = CrmopsSettings(database_url=url)
    async with open_store(settings) as store:
        with pytest.raises(ConfigurationError, match="password authentication failed") as raised:
            await store.audit.recent()
    assert "not-the-password" not in str(raised.value)
    assert PASSWORD not in str(raised.value)


def test_another_database_url_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(monkeypatch, "mysql://crmops:secret@db/crmops")
    with pytest.raises(ConfigurationError, match="postgresql://") as raised:
        open_store(settings)
    assert "secret" not in str(raised.value)


def test_shown_urls_hide_passwords_in_either_place() -> None:
    assert shown_url("postgresql://u:p%40ss@db:5432/crm?sslmode=require") == (
        "postgresql://u:***@db:5432/crm?sslmode=require"
    )
    assert shown_url("postgresql://db/crm?user=u&password=pw") == (
        "postgresql://db/crm?user=u&password=***"
    )
    assert shown_url("postgresql://u@db/crm") == "postgresql://u@db/crm"


def test_crmops_import_with_the_database_down_exits_with_the_storage_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"postgresql://crmops:{PASSWORD}@127.0.0.1:{free_port()}/crmops"
    path = write_csv(tmp_path / "in.csv", XLB_HEADER, xiaolanben_rows(3))
    with start_sandbox(seed=False) as sandbox:
        for name, value in {**sandbox.env(), "CRMOPS_DATABASE_URL": url}.items():
            monkeypatch.setenv(name, value)
        result = CliRunner().invoke(
            standalone_app(), ["import", str(path), "--vendor", "xiaolanben"]
        )
        assert not sandbox.xiaolanben.customers
    assert result.exit_code == EXIT_STORAGE, result.output
    assert "postgresql://crmops:***@127.0.0.1" in result.stderr
    assert PASSWORD not in result.output + result.stderr


async def test_readiness_checks_postgresql_when_it_holds_the_journal(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    ready = readiness_checks(CrmopsSettings(database_url=postgres_url))
    assert [check.name for check in ready] == ["postgresql"]
    assert await check_readiness(ready) == {"postgresql": True}

    down = f"postgresql://crmops:{PASSWORD}@127.0.0.1:{free_port()}/crmops"
    assert await check_readiness(readiness_checks(CrmopsSettings(database_url=down))) == {
        "postgresql": False
    }
    assert "postgresql://crmops:***@127.0.0.1" in caplog.text  # why, in the log
    assert PASSWORD not in caplog.text
    assert readiness_checks(CrmopsSettings()) == []  # SQLite: nothing to check


async def test_once_the_schema_exists_a_role_that_may_only_read_and_write_is_enough(
    postgres_url: str,
) -> None:
    async with open_store(CrmopsSettings(database_url=postgres_url)) as owner:
        await owner.journal.find_import(KEY)  # creates the tables
    role = f"app_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'app-password'")
        admin.execute(f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {role}")
    app_url = postgres_url.replace(f"crmops:{PASSWORD}@", f"{role}:app-password@")

    async with open_store(CrmopsSettings(database_url=app_url)) as store:
        record = await store.journal.open_import(KEY, source="in.csv")
        await store.journal.add_rows(record.id, [NewRow(2, "a", "a", {"customerName": "a"})])
        (row,) = await store.journal.claim(record.id, owner="app", limit=9, lease_seconds=60)
        await store.journal.update_rows(record.id, [RowUpdate(row.number, "confirmed", "created")])
        await store.audit.record(
            AuditEntry(Actor("cli", "app"), "xiaolanben", "import_customer", "in.csv", {}, "ok")
        )
        assert (await store.journal.counts(record.id)).confirmed == 1
    with psycopg.connect(app_url) as app, pytest.raises(psycopg.errors.InsufficientPrivilege):
        app.execute("CREATE TABLE nope (id int)")  # it really may not create anything


async def test_a_role_that_may_not_create_the_tables_is_told_what_to_do(
    postgres_url: str,
) -> None:
    role = f"app_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'app-password'")
    app_url = postgres_url.replace(f"crmops:{PASSWORD}@", f"{role}:app-password@")

    async with open_store(CrmopsSettings(database_url=app_url)) as store:
        with pytest.raises(ConfigurationError, match="may not create crmops's tables") as raised:
            await store.journal.find_import(KEY)
    assert "database's owner" in str(raised.value)
    assert "app-password" not in str(raised.value)
