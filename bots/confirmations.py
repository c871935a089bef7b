"""Pending confirmations: single-use, expiring, pressable only by the user who asked.

A write (`/crm ticket`, `/crm import`) is first shown with Confirm / Cancel buttons whose
value is a confirmation id; the store keeps what the write will do until it is taken::

    store = MemoryConfirmationStore(clock=time.time)
    pending = Confirmation.new(command="ticket", user_id="U1", ..., ttl=300, clock=store.clock)
    await store.put(pending)
    taken = await store.take(pending.id, user_id="U1")   # ConfirmationRefusedError otherwise

`ConfirmationStore` is the interface; the in-process store serves one process. A store
shared by several processes (Redis) implements the same three methods, with `take` atomic.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from tools.errors import CrmopsError

Clock = Callable[[], float]
RefusalReason = Literal["unknown", "expired", "used", "not_yours"]

_REFUSALS: dict[RefusalReason, str] = {
    "unknown": "This confirmation is unknown or has expired; run the command again.",
    "expired": "This confirmation has expired; run the command again.",
    "used": "This was already confirmed or cancelled; nothing was done twice.",
    "not_yours": "Only {owner} can confirm or cancel this.",
}


class ConfirmationRefusedError(CrmopsError):
    """A confirmation that cannot be taken: unknown, expired, already used, or not yours."""

    def __init__(self, reason: RefusalReason, *, owner: str = "") -> None:
        self.reason = reason
        super().__init__(_REFUSALS[reason].format(owner=f"<@{owner}>"))


class Confirmation(BaseModel):
    """What a pending write will do, who asked for it, where, and until when."""

    model_config = ConfigDict(frozen=True)

    id: str
    command: str = Field(description="the subcommand: ticket, import")
    user_id: str
    team_id: str
    channel_id: str
    response_url: str = Field(description="the command's response_url, to report back")
    expires_at: float
    payload: dict[str, Any] = Field(default_factory=dict, description="the write's arguments")

    @classmethod
    def new(
        cls,
        *,
        command: str,
        user_id: str,
        team_id: str,
        channel_id: str,
        response_url: str,
        payload: dict[str, Any],
        ttl: float,
        clock: Clock = time.time,
    ) -> Confirmation:
        """A confirmation with a fresh unguessable id, valid for `ttl` seconds."""
        return cls(
            id=secrets.token_urlsafe(16),
            command=command,
            user_id=user_id,
            team_id=team_id,
            channel_id=channel_id,
            response_url=response_url,
            expires_at=clock() + ttl,
            payload=payload,
        )


class ConfirmationStore(Protocol):
    """Where pending confirmations wait. `take` must be atomic: one taker wins."""

    async def put(self, confirmation: Confirmation) -> None:
        """Keep `confirmation` until it is taken or expires."""
        ...

    async def take(self, confirmation_id: str, *, user_id: str) -> Confirmation:
        """Remove and return it; `ConfirmationRefusedError` when `user_id` may not take it."""
        ...

    async def replace(self, confirmation: Confirmation) -> None:
        """Store a changed payload under the same id (e.g. the rejected rows of an import)."""
        ...


class MemoryConfirmationStore:
    """In-process `ConfirmationStore`; remembers used ids until they would have expired."""

    def __init__(self, *, clock: Clock = time.time) -> None:
        self.clock = clock
        self._pending: dict[str, Confirmation] = {}
        self._used: dict[str, float] = {}

    async def put(self, confirmation: Confirmation) -> None:
        self._forget_expired()
        self._pending[confirmation.id] = confirmation

    async def take(self, confirmation_id: str, *, user_id: str) -> Confirmation:
        # No await between the checks and the pop: in one event loop, one taker wins.
        self._forget_expired()
        pending = self._pending.get(confirmation_id)
        if pending is None:
            reason: RefusalReason = "used" if confirmation_id in self._used else "unknown"
            raise ConfirmationRefusedError(reason)
        if pending.user_id != user_id:
            raise ConfirmationRefusedError("not_yours", owner=pending.user_id)
        if pending.expires_at <= self.clock():
            del self._pending[confirmation_id]
            raise ConfirmationRefusedError("expired")
        del self._pending[confirmation_id]
        self._used[confirmation_id] = pending.expires_at
        return pending

    async def replace(self, confirmation: Confirmation) -> None:
        self._pending[confirmation.id] = confirmation

    def _forget_expired(self) -> None:
        # Expired entries are kept one extra TTL-free minute so "expired" beats "unknown".
        now = self.clock()
        self._pending = {k: c for k, c in self._pending.items() if c.expires_at + 60 > now}
        self._used = {k: t for k, t in self._used.items() if t + 60 > now}
