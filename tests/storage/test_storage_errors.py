"""Our own backends' branch of the error tree: Redis or PostgreSQL down is a
`StorageUnavailableError`, never a vendor failure, and the vendor transport does not retry it."""

from __future__ import annotations

import logging

import httpx
import pytest
from pydantic import SecretStr

from tests.storage.postgres_server import PASSWORD, free_port
from tests.storage.redis_server import _free_port
from tests.storage.test_redis_limiter import build_settings
from tools.errors import StorageError, StorageUnavailableError, VendorError
from tools.exit_codes import EXIT_STORAGE, exit_code
from tools.sandbox.stack import build_simulators
from tools.services import Services
from tools.settings import CrmopsSettings
from tools.staff import list_staff
from tools.storage.configured import open_store
from tools.storage.journal import ImportKey
from tools.transport import RetryPolicy, retry_decision


def test_a_storage_error_is_never_retried_as_a_vendor_failure() -> None:
    down = StorageUnavailableError("Redis at redis://cache:6379/0 failed", backend="redis")
    assert not isinstance(down, VendorError)
    assert retry_decision(down, idempotent=True, wait_max=5.0) is False
    assert exit_code(down) == EXIT_STORAGE


async def test_redis_down_stops_the_call_at_once_and_asks_no_vendor(
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, simulator, _ = build_simulators(seed=True)
    settings = build_settings(redis_url=f"redis://:hunter2@127.0.0.1:{_free_port()}/0")
    transport = httpx.ASGITransport(simulator.app)
    retry = RetryPolicy(attempts=5, wait_initial=0, wait_max=0, wait_jitter=0)
    caplog.set_level(logging.WARNING)
    async with Services(settings, transports={"xiaolanben": transport}, retry=retry) as services:
        with pytest.raises(StorageUnavailableError) as raised:
            await list_staff(services)
    assert raised.value.backend == "redis"
    assert "CRMOPS_REDIS_URL" in raised.value.action
    assert simulator.counters["requests"] == 0
    assert "retrying" not in caplog.text  # the transport's retry hook never fired
    assert "hunter2" not in str(raised.value) + caplog.text


async def test_postgresql_down_is_a_storage_error_with_what_to_do() -> None:
    url = f"postgresql://crmops:{PASSWORD}@127.0.0.1:{free_port()}/crmops"
    async with open_store(CrmopsSettings(database_url=SecretStr(url))) as store:
        with pytest.raises(StorageError) as raised:
            await store.journal.find_import(ImportKey("xiaolanben", "company-42", "f" * 64))
    error = raised.value
    assert isinstance(error, StorageUnavailableError)
    assert (error.backend, exit_code(error)) == ("postgresql", EXIT_STORAGE)
    assert "CRMOPS_DATABASE_URL" in error.action
    assert PASSWORD not in str(error)
