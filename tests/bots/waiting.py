"""Bounded waiting for something another thread or process does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def wait_until(check: Callable[[], bool], *, within: float = 5.0) -> None:
    """Return once `check()` is true; `AssertionError` after `within` seconds."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not come true in time")
        await asyncio.sleep(0.01)
