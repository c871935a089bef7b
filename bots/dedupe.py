"""Drop deliveries Slack (or anyone replaying a signed request) sends twice.

Slack retries an event it thinks was not acknowledged, and a Socket Mode envelope can be
redelivered after a reconnect. Each delivery carries an id that stays the same across
retries: `event_id` (Events API) or `trigger_id` (slash commands, buttons, modals). The
first delivery is handled; a repeat within `ttl` is acknowledged and ignored.

Which ids were seen is kept in the process (`MemoryDeliveries`), or in Redis
(`RedisDeliveries`, one `SET NX EX` per delivery) so that replicas behind a load balancer
handle a retry once between them even when it reaches another replica.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from tools.errors import StorageUnavailableError
from tools.storage.redis import RedisBackend
from tools.storage.replay import ReplayGuard

log = logging.getLogger("crmops.slack")

Clock = Callable[[], float]
DEFAULT_TTL = 600.0
"""Slack retries within minutes and signatures are valid 5 minutes: 10 covers both."""
CHECK_TIMEOUT = 0.5
"""Seconds the seen-before check may take: it runs before the ack."""


def delivery_id(body: Mapping[str, Any]) -> str | None:
    """The id that stays the same when this delivery is repeated, if it has one."""
    for key in ("event_id", "trigger_id"):
        value = body.get(key)
        if isinstance(value, str) and value:
            return f"{key}:{value}"
    return None


class SeenDeliveries(Protocol):
    """Remembers delivery ids; `first_time` must be atomic across everyone sharing it."""

    async def first_time(self, key: str) -> bool:
        """True the first time `key` is offered within the TTL, False for a repeat."""
        ...


class MemoryDeliveries:
    """`SeenDeliveries` of this process."""

    def __init__(self, *, ttl: float = DEFAULT_TTL, clock: Clock = time.time) -> None:
        self._seen = ReplayGuard(ttl, clock)

    async def first_time(self, key: str) -> bool:
        return not self._seen.seen_before(key)


class RedisDeliveries:
    """`SeenDeliveries` shared by replicas: `SET crmops:slack:delivery:{id} 1 NX EX ttl`."""

    def __init__(self, backend: RedisBackend, *, ttl: float = DEFAULT_TTL) -> None:
        self._backend = backend
        self._ttl = max(1, round(ttl))

    async def first_time(self, key: str) -> bool:
        command = self._backend.client.set(
            self._backend.key("slack", "delivery", key), b"1", nx=True, ex=self._ttl
        )
        return bool(await self._backend.call(command, doing="checking a Slack delivery id"))


class DeliveryDeduper:
    """A bolt middleware: `app.middleware(DeliveryDeduper())`.

    When `seen` (Redis) fails, the delivery is handled rather than lost: a repeat then is
    at worst a read answered twice, as every write waits for a confirmation (in the same
    Redis, so it cannot be confirmed meanwhile).
    """

    def __init__(
        self,
        *,
        ttl: float = DEFAULT_TTL,
        clock: Clock = time.time,
        seen: SeenDeliveries | None = None,
    ) -> None:
        self._seen = seen or MemoryDeliveries(ttl=ttl, clock=clock)
        self.dropped = 0

    async def __call__(
        self,
        req: AsyncBoltRequest,
        resp: BoltResponse,
        next: Callable[[], Awaitable[BoltResponse]],  # noqa: A002 - bolt passes it by this name
    ) -> BoltResponse:
        key = delivery_id(req.body)
        if key is not None and not await self._first_time(key):
            self.dropped += 1
            return BoltResponse(status=200, body="")
        return await next()

    async def _first_time(self, key: str) -> bool:
        try:
            # Before the ack: a slow Redis must not hold it (Slack waits 3 s in all).
            return await asyncio.wait_for(self._seen.first_time(key), CHECK_TIMEOUT)
        except StorageUnavailableError as exc:
            log.warning("handling a delivery without dedupe: %s", exc)
            return True
        except TimeoutError:
            log.warning("handling a delivery without dedupe: Redis took over %s s", CHECK_TIMEOUT)
            return True
