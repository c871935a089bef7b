"""Where state lives that several replicas of crmops must share.

`Services` holds one `SharedState`: with `CRMOPS_REDIS_URL` unset everything stays in the
process, as for a single process; with it set, the per-API rate limits and the Bangwo8
token live in Redis (and `bots/` keeps Slack dedupe and confirmations there)::

    shared = SharedState(settings)
    limiter = shared.rate_limiter("xiaolanben")     # None: the transport's in-process one
    cache = shared.token_cache("bangwo8")           # None: the client's in-process one
    shared.redis                                    # the RedisBackend, or None
    await shared.aclose()

Readiness probes for the HTTP servers' `/readyz` come from `readiness_checks(settings)`;
each is a named async callable that raises when its backend is not ready, and
`tools.serving.readyz_endpoint(checks)` is the Starlette endpoint both servers mount.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from tools.aio import AsyncClosing
from tools.settings import CrmopsSettings, Settings
from tools.vendors.registry import vendor_row

if TYPE_CHECKING:
    from tools.storage.redis import Probe, RedisBackend
    from tools.transport import RateLimiter
    from tools.vendors.bangwo8.auth import TokenCache

log = logging.getLogger("crmops.readiness")

READINESS_TIMEOUT = 3.0
"""Seconds one readiness probe may take (a load balancer's probe times out at about 5)."""


class SharedState(AsyncClosing):
    """The shared backends of one process, made on first use and closed together."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._redis: RedisBackend | None = None

    @property
    def redis(self) -> RedisBackend | None:
        """The Redis backend when `CRMOPS_REDIS_URL` is set; `ConfigurationError` if invalid."""
        url = self.settings.crmops.redis_url
        if url is None or not url.get_secret_value():
            return None
        if self._redis is None:
            # The redis client takes ~40 ms to import: only a process configured for it pays.
            from tools.storage.redis import RedisBackend  # noqa: PLC0415 - start-up cost

            self._redis = RedisBackend(url)
        return self._redis

    def rate_limiter(self, vendor: str) -> RateLimiter | None:
        """`vendor`'s limiter shared over Redis, or None to keep the in-process one."""
        redis = self.redis
        if redis is None:
            return None
        own = vendor_row(vendor).settings_of(self.settings)
        rate = own.rate_limit * self.settings.crmops.rate_headroom
        return redis.rate_limiter(vendor, tenant=self._tenant(vendor), rate=rate)

    def token_cache(self, vendor: str) -> TokenCache | None:
        """`vendor`'s OAuth token cache in Redis, or None to keep the in-process one."""
        redis = self.redis
        if redis is None:
            return None
        # host:port only: a key name is shown by any Redis client, a URL's userinfo is secret
        host = urlsplit(vendor_row(vendor).settings_of(self.settings).url).netloc.rpartition("@")[2]
        return redis.token_cache(vendor, tenant=f"{self._tenant(vendor)}@{host}")

    def _tenant(self, vendor: str) -> str:
        """The vendor account whose limits these are (limits are per tenant, not per key)."""
        row = vendor_row(vendor)
        return row.tenant(row.settings_of(self.settings))

    async def aclose(self) -> None:
        """Close the Redis connections; a later use opens fresh ones."""
        redis, self._redis = self._redis, None
        if redis is not None:
            await redis.aclose()


@dataclass(frozen=True)
class ReadinessCheck:
    """One backend a server needs: `probe()` returns when it is ready, raises otherwise."""

    name: str
    probe: Probe


def readiness_checks(settings: CrmopsSettings) -> list[ReadinessCheck]:
    """The probes `/readyz` runs for these settings: Redis when `CRMOPS_REDIS_URL` is set,
    PostgreSQL when `CRMOPS_DATABASE_URL` is."""
    checks: list[ReadinessCheck] = []
    if settings.redis_url is not None and settings.redis_url.get_secret_value():
        # As in `SharedState.redis`: the redis client only when configured.
        from tools.storage.redis import redis_probe  # noqa: PLC0415 - start-up cost

        checks.append(ReadinessCheck("redis", redis_probe(settings.redis_url)))
    database_url = settings.database_url.get_secret_value() if settings.database_url else ""
    if database_url.startswith(("postgresql://", "postgres://")):
        # psycopg takes ~0.15 s to import: only a server reading PostgreSQL pays for it.
        from tools.storage.postgres import postgres_probe  # noqa: PLC0415

        checks.append(ReadinessCheck("postgresql", postgres_probe(database_url)))
    return checks


async def check_readiness(
    checks: Sequence[ReadinessCheck], *, seconds: float = READINESS_TIMEOUT
) -> dict[str, bool]:
    """Run every probe concurrently, each bounded by `seconds`: name → ready.

    Why one is not ready goes to the log, not to the answer: `/readyz` is unauthenticated.
    """
    results = await asyncio.gather(*(_probe(check, seconds) for check in checks))
    return {check.name: ready for check, ready in zip(checks, results, strict=True)}


async def _probe(check: ReadinessCheck, seconds: float) -> bool:
    try:
        await asyncio.wait_for(check.probe(), seconds)
    except TimeoutError:
        log.warning("not ready: %s did not answer within %.1f s", check.name, seconds)
        return False
    except Exception as exc:  # a probe's failure is an answer ("not ready"), never a 500
        log.warning("not ready: %s: %s", check.name, exc)
        return False
    return True


__all__ = [
    "ReadinessCheck",
    "SharedState",
    "check_readiness",
    "readiness_checks",
]
