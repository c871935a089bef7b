"""The Slack app: one `/crm` command over the crmops tool functions.

    app = build_app(slack_settings, services, access=AccessSettings.load())
    # HTTP: bots.serving.build_http_app(app, settings=slack_settings)
    # Socket Mode: bots.serving.socket_mode_handler(app, slack_settings)

Every listener acknowledges within Slack's 3 seconds and does slow work afterwards; nothing
it raises after `ack()` escapes (bolt would answer 404): failures are reported to the user
through the command's `response_url`. Answers and errors never hold a secret: they show
`str(CrmopsError)`, which is written for people and free of credentials.

Writes (`ticket`, `import`) are checked against the access rules and confirmed with a
single-use button only their requester may press; the tool (or, for an import, the bulk
engine) records each in the audit log with the Slack user as its actor. The rooms, one a
flow: `bots.tickets`, `bots.imports`, `bots.confirmations` (the buttons), `bots.access`;
this module parses `/crm`, answers the lookups and routes the rest.
"""

from __future__ import annotations

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

from bots import auth, blocks
from bots.access import AccessCheck, AccessPolicy, SlackUserGroups, UserGroupDirectory
from bots.commands import (
    SUBCOMMANDS,
    Command,
    CommandError,
    ErrorCommand,
    HelpCommand,
    ImportCommand,
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
from bots.import_messages import DOWNLOAD_ACTION, IMPORT_VIEW
from bots.imports import ImportFlow
from bots.replies import Caller, answer, reply, send
from bots.settings import AccessSettings, SlackSettings
from bots.tickets import TicketFlow
from tools.errors import InputError
from tools.lookup import lookup_error_code
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
    it). `access` defaults to `AccessSettings()` (reads open, writes closed);
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
        AccessPolicy(access, usergroups or SlackUserGroups(client, clock=clock)), services
    )
    bot = CrmBot(
        services=services,
        access=check,
        confirmations=pending,
        tickets=TicketFlow(services, pending),
        imports=ImportFlow(
            settings=settings,
            services=services,
            confirmations=pending,
            access=check,
            workdir=workdir,
            progress_interval=progress_interval,
            clock=clock,
        ),
    )
    seen = RedisDeliveries(redis) if redis is not None else None
    _register(app, bot, DeliveryDeduper(clock=clock, seen=seen))
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
    ) -> None:
        self.services = services
        self.access = access
        self.confirmations = confirmations
        self.tickets = tickets
        self.imports = imports

    # --- /crm ----------------------------------------------------------------------------
    async def on_command(
        self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        try:
            await self._command(ack, body, respond, client)
        except Exception as exc:
            log.exception("/crm failed")
            await answer(ack, respond, blocks.failure_message(exc, doing="run the command"))

    async def _command(
        self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        caller = Caller.of_command(body)
        try:
            command = parse_command(str(body.get("text", "")))
        except CommandError as exc:
            # It may quote what was typed (`/crm <!channel>`): never let Slack read it as markup.
            await ack(**blocks.notice(blocks.escape(str(exc))))
            return
        refusal = await self.access.refusal(SUBCOMMANDS[command.name], caller)
        if refusal is not None:
            await ack(**blocks.notice(f":no_entry: {refusal}"))
            return
        await self._dispatch(
            command, caller=caller, ack=ack, body=body, respond=respond, client=client
        )

    async def _dispatch(
        self,
        command: Command,
        *,
        caller: Caller,
        ack: AsyncAck,
        body: dict[str, Any],
        respond: AsyncRespond,
        client: AsyncWebClient,
    ) -> None:
        match command:
            case HelpCommand():
                await ack(**blocks.help_message(SUBCOMMANDS.values()))
            case ErrorCommand(code=code, vendor=vendor):
                # The catalog is local: answer in the ack itself.
                try:
                    result = await lookup_error_code(code=code, vendor=vendor)
                    await ack(**blocks.lookup_message(result))
                except InputError as exc:
                    await ack(**blocks.failure_message(exc, doing="look up this error"))
            case ToolCommand(arguments=arguments):
                await ack()
                read = command.subcommand
                await reply(respond, read.doing, lambda: read.answer(self.services, arguments))
            case TicketCommand():
                await self.tickets.ask(command, caller, ack, str(body.get("response_url", "")))
            case ImportCommand():
                await self.imports.open(command, ack, body, client)

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
                await self.imports.confirmed(pending, respond)
        except Exception as exc:
            log.exception("confirmation failed")
            await send(respond, blocks.failure_message(exc, doing="do this"))

    async def on_cancel(self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        try:
            await self.confirmations.cancel(body, respond)
        except Exception as exc:
            log.exception("cancel failed")
            await send(respond, blocks.failure_message(exc, doing="cancel"))


__all__ = ["COMMAND", "CrmBot", "build_app"]
