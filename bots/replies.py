"""Who asked, and answering them: what every `/crm` flow shares.

    caller = Caller.of_command(body)            # or Caller.of_interaction(body) for a button
    await ack()
    await reply(respond, "list the staff", lambda: staff_answer())   # never raises

Past the ack nothing may escape a listener (bolt would answer 404), so `send` and `reply`
log a failure to post instead of raising, and `reply` turns a failed tool call into an
answer that says what went wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncRespond

from bots import blocks
from tools.errors import InputError
from tools.storage.audit import Actor

log = logging.getLogger("crmops.slack")


@dataclass(frozen=True)
class Caller:
    """Who ran a command or pressed a button, in which workspace and channel."""

    user_id: str
    team_id: str
    channel_id: str

    @classmethod
    def of_command(cls, body: dict[str, Any]) -> Caller:
        return cls(
            user_id=str(body.get("user_id", "")),
            team_id=str(body.get("team_id", "")),
            channel_id=str(body.get("channel_id", "")),
        )

    @classmethod
    def of_interaction(cls, body: dict[str, Any]) -> Caller:
        return cls(
            user_id=str((body.get("user") or {}).get("id", "")),
            team_id=str((body.get("team") or {}).get("id", "")),
            channel_id=str((body.get("channel") or {}).get("id", "")),
        )

    @property
    def actor(self) -> Actor:
        """The audit log's actor: `team/channel/user`, passed down to the tool that writes."""
        return Actor.slack_user(self.user_id, team_id=self.team_id, channel_id=self.channel_id)


async def send(respond: AsyncRespond, answer: blocks.Message, **options: Any) -> None:
    """Post through `response_url`; a failure is logged, never raised (we are past the ack)."""
    try:
        await respond(**answer, **options)
    except Exception:
        log.exception("could not post to response_url")


async def answer(ack: AsyncAck, respond: AsyncRespond, message: blocks.Message) -> None:
    """Answer in the ack when it has not been sent yet, else through `response_url`."""
    if ack.response is None:
        await ack(**message)
    else:
        await send(respond, message)


async def reply(
    respond: AsyncRespond, doing: str, work: Callable[[], Awaitable[blocks.Message]]
) -> None:
    """Post what `work` answers, or a failure message saying what could not be done."""
    try:
        message = await work()
    except Exception as exc:
        if not isinstance(exc, InputError):
            log.warning("could not %s", doing, exc_info=True)
        message = blocks.failure_message(exc, doing=doing)
    await send(respond, message)
