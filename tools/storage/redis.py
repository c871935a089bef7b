"""State that replicas share through Redis (`CRMOPS_REDIS_URL`)::

    backend = RedisBackend(settings.crmops.redis_url)
    limiter = backend.rate_limiter("xiaolanben", tenant="company-42", rate=48.5)
    await limiter.acquire("/api/import")     # this API's next slot, over every replica
    tokens = backend.token_cache("bangwo8", tenant="client-id@www.bangwo8.com")
    await backend.ping()                     # readiness
    await backend.aclose()

Every operation is one Redis command or one Lua script run by the server, so replicas never
race on a read-modify-write. Keys (all under `crmops:`):

    crmops:rate:{vendor}:{tenant}:{api}      the API's next free slot, µs of Redis time
    crmops:token:{vendor}:{tenant}           a cached OAuth token (expires when due)
    crmops:slack:...                         Slack dedupe and confirmations (bots/)

A Redis that cannot be reached raises `StorageUnavailableError` (backend "redis"): the
vendor request it guards was not sent. It names the URL without its password and says what
to do. Its retry rule is its own: the Redis client reconnects once (a restarted Redis
leaves dead pooled connections); the vendor transport never retries it as a vendor
failure, and the bulk import leaves the chunk's rows pending in its journal, to be sent
with `--resume`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import SecretStr
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from tools.aio import AsyncClosing
from tools.errors import ConfigurationError, StorageUnavailableError
from tools.redaction import redact, shown_url, url_secrets
from tools.vendors.bangwo8.auth import CachedToken

log = logging.getLogger("crmops.redis")

PREFIX = "crmops"
SCHEMES = ("redis", "rediss", "unix")
TIMEOUT = 5.0
"""Seconds to connect to Redis or wait for its answer before calling it unavailable."""

T = TypeVar("T")

# GCRA with a bucket of one, as tools.transport.LocalRateLimiter, on the server's clock:
# slot = max(now, next); next = slot + interval; the caller sleeps slot - now. The key
# expires once its slot has passed, so an idle API banks nothing and leaves nothing behind.
# Numbers are kept as integer microseconds and written with %.0f: Lua 5.1 would print a
# 16-digit number as 1.7e+15 and lose the microseconds.
ACQUIRE_SLOT = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local slot = math.max(now, tonumber(redis.call('GET', KEYS[1]) or now))
local following = slot + interval
local ttl_ms = math.ceil((following - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.0f', following), 'PX', ttl_ms)
return slot - now
"""


# redis://secret@host: Redis takes a lone user name for the password (AUTH <password>).
_LONE_USER = re.compile(r"^([a-zA-Z][\w+.\-]*://)[^\s/?#@:]+@")


def redacted(url: SecretStr | str) -> str:
    """The URL as it may be shown (`tools.redaction.shown_url`): its password, in the
    userinfo or as `?password=`, and a lone user name (Redis's password) as `***`."""
    text = url.get_secret_value() if isinstance(url, SecretStr) else url
    return _LONE_USER.sub(r"\1***@", shown_url(text))


BACKEND = "redis"
ACTION = (
    "Check that Redis runs and CRMOPS_REDIS_URL is right; an interrupted import continues "
    "with --resume. Unset CRMOPS_REDIS_URL only for a single process: the limits are then "
    "per process."
)
"""What to do about a Redis that does not answer."""


def unavailable(
    error: BaseException, *, url: str, doing: str, secret: str = ""
) -> StorageUnavailableError:
    """The error for a Redis that failed while `doing` something, with what to do.

    `secret` (the URL's password) is blanked out of Redis's own message, should it be there,
    and so is any other secret (`tools.redaction`).
    """
    detail = " ".join(str(error)[:1000].split())
    if secret:
        detail = detail.replace(secret, "***")
    detail = redact(detail)[:200] or type(error).__name__
    return StorageUnavailableError(
        f"Redis at {url} failed while {doing} ({type(error).__name__}: {detail}). "
        f"Nothing was sent to the vendor. {ACTION}",
        backend=BACKEND,
        action=ACTION,
    )


