"""How quickly the bot acknowledges Slack: a bolt middleware timing each request to its ack.

    app.middleware(time_acks)     # first, so the dedupe and access middleware count too

With `process_before_response=False` (crmops's), bolt's `next()` returns as soon as the
listener has called `ack()`, so the time until it returns is what Slack waits for (it gives
up after 3 s). Recorded in `crmops_slack_ack_seconds{kind}` (`tools.observability`), `kind`
being what Slack sent: command, block_actions, view_submission, shortcut, options, event,
other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.request.payload_utils import (
    is_action,
    is_event,
    is_options,
    is_shortcut,
    is_slash_command,
    is_view_submission,
)
from slack_bolt.response import BoltResponse

from tools.observability.calls import timed_ack

_KINDS: tuple[tuple[Callable[[dict[str, Any]], bool], str], ...] = (
    (is_slash_command, "command"),
    (is_action, "block_actions"),
    (is_view_submission, "view_submission"),
    (is_shortcut, "shortcut"),
    (is_options, "options"),
    (is_event, "event"),
)


def request_kind(body: dict[str, Any]) -> str:
    """What a Slack request is, as a bounded label."""
    return next((kind for matches, kind in _KINDS if matches(body)), "other")


async def time_acks(
    req: AsyncBoltRequest,
    resp: BoltResponse,
    next: Callable[[], Awaitable[BoltResponse]],  # noqa: A002 - bolt passes it by this name
) -> BoltResponse:
    """A bolt middleware (`app.middleware(time_acks)`): see the module doc."""
    return await timed_ack(request_kind(req.body), next())
