"""Pending confirmations: single-use, expiring, pressable only by the user who asked.

A write (`/crm ticket`, `/crm import`) is first shown with Confirm / Cancel buttons whose
value is a confirmation id; the store keeps what the write will do until it is taken::

    store = MemoryConfirmationStore(clock=time.time)
    pending = Confirmation.new(command="ticket", user_id="U1", ..., ttl=300, clock=store.clock)
    await store.put(pending)
    taken = await store.take(pending.id, user_id="U1")   # ConfirmationRefusedError otherwise

`ConfirmationStore` is the interface; the in-process store serves one process, and
`RedisConfirmationStore` replicas behind a load balancer: a confirmation asked for on one is
taken on another, once (`take` is one Lua script run by Redis).

`ConfirmationFlow` is what the flows use: `ask` stores a pending write of a caller, `taken`
takes the one a pressed button names (telling the presser when it cannot), `cancel` is the
Cancel button's whole work::

    flow = ConfirmationFlow(store, ttl=300, clock=time.time)
    pending = await flow.ask(caller, "ticket", response_url, {"subject": ...})
    pending = await flow.taken(body, respond)     # on Confirm; None: already answered
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any, Literal, Protocol, cast

from pydantic import BaseModel, ConfigDict, Field
from redis.typing import EncodableT, FieldT
from slack_bolt.async_app import AsyncRespond

from bots import blocks
from bots.replies import Caller, send
from tools.errors import CrmopsError
from tools.i18n import marked, tr
from tools.storage.redis import RedisBackend

Clock = Callable[[], float]
RefusalReason = Literal["unknown", "expired", "used", "not_yours"]

_REFUSALS: dict[RefusalReason, str] = {
    "unknown": marked("This confirmation is unknown or has expired; run the command again."),
    "expired": marked("This confirmation has expired; run the command again."),
    "used": marked("This was already confirmed or cancelled; nothing was done twice."),
    "not_yours": marked("Only {owner} can confirm or cancel this."),
}


class ConfirmationRefusedError(CrmopsError):
    """A confirmation that cannot be taken: unknown, expired, already used, or not yours."""

    def __init__(self, reason: RefusalReason, *, owner: str = "") -> None:
        self.reason = reason
        super().__init__(tr(_REFUSALS[reason], owner="<@" + owner + ">"))


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


KEPT_AFTER_EXPIRY = 60.0
"""Seconds an expired or used confirmation is remembered, so the refusal can say which."""

# KEYS: the pending hash, the used marker. ARGV: who presses, now (the store's clock).
# Returns {"ok", body} | {"not_yours", owner} | {"expired"} | {"used"} | {"unknown"}.
TAKE_ONCE = """
local found = redis.call('HMGET', KEYS[1], 'user_id', 'expires_at', 'body')
if not found[1] then
  if redis.call('EXISTS', KEYS[2]) == 1 then return {'used'} end
  return {'unknown'}
end
if found[1] ~= ARGV[1] then return {'not_yours', found[1]} end
redis.call('DEL', KEYS[1])
local expires_at = tonumber(found[2])
if expires_at <= tonumber(ARGV[2]) then return {'expired'} end
local kept_ms = math.ceil((expires_at - tonumber(ARGV[2]) + tonumber(ARGV[3])) * 1000)
redis.call('SET', KEYS[2], '1', 'PX', kept_ms)
return {'ok', found[3]}
"""

# KEYS: the pending hash. ARGV: the new body. Only a confirmation still pending changes.
REPLACE_PENDING = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'body', ARGV[1])
  return 1
end
return 0
"""


class RedisConfirmationStore:
    """`ConfirmationStore` shared by replicas through Redis; `take` is atomic (Lua).

    Keys: `crmops:slack:confirmation:{id}` (a hash: user_id, expires_at, body) and
    `crmops:slack:confirmation-used:{id}`. Expiry is checked against `clock` (wall time,
    the same on every replica), and Redis forgets both a minute after it.
    """

    def __init__(self, backend: RedisBackend, *, clock: Clock = time.time) -> None:
        self.clock = clock
        self._backend = backend
        self._take = backend.client.register_script(TAKE_ONCE)
        self._replace = backend.client.register_script(REPLACE_PENDING)

    async def put(self, confirmation: Confirmation) -> None:
        key = self._key(confirmation.id)
        kept_ms = max(1, int((confirmation.expires_at - self.clock() + KEPT_AFTER_EXPIRY) * 1000))
        fields: dict[FieldT, EncodableT] = {
            "user_id": confirmation.user_id,
            "expires_at": repr(confirmation.expires_at),
            "body": confirmation.model_dump_json(),
        }
        async with self._backend.client.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=fields)
            pipe.pexpire(key, kept_ms)
            await self._backend.call(pipe.execute(), doing="storing a confirmation")

    async def take(self, confirmation_id: str, *, user_id: str) -> Confirmation:
        keys = [
            self._key(confirmation_id),
            self._backend.key("slack", "confirmation-used", confirmation_id),
        ]
        answer = await self._backend.call(
            self._take(keys=keys, args=[user_id, repr(self.clock()), KEPT_AFTER_EXPIRY]),
            doing="taking a confirmation",
        )
        outcome, *rest = [_text(part) for part in cast("list[bytes]", answer)]
        if outcome == "ok":
            return Confirmation.model_validate_json(rest[0])
        if outcome == "not_yours":
            raise ConfirmationRefusedError("not_yours", owner=rest[0])
        raise ConfirmationRefusedError(cast("RefusalReason", outcome))

    async def replace(self, confirmation: Confirmation) -> None:
        await self._backend.call(
            self._replace(keys=[self._key(confirmation.id)], args=[confirmation.model_dump_json()]),
            doing="updating a confirmation",
        )

    def _key(self, confirmation_id: str) -> str:
        return self._backend.key("slack", "confirmation", confirmation_id)


def _text(part: bytes | str) -> str:
    return part.decode() if isinstance(part, bytes) else part


class ConfirmationFlow:
    """Pending writes of `/crm`: asked for with Confirm / Cancel, taken once by their owner."""

    def __init__(self, store: ConfirmationStore, *, ttl: float, clock: Clock = time.time) -> None:
        self.store = store
        self.ttl = ttl
        self.clock = clock

    async def ask(
        self, caller: Caller, command: str, response_url: str, payload: dict[str, Any]
    ) -> Confirmation:
        """Store a pending write of `caller`; its id goes into the Confirm button."""
        pending = Confirmation.new(
            command=command,
            user_id=caller.user_id,
            team_id=caller.team_id,
            channel_id=caller.channel_id,
            response_url=response_url,
            payload=payload,
            ttl=self.ttl,
            clock=self.clock,
        )
        await self.store.put(pending)
        return pending

    async def taken(self, body: dict[str, Any], respond: AsyncRespond) -> Confirmation | None:
        """The confirmation the pressed button names, or None after telling the user why not."""
        caller = Caller.of_interaction(body)
        actions = body.get("actions") or [{}]
        confirmation_id = str(actions[0].get("value", ""))
        try:
            return await self.store.take(confirmation_id, user_id=caller.user_id)
        except ConfirmationRefusedError as exc:
            await send(
                respond,
                blocks.notice(f":no_entry: {exc}"),
                response_type="ephemeral",
                replace_original=False,
            )
            return None

    async def cancel(self, body: dict[str, Any], respond: AsyncRespond) -> None:
        """The Cancel button: the pending write is taken and dropped; nothing is done."""
        if await self.taken(body, respond) is not None:
            await send(
                respond, blocks.notice(tr("Cancelled; nothing was done.")), replace_original=True
            )
