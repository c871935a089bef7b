"""Drop deliveries Slack (or anyone replaying a signed request) sends twice.

Slack retries an event it thinks was not acknowledged, and a Socket Mode envelope can be
redelivered after a reconnect. Each delivery carries an id that stays the same across
retries: `event_id` (Events API) or `trigger_id` (slash commands, buttons, modals). The
first delivery is handled; a repeat within `ttl` is acknowledged and ignored.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from tools.simulation import ReplayGuard

Clock = Callable[[], float]
DEFAULT_TTL = 600.0
"""Slack retries within minutes and signatures are valid 5 minutes: 10 covers both."""


def delivery_id(body: Mapping[str, Any]) -> str | None:
    """The id that stays the same when this delivery is repeated, if it has one."""
    for key in ("event_id", "trigger_id"):
        value = body.get(key)
        if isinstance(value, str) and value:
            return f"{key}:{value}"
    return None


class DeliveryDeduper:
    """A bolt middleware: `app.middleware(DeliveryDeduper())`."""

    def __init__(self, *, ttl: float = DEFAULT_TTL, clock: Clock = time.time) -> None:
        self._seen = ReplayGuard(ttl, clock)
        self.dropped = 0

    async def __call__(
        self,
        req: AsyncBoltRequest,
        resp: BoltResponse,
        next: Callable[[], Awaitable[BoltResponse]],  # noqa: A002 - bolt passes it by this name
    ) -> BoltResponse:
        key = delivery_id(req.body)
        if key is not None and self._seen.seen_before(key):
            self.dropped += 1
            return BoltResponse(status=200, body="")
        return await next()
