"""Which language the Slack bot answers in, and the `/crm` subcommands' Chinese names.

A message only one user sees (an ephemeral answer, a modal, App Home, a direct message) is
in that user's Slack language: `users.info` with `include_locale=true` (the `users:read`
scope), cached. A message posted to a channel is in `CRMOPS_LOCALE`, the workspace's::

    locales = SlackLocales(client, default=settings.crmops.locale)
    person = await locales.of_user("U012AB3CD")      # SlackPerson(locale="zh-CN", tz=...)
    with use_locale(person.locale): ...              # tools.i18n: texts in Chinese
    with use_locale(locales.channel): ...            # a post the whole channel reads

    subcommand_name("员工")                           # -> "staff": `/crm 员工 王`
    subcommand_name("errors")                         # -> "error": as the CLI spells it

Per request (`speak_the_users_language`, a bolt middleware `bots.app` installs): the
middleware makes the user's language current when it is cached, else the workspace's, and
starts the `users.info` lookup in the background; nothing waits for it before the ack. Right
after a listener's `ack()` (the middleware wraps it) and wherever a flow calls
`await adopt_user_language()`, the lookup is awaited (at most `LOOKUP_WAIT` seconds) and
the user's language and time zone become current for the rest of that listener's task.
`/crm` adopts it first thing in the task that races the ack budget (so a quick lookup is
answered in the ack itself, a slow one in the follow-up); an event's listener adopts it
itself (bolt acks events before the listener runs). A post the whole channel reads is
written inside `with in_channel_language():`; a time shown to the user goes through
`user_time`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from slack_bolt.async_app import AsyncAck
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from tools.i18n import DEFAULT_LOCALE, Locale, parse_locale, set_locale, use_locale

log = logging.getLogger(__name__)

CACHE_SECONDS = 3600.0
"""How long a user's language is trusted: a user who changes it in Slack is answered in
the new one within the hour."""
FAILED_CACHE_SECONDS = 60.0
"""How long a failed `users.info` (no scope, Slack down) stands before it is asked again;
meanwhile the user is answered in the workspace's language."""
MAX_USERS = 10_000
"""Users remembered at most (least recently asked about are forgotten first)."""
LOOKUP_WAIT = 1.0
"""Seconds a listener waits, after its ack, for a user's `users.info`; then the
workspace's language is used for that request (a modal's trigger lasts 3 s in all)."""

CHINESE_SUBCOMMANDS: dict[str, str] = {
    "帮助": "help",
    "错误": "error",
    "员工": "staff",
    "客户": "customer",
    "工单": "ticket",
    "工单列表": "tickets",
    "导入": "import",
    "审计": "audit",
}
"""Each `/crm` subcommand's Chinese name -> its name (bots/commands.py `SUBCOMMANDS`).
Slash-command names themselves (`/crm`) and the app's name cannot be localised (Slack's
rule): only the words after `/crm` can."""


ALIASES: dict[str, str] = {"errors": "error"}
"""Other names a subcommand answers to: `errors`, as the CLI spells it."""


def subcommand_name(word: str) -> str:
    """The subcommand `word` names (`bots.commands.parse_command` reads the first word so):
    a Chinese name or an alias as its name, anything else lower-cased as it is."""
    name = CHINESE_SUBCOMMANDS.get(word.strip(), word.strip().lower())
    return ALIASES.get(name, name)


class UsersInfo(Protocol):
    """What `SlackLocales` needs of a Slack client (`slack_sdk`'s `AsyncWebClient`)."""

    async def users_info(self, *, user: str, include_locale: bool = ...) -> Any: ...


@dataclass(frozen=True)
class SlackPerson:
    """What the bot knows of how a user reads: their language and time zone."""

    locale: Locale
    tz: ZoneInfo | None = None
    """Slack's `tz` (`Asia/Jakarta`): times shown to this user are in it; None: unknown."""


