"""Shortcuts and the ticket modal's submission: tickets from messages, modals from anywhere.

    register_shortcuts(app, bot)     # in bots.app: the listeners below, on the bot's flows

- "Create ticket" (message shortcut `create_ticket`): the modal, prefilled from the message
  (`bots.ticket_modal`); the ticket's id is posted in the message's thread.
- "New ticket" (global shortcut `new_ticket`) and `/crm ticket` with no arguments (through
  `bots.tickets.TicketFlow.open_form`): the same modal, empty.
- "Import customers" (global shortcut `import_customers`): the import modal of
  `bots.imports`, asking where to post the preview (a global shortcut has no channel).

Ack first: a shortcut is acked before anything else, then the modal is opened (the trigger
lasts 3 s) and the access rules checked; a refusal replaces the modal. A submission is
checked in the ack with `ticket_to_create` alone (local: errors go under their fields); the
ack then swaps the modal for "Creating…", and the rest happens after it: the submission's
nonce is claimed once (in Redis when replicas share one, so a double submit creates one
ticket), the access rules are checked again, `create_ticket` runs with the Slack user as
its actor (the tool audits it; the nonce is its `request_id`), and the outcome is shown by
`views.update` and announced where the modal came from. A create that fails shows the form
again as it was typed, with the reason: its next submission is a new attempt with the same
`request_id`, so a ticket the failed one made after all is not made twice.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bots import blocks
from bots.access import AccessCheck
from bots.commands import SUBCOMMANDS
from bots.dedupe import MemoryDeliveries, RedisDeliveries, SeenDeliveries
from bots.imports import ImportFlow
from bots.locale import in_channel_language
from bots.replies import Caller, send
from bots.ticket_modal import (
    IMPORT_SHORTCUT,
    MESSAGE_SHORTCUT,
    NEW_TICKET_SHORTCUT,
    TICKET_VIEW,
    TicketForm,
    TicketSource,
    open_ticket_modal,
    read_submission,
    status_view,
    ticket_modal,
)
from tools.errors import CrmopsError, StorageUnavailableError
from tools.i18n import marked, tr
from tools.services import Services
from tools.tickets import CreatedTicket, create_ticket

log = logging.getLogger("crmops.slack")

SUBMISSION_TTL = 3600.0
"""Seconds a submitted modal's nonce is remembered: its repeats come within seconds."""
REQUEST_ID_MAX = 64  # create_ticket's request_id


class Bot(Protocol):
    """What the shortcuts need of the bot (`bots.app.CrmBot` is one)."""

    services: Services
    access: AccessCheck
    imports: ImportFlow


