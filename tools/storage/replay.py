"""In-process memory of what was seen recently: one replica's Slack deliveries, a
simulator's signatures. Replicas share theirs through Redis instead (`tools.storage.redis`)."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]


class ReplayGuard:
    """Remembers values for `ttl` seconds; `seen_before` is True for a repeat within that."""

    def __init__(self, ttl: float, clock: Clock = time.time) -> None:
        self.ttl = ttl
        self._clock = clock
        self._expiry: dict[str, float] = {}

    def seen_before(self, value: str) -> bool:
        now = self._clock()
        if len(self._expiry) > 10_000:
            self._expiry = {k: t for k, t in self._expiry.items() if t > now}
        if self._expiry.get(value, 0.0) > now:
            return True
        self._expiry[value] = now + self.ttl
        return False
