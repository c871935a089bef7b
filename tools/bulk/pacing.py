"""A rate limiter that reaches its rate: requests to one API start exactly 1/rate apart::

    limiter = SteadyRateLimiter(50 * 0.97)
    services = Services(settings, rate_limiters={"xiaolanben": limiter})

Each `acquire` reserves the next free slot on a timeline (`slot = max(now, last + 1/rate)`)
and sleeps until it. Slots are absolute, so a late wake-up never pushes later requests back,
and no burst ever forms: any one-second window holds at most `rate` + 1 starts. It is the
`tools.transport.RateLimiter` protocol; `aiolimiter` with a bucket of one (what
`LocalRateLimiter` uses) loses a few percent of the rate to timer overshoot.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class PaceStats:
    """What one API's limiter has granted: how many slots, the first and the last."""

    granted: int = 0
    first: float = 0.0
    last: float = 0.0

    @property
    def rate(self) -> float:
        """Starts per second between the first and the last slot (0 below two)."""
        span = self.last - self.first
        return (self.granted - 1) / span if self.granted > 1 and span > 0 else 0.0


class SteadyRateLimiter:
    """At most `rate` request starts per second per API, evenly spaced."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self._clock = clock
        self._next: dict[str, float] = {}
        self.stats: dict[str, PaceStats] = {}

    async def acquire(self, api: str) -> None:
        now = self._clock()
        slot = max(now, self._next.get(api, now))
        self._next[api] = slot + 1 / self.rate
        self._count(api, slot)
        if slot > now:
            await asyncio.sleep(slot - now)

    def _count(self, api: str, slot: float) -> None:
        stats = self.stats.setdefault(api, PaceStats(first=slot))
        stats.granted += 1
        stats.last = slot
