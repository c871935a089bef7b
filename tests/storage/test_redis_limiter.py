"""The Redis rate limiter and token cache: shared by replicas, atomic, paced, and clear when
Redis is gone. Two `RedisBackend`s stand for two replicas (each its own connection pool)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from tests.storage.redis_server import _free_port
from tools.errors import ConfigurationError, StorageUnavailableError
from tools.sandbox.stack import BW8_CLIENT_SECRET, Sandbox, build_simulators
from tools.services import Services
from tools.settings import CrmopsSettings, Settings
from tools.storage.redis import RedisBackend, RedisRateLimiter, redacted
from tools.storage.shared import SharedState
from tools.tickets import list_tickets


@pytest.fixture
async def replicas(redis_url: str) -> AsyncIterator[tuple[RedisBackend, RedisBackend]]:
    first, second = RedisBackend(SecretStr(redis_url)), RedisBackend(SecretStr(redis_url))
    async with first, second:
        yield first, second


async def _starts(limiter: RedisRateLimiter, api: str, count: int) -> list[float]:
    async def one() -> float:
        await limiter.acquire(api)
        return time.monotonic()

    return list(await asyncio.gather(*(one() for _ in range(count))))


def _most_in_one_second(starts: list[float]) -> int:
    ordered = sorted(starts)
    return max(sum(1 for t in ordered if start <= t < start + 1.0) for start in ordered)


async def test_two_replicas_together_keep_one_rate(
    replicas: tuple[RedisBackend, RedisBackend],
) -> None:
    rate, each = 20.0, 15
    limiters = [r.rate_limiter("xiaolanben", tenant="company-42", rate=rate) for r in replicas]
    began = time.monotonic()
    starts = await asyncio.gather(*(_starts(limiter, "/api/import", each) for limiter in limiters))
    everything = [t for replica in starts for t in replica]
    # 30 slots 1/20 s apart: the last at 29/20 s. Lost updates (two callers reading the same
    # `next`) would hand out shared slots and finish early.
    assert max(everything) - began >= (2 * each - 1) / rate * 0.98
    assert _most_in_one_second(everything) <= rate + 1


async def test_each_tenant_and_api_has_its_own_slots(
    replicas: tuple[RedisBackend, RedisBackend],
) -> None:
    first, second = replicas
    rate = 10.0
    pairs = [
        (first.rate_limiter("xiaolanben", tenant="a", rate=rate), "/api/import"),
        (second.rate_limiter("xiaolanben", tenant="b", rate=rate), "/api/import"),
        (first.rate_limiter("xiaolanben", tenant="a", rate=rate), "/api/query"),
        (second.rate_limiter("socialepoch", tenant="a", rate=rate), "/api/import"),
    ]
    began = time.monotonic()
    await asyncio.gather(*(_starts(limiter, api, 4) for limiter, api in pairs))
    # Four separate timelines of 4 slots each: 0.3 s, not the 1.5 s of one shared timeline.
    assert time.monotonic() - began < 1.0


async def test_an_idle_api_banks_nothing(replicas: tuple[RedisBackend, RedisBackend]) -> None:
    limiter = replicas[0].rate_limiter("bangwo8", tenant="c", rate=10.0)
    await limiter.acquire("/api/v1/tickets.json")
    await asyncio.sleep(0.5)
    began = time.monotonic()
    await _starts(limiter, "/api/v1/tickets.json", 4)
    # Idle for five intervals, yet no burst: the first goes now, the next three 0.1 s apart.
    assert time.monotonic() - began >= 0.29


async def test_keys_name_vendor_tenant_and_api_and_expire(
    replicas: tuple[RedisBackend, RedisBackend],
) -> None:
    backend = replicas[0]
    await backend.rate_limiter("xiaolanben", tenant="company-42", rate=5).acquire("/api/import")
    key = "crmops:rate:xiaolanben:company-42:/api/import"
    assert await backend.client.exists(key) == 1
    assert 0 < await backend.client.pttl(key) <= 1200 + 1000


async def test_lost_redis_is_a_clear_storage_error_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = SecretStr(f"redis://:hunter2-secret@127.0.0.1:{_free_port()}/0")
    caplog.set_level(logging.DEBUG)
    async with RedisBackend(url, timeout=1) as backend:
        limiter = backend.rate_limiter("xiaolanben", tenant="company-42", rate=5)
        with pytest.raises(StorageUnavailableError) as caught:
            await limiter.acquire("/api/import")
    error = caught.value
    assert error.backend == "redis"
    assert "CRMOPS_REDIS_URL" in error.action
    text = str(error)
    assert "xiaolanben rate-limit slot (/api/import)" in text
    assert "redis://:***@127.0.0.1" in text
    assert "CRMOPS_REDIS_URL" in text
    assert "--resume" in text
    assert "hunter2" not in text
    assert "hunter2" not in caplog.text


def test_a_url_that_is_not_redis_is_a_configuration_error_without_the_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        RedisBackend(SecretStr("http://user:hunter2@cache.internal:6379"))
    assert "hunter2" not in str(caught.value)
    assert "CRMOPS_REDIS_URL (http://user:***@cache.internal:6379)" in str(caught.value)


def test_the_setting_is_a_secret() -> None:
    settings = CrmopsSettings(redis_url=SecretStr("redis://:hunter2@cache:6379/0"))
    assert "hunter2" not in repr(settings)
    assert redacted(settings.redis_url or "") == "redis://:***@cache:6379/0"
    assert redacted("redis://cache:6379/0") == "redis://cache:6379/0"


async def test_without_redis_url_nothing_is_shared() -> None:
    sandbox_settings = build_settings(redis_url=None)
    shared = SharedState(sandbox_settings)
    assert shared.redis is None
    assert shared.rate_limiter("xiaolanben") is None
    assert shared.token_cache("bangwo8") is None
    await shared.aclose()


def build_settings(*, redis_url: str | None, bangwo8_url: str = "http://127.0.0.1:9") -> Settings:
    """Sandbox credentials (no server needed) with `CRMOPS_REDIS_URL` set or not."""
    socialepoch, xiaolanben, bangwo8 = build_simulators(seed=True)
    sandbox = Sandbox(socialepoch, xiaolanben, bangwo8, "https://se", "https://xlb", bangwo8_url)
    crmops = CrmopsSettings(redis_url=SecretStr(redis_url) if redis_url else None)
    return sandbox.settings(crmops)


async def test_replicas_share_one_bangwo8_token(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _, _, simulator = build_simulators(seed=True)
    transport = httpx.ASGITransport(simulator.app)
    settings = build_settings(redis_url=redis_url, bangwo8_url="https://bangwo8.test")
    for _ in range(2):  # two replicas, one after the other: the second reuses the token
        async with Services(settings, transports={"bangwo8": transport}) as replica:
            await list_tickets(replica)
    assert simulator.counters["tokens_issued"] == 1
    raw = await _stored_token(redis_url)
    assert raw is not None
    assert BW8_CLIENT_SECRET not in raw
    token = json.loads(raw)["token"]
    assert token not in caplog.text


async def _stored_token(redis_url: str) -> str | None:
    async with RedisBackend(SecretStr(redis_url)) as backend:
        keys = [key async for key in backend.client.scan_iter("crmops:token:bangwo8:*")]
        assert keys == [b"crmops:token:bangwo8:sandbox-client@bangwo8.test"]
        raw = await backend.client.get(keys[0])
    return raw.decode() if isinstance(raw, bytes) else None


async def test_a_revoked_shared_token_is_replaced_once_for_every_replica(redis_url: str) -> None:
    _, _, simulator = build_simulators(seed=True)
    transport = httpx.ASGITransport(simulator.app)
    settings = build_settings(redis_url=redis_url, bangwo8_url="https://bangwo8.test")
    async with Services(settings, transports={"bangwo8": transport}) as first:
        await list_tickets(first)
        simulator.expire_tokens()  # the vendor revokes it early: the next call gets a 401
        await list_tickets(first)
    async with Services(settings, transports={"bangwo8": transport}) as second:
        await list_tickets(second)
    assert simulator.counters["unauthorized"] == 1
    assert simulator.counters["tokens_issued"] == 2
