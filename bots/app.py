"""The Slack app: one `/crm` command over the crmops tool functions.

    app = build_app(slack_settings, services, access=AccessSettings.load())
    # HTTP: bots.serving.build_http_app(app);  Socket Mode: bots.serving.run_socket_mode(...)

Every listener acknowledges within Slack's 3 seconds and does slow work afterwards; nothing
it raises after `ack()` escapes (bolt would answer 404): failures are reported to the user
through the command's `response_url`. Answers and errors never hold a secret: they show
`str(CrmopsError)`, which is written for people and free of credentials.

Writes (`ticket`, `import`) are checked against the access rules, confirmed with a
single-use button only their requester may press, and recorded in the audit log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bots import auth, blocks
from bots.access import AccessPolicy, SlackUserGroups, UserGroupDirectory
from bots.commands import (
    SUBCOMMANDS,
    Command,
    CommandError,
    CustomerCommand,
    ErrorCommand,
    HelpCommand,
    ImportCommand,
    StaffCommand,
    TicketCommand,
    parse_command,
)
from bots.confirmations import (
    Confirmation,
    ConfirmationRefusedError,
    ConfirmationStore,
    MemoryConfirmationStore,
    RedisConfirmationStore,
)
from bots.dedupe import DeliveryDeduper, RedisDeliveries
from bots.imports import (
    DOWNLOAD_ACTION,
    FILE_BLOCK,
    IMPORT_VIEW,
    VENDOR_BLOCK,
    ImportFlow,
    preview_message,
    slack_actor,
)
from bots.settings import AccessSettings, SlackSettings
from tools.bulk.columns import BulkVendor
from tools.customers import query_customer
from tools.errors import InputError
from tools.lookup import lookup_error_code
from tools.services import Services
from tools.staff import list_staff
from tools.storage.audit import AuditEntry, AuditLog, Outcome
from tools.storage.store import Store
from tools.tickets import create_ticket
from tools.vendors.bangwo8 import validate_ticket

log = logging.getLogger("crmops.slack")


class _OurClientCarriesTheToken(logging.Filter):
    """Drops bolt's "token will be unused" warning: bolt reads `SLACK_BOT_TOKEN` itself even
    when given a client, and ours is built from the same setting (plus `SLACK_API_URL`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


log.addFilter(_OurClientCarriesTheToken())

COMMAND = "/crm"
ACCESS_CHECK_TIMEOUT = 2.0
"""Seconds the access check may take before the ack: Slack allows 3 in all."""
Clock = Callable[[], float]


class LoggingAuditLog:
    """An `AuditLog` that writes log lines on `crmops.audit` (when no store is configured)."""

    async def record(self, entry: AuditEntry) -> None:
        logging.getLogger("crmops.audit").info(
            "%s %s %s %s: %s %s",
            entry.actor.name,
            entry.vendor,
            entry.operation,
            entry.target,
            entry.outcome,
            entry.error or "",
        )

    async def recent(self, limit: int = 100) -> list[AuditEntry]:
        return []


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


def build_app(
    settings: SlackSettings,
    services: Services,
    *,
    access: AccessSettings | None = None,
    confirmations: ConfirmationStore | None = None,
    store: Store | None = None,
    audit: AuditLog | None = None,
    usergroups: UserGroupDirectory | None = None,
    workdir: Path | None = None,
    progress_interval: float = 2.0,
    clock: Clock = time.time,
) -> AsyncApp:
    """The bolt app answering `/crm` with the tools of `services`.

    `access` defaults to `AccessSettings()` (reads open, writes closed); `confirmations` to
    an in-process store, or Redis when `CRMOPS_REDIS_URL` is set (where delivery ids are
    then deduplicated too: replicas share both); `store` (journal + audit log,
    `tools.bulk.open_store`) enables `/crm import`; `audit` defaults to the store's audit
    log, else log lines; `usergroups` to `usergroups.users.list`; `workdir` (downloaded
    files) to a temporary directory; `progress_interval` is the least time between two
    progress posts of an import.
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
    bot = CrmBot(
        services=services,
        policy=AccessPolicy(access, usergroups or SlackUserGroups(client, clock=clock)),
        confirmations=confirmations or MemoryConfirmationStore(clock=clock),
        audit=audit or (store.audit if store is not None else LoggingAuditLog()),
        confirmation_ttl=access.confirmation_ttl,
        imports=None
        if store is None
        else ImportFlow(
            settings=settings,
            services=services,
            store=store,
            workdir=workdir,
            progress_interval=progress_interval,
            clock=clock,
        ),
        clock=clock,
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
        await bot.on_import_submitted(ack, body, view)

    @app.action(DOWNLOAD_ACTION)
    async def download(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await bot.on_download(ack, body, respond, client)


class CrmBot:
    """What `/crm` does; `build_app` wires its methods to bolt listeners."""

    def __init__(
        self,
        *,
        services: Services,
        policy: AccessPolicy,
        confirmations: ConfirmationStore,
        audit: AuditLog,
        confirmation_ttl: float,
        imports: ImportFlow | None,
        clock: Clock,
    ) -> None:
        self.services = services
        self.policy = policy
        self.confirmations = confirmations
        self.audit = audit
        self.confirmation_ttl = confirmation_ttl
        self.imports = imports
        self.clock = clock

    # --- /crm ----------------------------------------------------------------------------
    async def on_command(
        self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        try:
            await self._command(ack, body, respond, client)
        except Exception as exc:
            log.exception("/crm failed")
            await _answer(ack, respond, blocks.failure_message(exc, doing="run the command"))

    async def _command(
        self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        caller = Caller.of_command(body)
        try:
            command = parse_command(str(body.get("text", "")))
        except CommandError as exc:
            await ack(**blocks.notice(str(exc)))
            return
        refusal = await self._refusal(command, caller)
        if refusal is not None:
            if SUBCOMMANDS[command.name].writes:
                await self._record(caller, command.name, "failed", error=f"refused: {refusal}")
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
                await ack(**blocks.help_message())
            case ErrorCommand(code=code, vendor=vendor):
                # The catalog is local: answer in the ack itself.
                try:
                    result = await lookup_error_code(code=code, vendor=vendor)
                    await ack(**blocks.lookup_message(result))
                except InputError as exc:
                    await ack(**blocks.failure_message(exc, doing="look up this error"))
            case StaffCommand(search=search):
                await ack()
                await self._reply(
                    respond,
                    "list the staff",
                    lambda: self._staff(search),
                )
            case CustomerCommand(whatsapp=whatsapp):
                await ack()
                await self._reply(respond, "look up the customer", lambda: self._customer(whatsapp))
            case TicketCommand():
                await self._ask_ticket(command, caller, ack, body)
            case ImportCommand():
                await self._open_import(command, caller, ack, body, client)

    async def _refusal(self, command: Command, caller: Caller) -> str | None:
        writes = SUBCOMMANDS[command.name].writes
        try:
            return await asyncio.wait_for(
                self.policy.refusal(
                    command.name,
                    user_id=caller.user_id,
                    channel_id=caller.channel_id,
                    writes=writes,
                ),
                ACCESS_CHECK_TIMEOUT,
            )
        except TimeoutError:
            return "Could not check your access in time (Slack was slow); try again."

    async def _staff(self, search: str | None) -> blocks.Message:
        return blocks.staff_message(await list_staff(self.services, search=search), search)

    async def _customer(self, whatsapp: str) -> blocks.Message:
        return blocks.customer_message(await query_customer(self.services, whatsapp=whatsapp))

    async def _reply(
        self, respond: AsyncRespond, doing: str, work: Callable[[], Awaitable[blocks.Message]]
    ) -> None:
        try:
            answer = await work()
        except Exception as exc:
            if not isinstance(exc, InputError):
                log.warning("could not %s", doing, exc_info=True)
            answer = blocks.failure_message(exc, doing=doing)
        await _send(respond, answer)

    # --- /crm ticket -----------------------------------------------------------------------
    async def _ask_ticket(
        self, command: TicketCommand, caller: Caller, ack: AsyncAck, body: dict[str, Any]
    ) -> None:
        payload = {"subject": command.subject, "message": command.message, **command.options}
        try:
            # Refuse what Bangwo8 would refuse before asking anyone to confirm it.
            validate_ticket(_ticket_wire(payload))
        except InputError as exc:
            await ack(**blocks.failure_message(exc, doing="create this ticket"))
            return
        pending = await self.ask_confirmation(caller, "ticket", body, payload)
        await ack(
            **blocks.ticket_confirmation(
                pending.id, command.subject, command.message, command.options
            )
        )

    async def ask_confirmation(
        self, caller: Caller, command: str, body: dict[str, Any], payload: dict[str, Any]
    ) -> Confirmation:
        """Store a pending write of `caller`; its id goes into the Confirm button."""
        pending = Confirmation.new(
            command=command,
            user_id=caller.user_id,
            team_id=caller.team_id,
            channel_id=caller.channel_id,
            response_url=str(body.get("response_url", "")),
            payload=payload,
            ttl=self.confirmation_ttl,
            clock=self.clock,
        )
        await self.confirmations.put(pending)
        return pending

    async def _create_ticket(self, pending: Confirmation, respond: AsyncRespond) -> None:
        caller = Caller(pending.user_id, pending.team_id, pending.channel_id)
        await _send(respond, blocks.notice("Creating the ticket…"), replace_original=True)
        options = pending.payload
        try:
            created = await create_ticket(
                self.services,
                subject=options["subject"],
                message=options["message"],
                priority=_code(options.get("priority")),
                ticket_type=_code(options.get("type")),
                description=options.get("description"),
            )
        except Exception as exc:
            log.warning("ticket creation failed", exc_info=True)
            await self._record(
                caller, "ticket", "failed", vendor="bangwo8", sent=options, error=str(exc)
            )
            await _send(
                respond,
                blocks.failure_message(exc, doing="create the ticket"),
                replace_original=True,
            )
            return
        await self._record(
            caller,
            "ticket",
            "ok",
            vendor="bangwo8",
            target=f"ticket {created.ticket.id}",
            sent={**options, "request_id": created.request_id},
        )
        await _send(
            respond,
            blocks.ticket_created(created, pending.user_id),
            response_type="in_channel",
            replace_original=False,
        )
        await _send(
            respond,
            blocks.notice(f":white_check_mark: Created ticket #{created.ticket.id}."),
            replace_original=True,
        )

    # --- /crm import -------------------------------------------------------------------------
    async def _open_import(
        self,
        command: ImportCommand,
        caller: Caller,
        ack: AsyncAck,
        body: dict[str, Any],
        client: AsyncWebClient,
    ) -> None:
        if self.imports is None:
            await ack(**blocks.notice("Imports are off: the bot runs without a journal."))
            return
        await ack()
        try:
            await self.imports.open_modal(command.vendor, body, client)
        except Exception as exc:
            log.warning("could not open the import modal", exc_info=True)
            respond = AsyncRespond(response_url=str(body.get("response_url", "")))
            await _send(respond, blocks.failure_message(exc, doing="open the import form"))

    async def on_import_submitted(
        self, ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]
    ) -> None:
        """Check the submitted file and post the preview to the command's `response_url`."""
        if self.imports is None:
            await ack()
            return
        vendor, file = self.imports.submitted_file(view)
        if vendor is None or file is None:
            errors = {VENDOR_BLOCK: "Pick a vendor."} if vendor is None else {}
            errors |= {FILE_BLOCK: "Attach a CSV or XLSX file."} if file is None else {}
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        metadata = _metadata(view)
        caller = Caller(
            user_id=str((body.get("user") or {}).get("id", "")),
            team_id=str((body.get("team") or {}).get("id", "")),
            channel_id=metadata.get("channel_id", ""),
        )
        respond = AsyncRespond(response_url=metadata.get("response_url", ""))
        try:
            await self._preview(vendor, file, caller, respond)
        except Exception as exc:
            if not isinstance(exc, InputError):
                log.warning("could not check the import file", exc_info=True)
            await _send(respond, blocks.failure_message(exc, doing="check the file"))

    async def _preview(
        self, vendor: BulkVendor, file: dict[str, Any], caller: Caller, respond: AsyncRespond
    ) -> None:
        assert self.imports is not None  # noqa: S101 - only called when imports are on
        refusal = await self._refusal(ImportCommand(vendor=vendor), caller)
        if refusal is not None:
            await self._record(caller, "import", "failed", vendor=vendor, error=refusal)
            await _send(respond, blocks.notice(f":no_entry: {refusal}"))
            return
        path = await self.imports.download(file)
        report, rejected = await self.imports.check(path, vendor)
        payload = {"vendor": vendor, "path": str(path), "file_name": path.name}
        pending = await self.ask_confirmation(
            caller, "import", {"response_url": respond.response_url}, payload
        )
        download = (
            self.imports.offer_download(caller.user_id, rejected, f"rejected-{path.stem}.csv")
            if report.rejected
            else None
        )
        await _send(respond, preview_message(report, path.name, pending.id, download))

    async def _run_import(self, pending: Confirmation, respond: AsyncRespond) -> None:
        assert self.imports is not None  # noqa: S101 - import confirmations need the flow
        caller = Caller(pending.user_id, pending.team_id, pending.channel_id)
        actor = slack_actor(caller.user_id, caller.team_id, caller.channel_id)
        vendor, name = str(pending.payload["vendor"]), str(pending.payload["file_name"])
        try:
            report = await self.imports.run(pending.payload, actor, respond)
        except Exception as exc:
            log.warning("the import failed", exc_info=True)
            await self._record(
                caller, "import", "failed", vendor=vendor, target=name, error=str(exc)
            )
            await _send(respond, blocks.failure_message(exc, doing="import"), replace_original=True)
            return
        counts = report.model_dump(include={"rows_read", "confirmed", "rejected", "failed"})
        outcome: Outcome = "ok" if report.status == "ok" else "partial"
        await self._record(caller, "import", outcome, vendor=vendor, target=name, sent=counts)

    async def on_download(
        self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        try:
            if self.imports is None:
                return
            caller = Caller.of_interaction(body)
            download_id = str(((body.get("actions") or [{}])[0]).get("value", ""))
            refusal = await self.imports.send_download(download_id, caller.user_id, client)
            text = refusal or "Sent you the rejected rows as a CSV in a direct message."
            await _send(respond, blocks.notice(text), replace_original=False)
        except Exception as exc:
            log.warning("could not send the rejected rows", exc_info=True)
            await _send(respond, blocks.failure_message(exc, doing="send the rejected rows"))

    # --- buttons ---------------------------------------------------------------------------
    async def on_confirm(self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        try:
            pending = await self._take(body, respond)
            if pending is None:
                return
            if pending.command == "ticket":
                await self._create_ticket(pending, respond)
            elif pending.command == "import":
                await self._run_import(pending, respond)
        except Exception as exc:
            log.exception("confirmation failed")
            await _send(respond, blocks.failure_message(exc, doing="do this"))

    async def on_cancel(self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        try:
            pending = await self._take(body, respond)
            if pending is not None:
                await _send(
                    respond, blocks.notice("Cancelled; nothing was done."), replace_original=True
                )
        except Exception as exc:
            log.exception("cancel failed")
            await _send(respond, blocks.failure_message(exc, doing="cancel"))

    async def _take(self, body: dict[str, Any], respond: AsyncRespond) -> Confirmation | None:
        """The confirmation the pressed button names, or None after telling the user why not."""
        caller = Caller.of_interaction(body)
        actions = body.get("actions") or [{}]
        confirmation_id = str(actions[0].get("value", ""))
        try:
            return await self.confirmations.take(confirmation_id, user_id=caller.user_id)
        except ConfirmationRefusedError as exc:
            await _send(
                respond,
                blocks.notice(f":no_entry: {exc}"),
                response_type="ephemeral",
                replace_original=False,
            )
            return None

    async def _record(
        self,
        caller: Caller,
        command: str,
        outcome: Outcome,
        *,
        vendor: str = "",
        target: str = "",
        sent: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """One audit entry for a Slack write: who and where (the actor), command, result."""
        entry = AuditEntry(
            actor=slack_actor(caller.user_id, caller.team_id, caller.channel_id),
            vendor=vendor,
            operation=f"{COMMAND} {command}",
            target=target,
            sent={"workspace": caller.team_id, "channel": caller.channel_id, **(sent or {})},
            outcome=outcome,
            error=error,
        )
        try:
            await self.audit.record(entry)
        except Exception:
            # Losing an audit line must not hide the write's own outcome from the user.
            log.exception("could not record %s %s", entry.operation, entry.outcome)


def _metadata(view: dict[str, Any]) -> dict[str, str]:
    try:
        data = json.loads(str(view.get("private_metadata") or "{}"))
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _ticket_wire(payload: dict[str, Any]) -> dict[str, Any]:
    wire = {
        "subject": payload["subject"],
        "message": payload["message"],
        "priorityLevel": _code(payload.get("priority")),
        "ticketType": _code(payload.get("type")),
        "descript": payload.get("description"),
    }
    return {key: value for key, value in wire.items() if value is not None}


def _code(value: object) -> int | str | None:
    """A console id typed in Slack: `2` is the number 2, anything else stays text."""
    if value is None:
        return None
    text = str(value).strip()
    return int(text) if text.isdigit() else text


async def _send(respond: AsyncRespond, answer: blocks.Message, **options: Any) -> None:
    """Post through `response_url`; a failure is logged, never raised (we are past the ack)."""
    try:
        await respond(**answer, **options)
    except Exception:
        log.exception("could not post to response_url")


async def _answer(ack: AsyncAck, respond: AsyncRespond, answer: blocks.Message) -> None:
    """Answer in the ack when it has not been sent yet, else through `response_url`."""
    if ack.response is None:
        await ack(**answer)
    else:
        await _send(respond, answer)


__all__ = ["COMMAND", "Caller", "CrmBot", "LoggingAuditLog", "build_app"]