class RedisBackend(AsyncClosing):
    """One Redis connection pool for a process, and the shared objects built on it.

    `ConfigurationError` (without the URL's password) when `url` is not a Redis URL.
    Nothing connects until the first command.
    """

    def __init__(self, url: SecretStr, *, prefix: str = PREFIX, timeout: float = TIMEOUT) -> None:
        self.url = redacted(url)
        self.prefix = prefix
        self.client = _client(url, self.url, timeout)
        self._password = next(iter(url_secrets(url.get_secret_value())), "")

    def rate_limiter(self, vendor: str, *, tenant: str, rate: float) -> RedisRateLimiter:
        """The limiter of `rate` requests per second per API of this vendor account."""
        return RedisRateLimiter(self, vendor=vendor, tenant=tenant, rate=rate)

    def token_cache(self, vendor: str, *, tenant: str) -> RedisTokenCache:
        """The OAuth token cache of this vendor account."""
        return RedisTokenCache(self, self.key("token", vendor, tenant), vendor=vendor)

    def key(self, *parts: str) -> str:
        """`crmops:part:part...`, the name of one Redis key."""
        return ":".join((self.prefix, *parts))

    async def ping(self) -> None:
        """Return when Redis answers; `StorageUnavailableError` otherwise."""
        await self.call(self.client.ping(), doing="checking readiness")

    async def call(self, command: Awaitable[T], *, doing: str) -> T:
        """Await one Redis command, turning a Redis failure into `StorageUnavailableError`."""
        try:
            return await command
        except (RedisError, OSError) as exc:
            log.warning("Redis at %s failed while %s: %s", self.url, doing, type(exc).__name__)
            raise unavailable(exc, url=self.url, doing=doing, secret=self._password) from None

    async def aclose(self) -> None:
        await self.client.aclose()


def _client(url: SecretStr, shown: str, timeout: float) -> Redis:
    text = url.get_secret_value()
    if urlsplit(text).scheme.lower() not in SCHEMES:
        raise ConfigurationError(
            vendor="crmops",
            detail=f"CRMOPS_REDIS_URL ({shown}) must start with redis://, rediss:// or "
            "unix://, e.g. redis://redis.internal:6379/0",
        )
    try:
        return Redis.from_url(
            text,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            # One quick reconnect (a restarted Redis leaves dead pooled connections): Redis's
            # whole retry rule. A longer outage is a StorageUnavailableError, which the
            # vendor transport does not retry.
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=1),
        )
    except ValueError as exc:
        reason = redact(str(exc).replace(text, shown))
        raise ConfigurationError(
            vendor="crmops", detail=f"CRMOPS_REDIS_URL ({shown}) is invalid: {reason}"
        ) from None


class RedisRateLimiter:
    """`tools.transport.RateLimiter` shared by every process using the same Redis.

    The same semantics as `LocalRateLimiter` — evenly spaced slots, no burst, an idle API
    banks nothing — on Redis's clock, keyed per vendor, tenant and API: N replicas together
    start at most `rate` requests per second (+1 in any one-second window) on each API.
    """

    def __init__(self, backend: RedisBackend, *, vendor: str, tenant: str, rate: float) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = rate
        self.vendor = vendor
        self._backend = backend
        self._prefix = backend.key("rate", vendor, tenant)
        # Rounded up: replicas may only ever be slower than the limit, never faster.
        self._interval_us = -(-1_000_000 // rate)
        self._script = backend.client.register_script(ACQUIRE_SLOT)

    async def acquire(self, api: str) -> None:
        """Reserve the next slot of `api` and sleep until it."""
        wait_us = await self._backend.call(
            self._script(keys=[f"{self._prefix}:{api}"], args=[int(self._interval_us)]),
            doing=f"waiting for a {self.vendor} rate-limit slot ({api})",
        )
        if int(wait_us) > 0:
            await asyncio.sleep(int(wait_us) / 1_000_000)


class RedisTokenCache:
    """A `TokenCache` in Redis: one token per vendor account, for every replica.

    The token is stored (that is the point) but never logged; it expires in Redis when it
    is due for a refresh, so a stale one is never handed out.
    """

    def __init__(self, backend: RedisBackend, key: str, *, vendor: str) -> None:
        self._backend = backend
        self._key = key
        self._vendor = vendor

    async def get(self) -> CachedToken | None:
        raw = await self._call(self._backend.client.get(self._key), "reading the token")
        if raw is None:
            return None
        try:
            data: dict[str, Any] = json.loads(raw)
            return CachedToken(SecretStr(str(data["token"])), float(data["refresh_at"]))
        except (ValueError, KeyError, TypeError):
            return None  # not ours or from an older version: fetch a fresh token

    async def put(self, token: CachedToken) -> None:
        data = {"token": token.value.get_secret_value(), "refresh_at": token.refresh_at}
        ttl_ms = max(1, int((token.refresh_at - time.time()) * 1000))
        await self._call(
            self._backend.client.set(self._key, json.dumps(data), px=ttl_ms), "storing the token"
        )

    async def _call(self, command: Awaitable[T], doing: str) -> T:
        return await self._backend.call(command, doing=f"{doing} of {self._vendor}")


Probe = Callable[[], Awaitable[None]]


def redis_probe(url: SecretStr, *, timeout: float = 2.0) -> Probe:
    """A readiness probe: a fresh connection to `url` and a PING, closed again."""

    async def probe() -> None:
        async with RedisBackend(url, timeout=timeout) as backend:
            await backend.ping()

    return probe