class SlackLocales:
    """Each Slack user's language, from `users.info`, remembered for `ttl` seconds (at most
    `max_users` users); `default` (CRMOPS_LOCALE) for channels and when Slack cannot say."""

    def __init__(
        self,
        client: UsersInfo,
        *,
        default: Locale,
        ttl: float = CACHE_SECONDS,
        failed_ttl: float = FAILED_CACHE_SECONDS,
        max_users: int = MAX_USERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self.channel: Locale = default
        """The language of a message posted to a channel: the workspace's (CRMOPS_LOCALE)."""
        self._ttl, self._failed_ttl = ttl, failed_ttl
        self._max_users = max_users
        self._clock = clock
        self._known: OrderedDict[str, tuple[float, SlackPerson]] = OrderedDict()

    def cached(self, user_id: str) -> SlackPerson | None:
        """How `user_id` reads when it is remembered and fresh; None otherwise (no network)."""
        cached = self._known.get(user_id)
        if cached is None or cached[0] <= self._clock():
            return None
        return cached[1]

    async def of_user(self, user_id: str) -> SlackPerson:
        """How `user_id` reads: from the cache, else asked of Slack (never raises: a Slack
        failure answers the workspace's language, and is asked again after `failed_ttl`)."""
        now = self._clock()
        cached = self._known.get(user_id)
        if cached is not None and cached[0] > now:
            self._known.move_to_end(user_id)
            return cached[1]
        person, ttl = await self._ask(user_id)
        self._remember(user_id, person, now + ttl)
        return person

    async def _ask(self, user_id: str) -> tuple[SlackPerson, float]:
        try:
            answer = await self._client.users_info(user=user_id, include_locale=True)
            user: dict[str, Any] = dict(answer["user"])
        except Exception as exc:  # no users:read scope, Slack down...: the default language
            log.warning("users.info failed for %s: %s", user_id, type(exc).__name__)
            return SlackPerson(self.channel), self._failed_ttl
        locale = parse_locale(str(user.get("locale") or "")) or self.channel
        return SlackPerson(locale, _zone(user.get("tz"))), self._ttl

    def _remember(self, user_id: str, person: SlackPerson, until: float) -> None:
        self._known[user_id] = (until, person)
        self._known.move_to_end(user_id)
        while len(self._known) > self._max_users:
            self._known.popitem(last=False)

    def __len__(self) -> int:
        """Users remembered now (expired ones included until they are asked about again)."""
        return len(self._known)


def _zone(name: object) -> ZoneInfo | None:
    if not isinstance(name, str) or not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


# --- per request ------------------------------------------------------------------------------


@dataclass
class _Request:
    """What the middleware knows of the request being handled."""

    channel: Locale
    person: SlackPerson | None = None
    lookup: asyncio.Task[SlackPerson] | None = None


_request: ContextVar[_Request | None] = ContextVar("crmops_slack_request", default=None)


def user_of(body: dict[str, Any]) -> str:
    """The user a Slack request is from: a command's `user_id`, an interaction's `user.id`,
    an event's `event.user` ("" when none)."""
    if body.get("user_id"):
        return str(body["user_id"])
    user = body.get("user")
    if isinstance(user, dict) and user.get("id"):
        return str(user["id"])
    event = body.get("event")
    if isinstance(event, dict) and isinstance(event.get("user"), str):
        return str(event["user"])
    return ""


class _AckThenLanguage(AsyncAck):
    """A listener's `ack`: acks, then makes the user's language current (awaiting the
    lookup only once the ack is on its way)."""

    async def __call__(self, *args: Any, **kwargs: Any) -> BoltResponse:
        response = await super().__call__(*args, **kwargs)
        await adopt_user_language()
        return response


def speak_the_users_language(
    locales: SlackLocales,
) -> Callable[
    [AsyncBoltRequest, BoltResponse, Callable[[], Awaitable[BoltResponse]]],
    Awaitable[BoltResponse],
]:
    """A bolt middleware: each request's texts in its user's language (cached: at once;
    otherwise the workspace's until the ack is sent, then the user's)."""

    async def middleware(
        req: AsyncBoltRequest,
        resp: BoltResponse,
        next: Callable[[], Awaitable[BoltResponse]],  # noqa: A002
    ) -> BoltResponse:
        user_id = user_of(req.body)
        request = _Request(channel=locales.channel)
        if user_id:
            request.person = locales.cached(user_id)
            if request.person is None:
                request.lookup = asyncio.create_task(locales.of_user(user_id))
        if req.body.get("type") != "event_callback":
            # Events are acked by bolt before the listener runs: they adopt it themselves.
            req.context["ack"] = _AckThenLanguage()  # type: ignore[no-untyped-call]
        # Bolt runs the listener after the middleware returns (`next()` only says "go on"),
        # so these stay set for the rest of this request's task, and are copied into the
        # listener's. Each request sets them anew: none sees another's.
        _request.set(request)
        set_locale(request.person.locale if request.person else request.channel)
        return await next()

    return middleware


async def adopt_user_language() -> SlackPerson | None:
    """Make the requesting user's language current for the rest of this task (waiting at
    most `LOOKUP_WAIT` seconds for `users.info`); who they are, None outside a request or
    when Slack did not say in time."""
    request = _request.get()
    if request is None:
        return None
    if request.person is None and request.lookup is not None:
        try:
            request.person = await asyncio.wait_for(asyncio.shield(request.lookup), LOOKUP_WAIT)
        except TimeoutError:
            log.warning("users.info was slow: answering in the workspace's language")
            request.lookup = None
    if request.person is not None:
        set_locale(request.person.locale)  # this listener's task only: its context is a copy
    return request.person


def channel_language() -> Locale:
    """The language of a post the whole channel reads: the workspace's (CRMOPS_LOCALE)."""
    request = _request.get()
    return request.channel if request is not None else DEFAULT_LOCALE


@contextmanager
def in_channel_language() -> Iterator[Locale]:
    """Texts made inside are for everyone in the channel: in `channel_language()`."""
    with use_locale(channel_language()) as locale:
        yield locale


def user_time(moment: datetime | float | None) -> str:
    """`moment` (a datetime or a Unix time) for the requesting user, to the minute: in their
    Slack time zone (`2026-12-02 09:38 UTC+08:00`); when it is not known, a Unix time in
    UTC (`2026-12-02 01:38 UTC`) and a datetime with the offset it has; a naive datetime
    as it is; "—" for None."""
    if moment is None:
        return "—"
    request = _request.get()
    zone = request.person.tz if request is not None and request.person is not None else None
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
        if zone is None:
            return moment.strftime("%Y-%m-%d %H:%M UTC")
    if moment.tzinfo is None or zone is None:
        return moment.isoformat(sep=" ", timespec="minutes")
    shown = moment.astimezone(zone)
    offset = shown.strftime("%z")
    return shown.strftime("%Y-%m-%d %H:%M UTC") + f"{offset[:3]}:{offset[3:]}"
