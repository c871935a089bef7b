"""The local rate limiter: evenly spaced slots per API, no burst, no lost rate."""

from __future__ import annotations

import asyncio

from tools.transport import LocalRateLimiter


async def test_slots_are_evenly_spaced_per_api_even_when_asked_at_once() -> None:
    now = 100.0
    limiter = LocalRateLimiter(1000, clock=lambda: now)

    await asyncio.gather(*(limiter.acquire("a") for _ in range(5)), limiter.acquire("b"))

    a, b = limiter.stats["a"], limiter.stats["b"]
    assert (a.granted, a.first, round(a.last - a.first, 9)) == (5, 100.0, 0.004)
    assert round(a.rate) == 1000
    assert (b.granted, b.first) == (1, 100.0)


async def test_an_idle_api_does_not_bank_a_burst() -> None:
    clock = [0.0]
    limiter = LocalRateLimiter(1000, clock=lambda: clock[0])
    await limiter.acquire("a")
    clock[0] = 50.0  # long idle: the next slot is now, and the one after 1 ms later
    await limiter.acquire("a")
    await limiter.acquire("a")
    assert limiter.stats["a"].last == 50.001
