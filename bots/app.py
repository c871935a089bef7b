"""The Slack app: one `/crm` command over the crmops tool functions, and its App Home.

    app = build_app(slack_settings, services, access=AccessSettings.load())
    # HTTP: bots.serving.build_http_app(app, settings=slack_settings)
    # Socket Mode: bots.serving.socket_mode_handler(app, slack_settings)

Ack first. Slack waits 3 seconds for the ack, and the access check (user groups over the
Web API), a confirmation written to Redis or a read of the database can take longer. So a
command runs as a task given `ACK_BUDGET` seconds to answer in the ack itself (a local
answer, a refusal, the Confirm / Cancel ask); past that the ack says "Working on it…" and
the answer is posted to the command's `response_url` when it is ready (`AckOnce`). Buttons
and events are acked before anything else. Nothing a listener raises after `ack()` escapes
(bolt would answer 404): failures are reported to the user through `response_url`.
Answers and errors never hold a secret: they show `str(CrmopsError)`, which is written for
people and free of credentials.

Writes (`ticket`, `import`) are checked against the access rules and confirmed with a
single-use button only their requester may press; the tool (or, for an import, the bulk
engine) records each in the audit log with the Slack user as its actor. The rooms, one a
flow: `bots.tickets`, `bots.imports`, `bots.confirmations` (the buttons), `bots.access`,
`bots.shortcuts` (shortcuts and the ticket modal), `bots.home` (App Home), `bots.browse`
(`/crm tickets` paging, `/crm audit`); this module parses `/crm`, answers the lookups and
routes the rest.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bots import auth, blocks, browse
from bots.access import AccessCheck, AccessPolicy, SlackUserGroups, UserGroupDirectory
from bots.commands import (
    SUBCOMMANDS,
    AuditCommand,
    Command,
    CommandError,
    ErrorCommand,
    HelpCommand,
    ImportCommand,
    Subcommand,
    TicketCommand,
    ToolCommand,
    parse_command,
)
from bots.confirmations import (
    ConfirmationFlow,
    ConfirmationStore,
    MemoryConfirmationStore,
    RedisConfirmationStore,
)
from bots.dedupe import DeliveryDeduper, RedisDeliveries
from bots.home import HOME_ACTIONS, HomeFlow
from bots.import_messages import DOWNLOAD_ACTION, IMPORT_VIEW
from bots.imports import ImportFlow
from bots.locale import SlackLocales, adopt_user_language, speak_the_users_language
from bots.replies import Caller, answer, reply, send
from bots.settings import AccessSettings, SlackSettings
from bots.shortcuts import register_shortcuts
from bots.telemetry import time_acks
from bots.tickets import TicketFlow
from tools.errors import InputError
from tools.i18n import marked, tr
from tools.lookup import lookup_error_code
from tools.observability.calls import observe_tool
from tools.services import Services

log = logging.getLogger("crmops.slack")


class _OurClientCarriesTheToken(logging.Filter):
    """Drops bolt's "token will be unused" warning: bolt reads `SLACK_BOT_TOKEN` itself even
    when given a client, and ours is built from the same setting (plus `SLACK_API_URL`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


log.addFilter(_OurClientCarriesTheToken())

COMMAND = "/crm"
Clock = Callable[[], float]
ACK_BUDGET = 0.25
"""Seconds a command may take to answer in the ack itself; past it the ack says
`WORKING` and the answer goes to `response_url`. Far inside Slack's 3 s, so an ack stays
fast on a loaded event loop too."""
WORKING = marked("Working on it…")
ACCESS_CHECK_AFTER_ACK = 10.0
"""Seconds the access check may take once the ack no longer waits for it."""


def build_app(
    settings: SlackSettings,
    services: Services,
    *,
    access: AccessSettings | None = None,
    confirmations: ConfirmationStore | None = None,
    usergroups: UserGroupDirectory | None = None,
    workdir: Path | None = None,
    progress_interval: float = 2.0,
    clock: Clock = time.time,
) -> AsyncApp:
    """The bolt app answering `/crm` with the tools of `services`.

    The journal and the audit log are `services.store` (give `Services` a store to choose
    it). `access` defaults to `AccessSettings()` (reads open, writes closed, no admins);
    `confirmations` to an in-process store, or Redis when `CRMOPS_REDIS_URL` is set (where
    delivery ids are then deduplicated too: replicas share both); `usergroups` to
    `usergroups.users.list`; `workdir` (downloaded files) to a temporary directory;
    `progress_interval` is the least time between two progress posts of an import.
    """
    client = AsyncWebClient(token=auth.bot_token(settings), base_url=settings.api_url)
    app = AsyncApp(
        client=client,
        signing_secret=auth.signing_secret(settings),
        process_before_response=False,
        logger=log,
    )
    access = access or AccessSettings()
    redis = services.shared.redis
    if confirmations is None and redis is not None:
        confirmations = RedisConfirmationStore(redis, clock=clock)
    pending = ConfirmationFlow(
        confirmations or MemoryConfirmationStore(clock=clock),
        ttl=access.confirmation_ttl,
        clock=clock,
    )
    check = AccessCheck(
        AccessPolicy(access, usergroups or SlackUserGroups(client, clock=clock)),
        services,
        timeout=ACCESS_CHECK_AFTER_ACK,
    )
    imports = ImportFlow(
        settings=settings,
        services=services,
        confirmations=pending,
        access=check,
        workdir=workdir,
        progress_interval=progress_interval,
        clock=clock,
    )
    bot = CrmBot(
        services=services,
        access=check,
        admins=access.admin_users,
        confirmations=pending,
        tickets=TicketFlow(services, pending),
        imports=imports,
        home=HomeFlow(services, check, imports, admins=access.admin_users),
    )
    seen = RedisDeliveries(redis) if redis is not None else None
    app.middleware(time_acks)  # first: crmops_slack_ack_seconds (bots.telemetry)
    # Each user's language (users.info, cached; never waited for before the ack).
    app.middleware(
        speak_the_users_language(SlackLocales(client, default=services.settings.crmops.locale))
    )
    _register(app, bot, DeliveryDeduper(clock=clock, seen=seen))
    bot.home.ticket_modal = register_shortcuts(app, bot)
    return app


def _register(app: AsyncApp, bot: CrmBot, deduper: DeliveryDeduper) -> None:
    @app.middleware
    async def drop_repeated_deliveries(
        req: AsyncBoltRequest,
        resp: BoltResponse,
        next: Callable[[], Awaitable[BoltResponse]],  # noqa: A002
    ) -> BoltResponse:
        return await deduper(req, resp, next)

    @app.command(COMMAND)
    async def crm(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await bot.on_command(ack, body, respond, client)

    @app.action(blocks.CONFIRM_ACTION)
    async def confirm(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await bot.on_confirm(ack, body, respond)

    @app.action(blocks.CANCEL_ACTION)
    async def cancel(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await bot.on_cancel(ack, body, respond)

    @app.action(browse.MORE_TICKETS_ACTION)
    async def more_tickets(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await bot.on_more_tickets(ack, body, respond)

    @app.view(IMPORT_VIEW)
    async def import_submitted(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> None:
        await bot.imports.submitted(ack, body, view)

    @app.action(DOWNLOAD_ACTION)
    async def download(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await bot.imports.download_pressed(ack, body, respond, client)

    @app.event("app_home_opened")
    async def home_opened(
        event: dict[str, Any], body: dict[str, Any], client: AsyncWebClient
    ) -> None:
        await bot.home.opened(event, body, client)

    @app.action(HOME_ACTIONS)
    async def home_pressed(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await bot.home.pressed(body, client)


class AckOnce(AsyncAck):
    """The ack of one request, sent once. The first call acks; a later call with a message
    posts it through `response_url` instead (once the HTTP answer is gone, an ack's message
    would be lost), and a later empty call does nothing. Flows are handed this for `ack`."""

    def __init__(self, ack: AsyncAck, respond: AsyncRespond) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._ack = ack
        self._respond = respond

    async def __call__(self, *args: Any, **kwargs: Any) -> BoltResponse:
        if self.response is None:
            self.response = await self._ack(*args, **kwargs)
            return self.response
        message = {"text": args[0]} if args and isinstance(args[0], str) else {}
        message |= {k: v for k, v in kwargs.items() if k in {"text", "blocks"} and v}
        if message:
            await send(self._respond, message)
        return self.response


class CrmBot:
    """What `/crm` does: parse, check access, answer a lookup or hand a write to its flow."""

    def __init__(
        self,
        *,
        services: Services,
        access: AccessCheck,
        confirmations: ConfirmationFlow,
        tickets: TicketFlow,
        imports: ImportFlow,
        home: HomeFlow,
        admins: frozenset[str] = frozenset(),
    ) -> None:
        self.services = services
        self.access = access
        self.confirmations = confirmations
        self.tickets = tickets
        self.imports = imports
        self.home = home
        self.admins = admins

    # --- /crm ----------------------------------------------------------------------------
    async def on_command(
        self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        """Run the command, answering in the ack if it is done within `ACK_BUDGET`."""
        once = AckOnce(ack, respond)
        started = time.monotonic()
        work = asyncio.create_task(self._safely(once, body, respond, client, started))
        done, _ = await asyncio.wait({work}, timeout=ACK_BUDGET)
        if not done:
            if once.response is None:
                await once(**blocks.notice(tr(WORKING)))
            await work

    async def _safely(
        self,
        ack: AckOnce,
        body: dict[str, Any],
        respond: AsyncRespond,
        client: AsyncWebClient,
        started: float,
    ) -> None:
        try:
            await adopt_user_language()  # races the ack budget: a slow lookup never holds it
            await self._command(ack, body, respond, client, started)
        except Exception as exc:
            log.exception("/crm failed")
            await answer(ack, respond, blocks.failure_message(exc, doing=marked("run the command")))

    async def _command(
        self,
        ack: AckOnce,
        body: dict[str, Any],
        respond: AsyncRespond,
        client: AsyncWebClient,
        started: float,
    ) -> None:
        caller = Caller.of_command(body)
        try:
            command = parse_command(str(body.get("text", "")))
        except CommandError as exc:
            # It may quote what was typed (`/crm <!channel>`): never let Slack read it as markup.
            await ack(**blocks.notice(blocks.escape(str(exc))))
            return
        if isinstance(command, ImportCommand) or (
            isinstance(command, TicketCommand) and command.form
        ):
            # The modal needs the trigger within 3 s: a check that takes longer is left to
            # the submission (`ImportFlow`, `bots.shortcuts` check it again there).
            if await self._refused_in_time(command, caller, ack, started):
                return
        else:
            refusal = await self.access.refusal(SUBCOMMANDS[command.name], caller)
            if refusal is not None:
                await ack(**blocks.notice(f":no_entry: {refusal}"))
                return
        await self._dispatch(
            command, caller=caller, ack=ack, body=body, respond=respond, client=client
        )

    async def _refused_in_time(
        self, command: ImportCommand | TicketCommand, caller: Caller, ack: AckOnce, started: float
    ) -> bool:
        left = max(0.0, started + ACK_BUDGET - time.monotonic())
        vendor = command.vendor if isinstance(command, ImportCommand) else None
        try:
            check = self.access.refusal(SUBCOMMANDS[command.name], caller, vendor=vendor or "")
            refusal = await asyncio.wait_for(check, left)
        except TimeoutError:
            return False
        if refusal is not None:
            await ack(**blocks.notice(f":no_entry: {refusal}"))
        return refusal is not None

    async def _dispatch(
        self,
        command: Command,
        *,
        caller: Caller,
        ack: AckOnce,
        body: dict[str, Any],
        respond: AsyncRespond,
        client: AsyncWebClient,
    ) -> None:
        match command:
            case HelpCommand():
                await ack(**blocks.help_message(await self.runnable(caller)))
            case ErrorCommand(code=code, vendor=vendor):
                # The catalog is local: answer in the ack itself.
                try:
                    looked_up = lookup_error_code(code=code, vendor=vendor)
                    result = await observe_tool("lookup_error_code", "slack", looked_up)
                    await ack(**blocks.lookup_message(result))
                except InputError as exc:
                    await ack(**blocks.failure_message(exc, doing=marked("look up this error")))
            case ToolCommand(arguments=arguments):
                await ack()
                read = command.subcommand
                await reply(respond, read.doing, lambda: read.answer(self.services, arguments))
            case AuditCommand():
                if caller.user_id not in self.admins:
                    await ack(**blocks.notice(f":no_entry: {tr(browse.NOT_AN_ADMIN)}"))
                    return
                await ack()
                await reply(
                    respond,
                    marked("read the audit log"),
                    lambda: browse.audit_answer(self.services),
                )
            case TicketCommand(form=True):
                await self.tickets.open_form(ack, body, client)
            case TicketCommand():
                await self.tickets.ask(command, caller, ack, str(body.get("response_url", "")))
            case ImportCommand():
                await self.imports.open(command, ack, body, client)

    async def runnable(self, caller: Caller) -> list[Subcommand]:
        """The subcommands `caller` may run where they are, for `/crm help` (a refusal
        there is not audited: nothing was attempted)."""
        allowed = await asyncio.gather(
            *(self._may_run(sub, caller) for sub in SUBCOMMANDS.values())
        )
        return [sub for sub, ok in zip(SUBCOMMANDS.values(), allowed, strict=True) if ok]

    async def _may_run(self, sub: Subcommand, caller: Caller) -> bool:
        if sub.name == "help":
            return True
        if sub.name == "audit" and caller.user_id not in self.admins:
            return False
        try:
            refusal = await asyncio.wait_for(
                self.access.policy.refusal(
                    sub.name,
                    user_id=caller.user_id,
                    channel_id=caller.channel_id,
                    writes=sub.writes,
                ),
                self.access.timeout,
            )
        except Exception:
            log.warning("could not check /crm %s for help", sub.name, exc_info=True)
            return False
        return refusal is None

    # --- buttons ---------------------------------------------------------------------------
    async def on_confirm(self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        try:
            pending = await self.confirmations.taken(body, respond)
            if pending is None:
                return
            if pending.command == TicketFlow.CONFIRMATION:
                await self.tickets.create(pending, respond)
            elif pending.command == ImportFlow.CONFIRMATION:
                await self.home.import_confirmed(pending, respond)
        except Exception as exc:
            log.exception("confirmation failed")
            await send(respond, blocks.failure_message(exc, doing=marked("do this")))

    async def on_cancel(self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        try:
            await self.confirmations.cancel(body, respond)
        except Exception as exc:
            log.exception("cancel failed")
            await send(respond, blocks.failure_message(exc, doing=marked("cancel")))

    async def on_more_tickets(
        self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond
    ) -> None:
        """The tickets' "More" button: the next page, in place of the one shown."""
        await ack()
        caller = Caller.of_interaction(body)
        refusal = await self.access.refusal(SUBCOMMANDS["tickets"], caller)
        if refusal is not None:
            await send(respond, blocks.notice(f":no_entry: {refusal}"), replace_original=False)
            return
        value = str(((body.get("actions") or [{}])[0]).get("value", ""))
        try:
            message = await browse.next_tickets(self.services, value)
        except Exception as exc:
            if not isinstance(exc, InputError):
                log.warning("could not list more tickets", exc_info=True)
            message = blocks.failure_message(exc, doing=marked("list more tickets"))
        await send(respond, message, replace_original=True)


__all__ = ["ACK_BUDGET", "COMMAND", "AckOnce", "CrmBot", "build_app"]
