"""`/crm ticket`: check the ticket, ask to confirm it, create it when confirmed.

    flow = TicketFlow(services, confirmations)
    await flow.ask(command, caller, ack, response_url)   # in the ack: the Confirm / Cancel ask
    await flow.create(pending, respond)                  # on Confirm: the ticket, in the channel
    await flow.open_form(ack, body, client)              # `/crm ticket` alone: the modal

The modal (`bots.ticket_modal`) is the form's confirmation: its submission is handled by
`bots.shortcuts`, as the message shortcut's is.

A ticket Bangwo8 would refuse is refused before anyone is asked to confirm it. The create is
`tools.tickets.create_ticket` with the caller as its actor: the tool records it in the audit
log, as it does for the MCP server and the CLI.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from slack_bolt.async_app import AsyncAck, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bots import blocks
from bots.commands import TicketCommand
from bots.confirmations import Confirmation, ConfirmationFlow
from bots.locale import in_channel_language
from bots.replies import Caller, send
from bots.ticket_modal import TicketSource, open_ticket_modal
from tools.errors import InputError
from tools.i18n import marked, tr
from tools.observability.calls import observe_tool
from tools.services import Services
from tools.tickets import code_value, create_ticket, ticket_to_create

log = logging.getLogger("crmops.slack")


class TicketFlow:
    """What `/crm ticket` does, from the command to the created ticket."""

    CONFIRMATION: ClassVar[str] = "ticket"
    """The `command` of a ticket's pending confirmation."""

    def __init__(self, services: Services, confirmations: ConfirmationFlow) -> None:
        self.services = services
        self.confirmations = confirmations

    async def ask(
        self, command: TicketCommand, caller: Caller, ack: AsyncAck, response_url: str
    ) -> None:
        """Ack with the ticket and Confirm / Cancel, or with what Bangwo8 would refuse."""
        payload = {"subject": command.subject, "message": command.message, **command.options}
        try:
            ticket_to_create(**tool_arguments(payload))
        except InputError as exc:
            await ack(**blocks.failure_message(exc, doing=marked("create this ticket")))
            return
        pending = await self.confirmations.ask(caller, self.CONFIRMATION, response_url, payload)
        await ack(
            **blocks.ticket_confirmation(
                pending.id, command.subject, command.message, command.options
            )
        )

    async def open_form(self, ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        """`/crm ticket` with no arguments: ack, then open the ticket modal (a failure goes to
        the command's `response_url`)."""
        if ack.response is None:
            await ack()
        try:
            source = TicketSource.of_command(body)
            await open_ticket_modal(client, str(body.get("trigger_id", "")), source)
        except Exception as exc:
            log.warning("could not open the ticket modal", exc_info=True)
            respond = AsyncRespond(response_url=str(body.get("response_url", "")))
            failed = blocks.failure_message(exc, doing=marked("open the ticket form"))
            await send(respond, failed)

    async def create(self, pending: Confirmation, respond: AsyncRespond) -> None:
        """Create the confirmed ticket and post it in the channel."""
        caller = Caller(pending.user_id, pending.team_id, pending.channel_id)
        await send(respond, blocks.notice(tr("Creating the ticket…")), replace_original=True)
        try:
            creating = create_ticket(
                self.services, **tool_arguments(pending.payload), actor=caller.actor
            )
            created = await observe_tool("create_ticket", "slack", creating)  # metrics, span
        except Exception as exc:
            log.warning("ticket creation failed", exc_info=True)
            await send(
                respond,
                blocks.failure_message(exc, doing=marked("create the ticket")),
                replace_original=True,
            )
            return
        with in_channel_language():  # the whole channel reads it
            announcement = blocks.ticket_created(created, pending.user_id)
        await send(
            respond,
            announcement,
            response_type="in_channel",
            replace_original=False,
        )
        await send(
            respond,
            blocks.notice(
                ":white_check_mark: " + tr("Created ticket #{id}.", id=created.ticket.id)
            ),
            replace_original=True,
        )


def tool_arguments(payload: dict[str, Any]) -> dict[str, Any]:
    """The `create_ticket` arguments of a `/crm ticket` (its `--priority`, `--type`,
    `--description` as typed in Slack)."""
    return {
        "subject": payload["subject"],
        "message": payload["message"],
        "priority": code_value(payload.get("priority")),
        "ticket_type": code_value(payload.get("type")),
        "description": payload.get("description"),
    }
