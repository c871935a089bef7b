"""`/crm ticket`: check the ticket, ask to confirm it, create it when confirmed.

    flow = TicketFlow(services, confirmations)
    await flow.ask(command, caller, ack, response_url)   # in the ack: the Confirm / Cancel ask
    await flow.create(pending, respond)                  # on Confirm: the ticket, in the channel

A ticket Bangwo8 would refuse is refused before anyone is asked to confirm it. The create is
`tools.tickets.create_ticket` with the caller as its actor: the tool records it in the audit
log, as it does for the MCP server and the CLI.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from slack_bolt.async_app import AsyncAck, AsyncRespond

from bots import blocks
from bots.commands import TicketCommand
from bots.confirmations import Confirmation, ConfirmationFlow
from bots.replies import Caller, send
from tools.errors import InputError
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
            await ack(**blocks.failure_message(exc, doing="create this ticket"))
            return
        pending = await self.confirmations.ask(caller, self.CONFIRMATION, response_url, payload)
        await ack(
            **blocks.ticket_confirmation(
                pending.id, command.subject, command.message, command.options
            )
        )

    async def create(self, pending: Confirmation, respond: AsyncRespond) -> None:
        """Create the confirmed ticket and post it in the channel."""
        caller = Caller(pending.user_id, pending.team_id, pending.channel_id)
        await send(respond, blocks.notice("Creating the ticket…"), replace_original=True)
        try:
            created = await create_ticket(
                self.services, **tool_arguments(pending.payload), actor=caller.actor
            )
        except Exception as exc:
            log.warning("ticket creation failed", exc_info=True)
            await send(
                respond,
                blocks.failure_message(exc, doing="create the ticket"),
                replace_original=True,
            )
            return
        await send(
            respond,
            blocks.ticket_created(created, pending.user_id),
            response_type="in_channel",
            replace_original=False,
        )
        await send(
            respond,
            blocks.notice(f":white_check_mark: Created ticket #{created.ticket.id}."),
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