def register_shortcuts(app: AsyncApp, bot: Bot) -> TicketModalFlow:
    """Listen for the shortcuts and the ticket modal's submission; the flow behind them."""
    redis = bot.services.shared.redis
    seen: SeenDeliveries = (
        RedisDeliveries(redis, ttl=SUBMISSION_TTL)
        if redis is not None
        else MemoryDeliveries(ttl=SUBMISSION_TTL)
    )
    flow = TicketModalFlow(bot.services, bot.access, seen)

    @app.message_shortcut(MESSAGE_SHORTCUT)
    async def ticket_from_message(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient
    ) -> None:
        await ack()
        await flow.open(TicketSource.of_message(body), str(body.get("trigger_id", "")), client)

    @app.global_shortcut(NEW_TICKET_SHORTCUT)
    async def new_ticket(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await flow.open(TicketSource.of_shortcut(body), str(body.get("trigger_id", "")), client)

    @app.global_shortcut(IMPORT_SHORTCUT)
    async def import_customers(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        try:
            await bot.imports.open_modal(None, body, client)
        except Exception:
            log.exception("could not open the import modal")

    @app.view_submission(TICKET_VIEW)
    async def ticket_submitted(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> None:
        await flow.submitted(ack, body, view, client)

    return flow


class TicketModalFlow:
    """The ticket modal from its opening to the created ticket's announcement."""

    def __init__(self, services: Services, access: AccessCheck, seen: SeenDeliveries) -> None:
        self.services = services
        self.access = access
        self.seen = seen

    # --- opening ---------------------------------------------------------------------------
    async def open(self, source: TicketSource, trigger_id: str, client: AsyncWebClient) -> None:
        """Open the modal at once, then check access: a refusal replaces the modal."""
        try:
            view_id = await open_ticket_modal(client, trigger_id, source)
            refusal = await self.access.refusal(SUBCOMMANDS["ticket"], _caller(source))
            if refusal is not None:
                await client.views_update(
                    view_id=view_id, view=status_view(tr("Not allowed"), f":no_entry: {refusal}")
                )
        except Exception:
            log.exception("could not open the ticket modal")

    # --- submission ------------------------------------------------------------------------
    async def submitted(
        self, ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> None:
        """Errors under their fields in the ack; else "Creating…", and the ticket after it.
        A failed create shows the form again as typed: its next submit retries safely."""
        form = read_submission(view)
        if form.errors:
            await ack(response_action="errors", errors=form.errors)
            return
        creating = status_view(tr("Create ticket"), tr("Creating…"))
        await ack(response_action="update", view=creating)
        source = TicketSource.of_view(view)
        try:
            outcome = await self._create(form, source, body, view, client)
        except Exception as exc:
            if not isinstance(exc, CrmopsError):
                log.warning("ticket creation from the modal failed", exc_info=True)
            failure = blocks.failure_message(exc, doing=marked("create the ticket"))["text"]
            again = tr("Press *Create* to try again: Bangwo8 never makes it twice.")
            problem = f"{failure}\n{again}"
            outcome = ticket_modal(source.again(), values=form.values, problem=problem)
        if outcome is not None:
            await _update(client, str(view.get("id", "")), outcome)

    async def _create(
        self,
        form: TicketForm,
        source: TicketSource,
        body: dict[str, Any],
        view: dict[str, Any],
        client: AsyncWebClient,
    ) -> dict[str, Any] | None:
        """Create the ticket once; the view the modal should show then (None for a repeat)."""
        nonce = (source.nonce or str(view.get("id", "")))[:REQUEST_ID_MAX]
        if not await self._first_submission(f"{nonce}:{source.attempt}"):
            return None  # the first submission of this modal creates and answers
        caller = _caller(source, body)
        refusal = await self.access.refusal(SUBCOMMANDS["ticket"], caller)
        if refusal is not None:
            return status_view(tr("Not allowed"), f":no_entry: {refusal}")
        # The nonce is the request id on every attempt: a create whose answer was lost made
        # a ticket Bangwo8 then answers again instead of making a second.
        created = await create_ticket(
            self.services, **form.arguments, request_id=nonce, actor=caller.actor
        )
        announced = await self._announce(source, created, caller, client)
        ticket = created.ticket
        subject = blocks.escape(ticket.subject)
        done = ":white_check_mark: " + tr(
            "Created Bangwo8 ticket *#{id}*: {subject}", id=ticket.id, subject=subject
        )
        return status_view(tr("Ticket created"), done + (f"\n{announced}" if announced else ""))

    async def _first_submission(self, key: str) -> bool:
        try:
            return await self.seen.first_time(f"ticket-modal:{key}")
        except StorageUnavailableError as exc:
            # Bangwo8 still drops a repeat: the key is the create's request_id.
            log.warning("creating a ticket without the submission check: %s", exc)
            return True

    async def _announce(
        self, source: TicketSource, created: CreatedTicket, caller: Caller, client: AsyncWebClient
    ) -> str:
        """Post the ticket where the modal came from; a line for the modal when that failed."""
        with in_channel_language():  # a channel post or thread reply: everyone reads it
            message = blocks.ticket_created(created, caller.user_id)
        if source.kind == "command" and source.response_url:
            respond = AsyncRespond(response_url=source.response_url)
            await send(respond, message, response_type="in_channel", replace_original=False)
        elif source.kind == "message" and source.channel_id:
            try:
                await client.chat_postMessage(
                    channel=source.channel_id, thread_ts=source.thread_ts or None, **message
                )
            except SlackApiError as exc:
                log.warning("could not reply in the thread: %s", exc.response.get("error"))
                return tr(
                    "Could not post it in the message's thread ({error}): "
                    "invite the app to the channel.",
                    error=exc.response.get("error"),
                )
        return ""


def _caller(source: TicketSource, body: dict[str, Any] | None = None) -> Caller:
    """Who submitted (the payload's user, signed by Slack) or opened the modal, and where."""
    user = (body or {}).get("user") or {}
    team = (body or {}).get("team") or {}
    return Caller(
        user_id=str(user.get("id") or source.user_id),
        team_id=str(team.get("id") or user.get("team_id") or source.team_id),
        channel_id=source.channel_id,
    )


async def _update(client: AsyncWebClient, view_id: str, view: dict[str, Any]) -> None:
    try:
        await client.views_update(view_id=view_id, view=view)
    except Exception:
        log.exception("could not update the ticket modal")


__all__ = ["TicketModalFlow", "register_shortcuts"]
