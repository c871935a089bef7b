"""Ticket tools: create and list Bangwo8 (帮我吧) helpdesk tickets::

    created = await create_ticket(services, subject="无法登录", message="客户说登录页报错 502")
    page = await list_tickets(services, created_start=date(2025, 1, 1), limit=20)

A create carries a `Requestid` (made here unless given) that the vendor uses to drop a
duplicate: the client sends the same one on each retry, and a caller that timed out can call
again with the `request_id` of the first attempt.

Every create is recorded in the audit log (`services.store`) under `create_ticket`, from
whichever surface: who asked (the `actor` the surface passes; the OS user when none is
given), the ticket's fields and request id as sent, and the outcome (ok, failed, or unknown
when the answer was lost). `ticket_to_create` checks a ticket without sending it.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, ValidationError

from tools.errors import CrmopsError, InputError, VendorUnavailableError
from tools.i18n import tr
from tools.services import Services
from tools.storage.audit import Actor, AuditEntry, AuditLog, Outcome
from tools.table import CREATE_TICKET, MAX_TICKETS_PER_PAGE
from tools.text import one_line
from tools.vendors.bangwo8.models import (
    Order,
    Ticket,
    TicketCreate,
    TicketFilters,
    problems_of,
    validate_ticket,
)

CustomValue = str | int | float | bool | list[str] | None
CodeValue = int | str
"""004 lists no values for status, priority or type: the ids configured in the console."""


class TicketInfo(BaseModel):
    """A Bangwo8 ticket as the tools report it (times in China time unless the vendor says)."""

    id: int = Field(description="the ticket id (ticketId)")
    subject: str
    description: str | None = Field(default=None, description="descript")
    status: int | str | None = Field(default=None, description="ticketStatus")
    priority: int | str | None = Field(default=None, description="priorityLevel")
    ticket_type: int | str | None = Field(default=None, description="ticketType")
    cust_user_id: int | str | None = Field(default=None, description="the customer (custUserId)")
    servicer_user_id: int | str | None = Field(
        default=None, description="the assigned agent (servicerUserId)"
    )
    custom_fields: list[dict[str, Any]] = Field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    other_fields: dict[str, Any] = Field(
        default_factory=dict, description="further fields the vendor sent, under its own names"
    )

    @classmethod
    def of(cls, ticket: Ticket) -> TicketInfo:
        # Ticket reads the vendor's names through validation aliases but dumps field names;
        # this model has one set of names, so its output schema and its data agree.
        known = {name: getattr(ticket, name) for name in Ticket.model_fields}
        return cls(**known, other_fields=dict(ticket.model_extra or {}))


class CreatedTicket(BaseModel):
    """The ticket Bangwo8 created."""

    ticket: TicketInfo
    request_id: str = Field(
        description="the idempotency key sent as Requestid: pass it again to retry safely"
    )


async def create_ticket(
    services: Services,
    *,
    subject: Annotated[str, Field(description="The ticket's title, 1-255 characters.")],
    message: Annotated[
        str,
        Field(description="The customer's request: the ticket's first reply (free text)."),
    ],
    description: Annotated[
        str | None, Field(description="Optional internal description, not shown to the customer.")
    ] = None,
    status: Annotated[
        CodeValue | None,
        Field(description="Optional ticketStatus id as configured in Bangwo8 (e.g. 3)."),
    ] = None,
    priority: Annotated[
        CodeValue | None,
        Field(description="Optional priorityLevel id as configured in Bangwo8 (e.g. 1-4)."),
    ] = None,
    ticket_type: Annotated[
        CodeValue | None, Field(description="Optional ticketType id as configured in Bangwo8.")
    ] = None,
    customer_user_id: Annotated[
        CodeValue | None,
        Field(description="Optional Bangwo8 user id of the customer who asks (custUserId)."),
    ] = None,
    servicer_user_id: Annotated[
        CodeValue | None,
        Field(description="Optional Bangwo8 user id of the agent to assign (servicerUserId)."),
    ] = None,
    cc_user_ids: Annotated[
        list[CodeValue] | None,
        Field(description="Optional Bangwo8 user ids to copy on the ticket (ccUserIdList)."),
    ] = None,
    custom_fields: Annotated[
        dict[str, CustomValue] | None,
        Field(description="Optional custom fields: key as configured in Bangwo8 → value."),
    ] = None,
    request_id: Annotated[
        str | None,
        Field(
            max_length=64,
            description="Leave out on a first call. When a call timed out or its outcome is "
            "unknown, call again with the request_id it returned or reported, so Bangwo8 "
            "does not create the ticket twice.",
        ),
    ] = None,
    actor: Actor | None = None,
) -> CreatedTicket:
    """Create a Bangwo8 (帮我吧) helpdesk ticket with a subject and the customer's message.

    Each call creates a new ticket; do not call twice for one request. Returns the created
    ticket (id, status, priority) and the request_id that makes a retry safe.
    """
    ticket = ticket_to_create(
        subject=subject,
        message=message,
        description=description,
        status=status,
        priority=priority,
        ticket_type=ticket_type,
        customer_user_id=customer_user_id,
        servicer_user_id=servicer_user_id,
        cc_user_ids=cc_user_ids,
        custom_fields=custom_fields,
    )
    key = request_id or uuid.uuid4().hex
    # Opened before the write: a database that cannot be opened stops an unaudited create.
    sent = {**ticket.wire()["ticket"], "request_id": key}
    audit = _Audit(services.store.audit, actor or Actor.local_user("library"), sent)
    try:
        created = await services.bangwo8.create_ticket(ticket, request_id=key)
    except Exception as exc:
        await audit.record(_outcome_of(exc), "ticket not created", error=str(exc))
        raise
    info = TicketInfo.of(created)
    await audit.record("ok", f"ticket {info.id}")
    return CreatedTicket(ticket=info, request_id=key)


def ticket_to_create(
    *,
    subject: str,
    message: str,
    description: str | None = None,
    status: CodeValue | None = None,
    priority: CodeValue | None = None,
    ticket_type: CodeValue | None = None,
    customer_user_id: CodeValue | None = None,
    servicer_user_id: CodeValue | None = None,
    cc_user_ids: list[CodeValue] | None = None,
    custom_fields: dict[str, CustomValue] | None = None,
) -> TicketCreate:
    """The ticket `create_ticket` sends for these arguments, or `InputError` naming each
    field Bangwo8 would refuse: call it to check a ticket before asking anyone to confirm."""
    fields: dict[str, Any] = {
        "subject": subject,
        "message": message,
        "descript": description,
        "ticketStatus": status,
        "priorityLevel": priority,
        "ticketType": ticket_type,
        "custUserId": customer_user_id,
        "servicerUserId": servicer_user_id,
        "ccUserIdList": cc_user_ids,
        "custom_fields": _custom_field_list(custom_fields),
    }
    return validate_ticket({k: v for k, v in fields.items() if v is not None})


def code_value(text: str | None) -> CodeValue | None:
    """An id typed by a person (Slack, the CLI): `"2"` is the number 2, anything else text."""
    if text is None:
        return None
    text = text.strip()
    return int(text) if text.isdigit() else text


class _Audit:
    """One create's audit entry, written once its outcome is known."""

    def __init__(self, log: AuditLog, actor: Actor, sent: dict[str, Any]) -> None:
        self.log = log
        self.actor = actor
        self.sent = sent

    async def record(self, outcome: Outcome, target: str, *, error: str | None = None) -> None:
        entry = AuditEntry(
            actor=self.actor,
            vendor="bangwo8",
            operation=CREATE_TICKET.name,
            target=target,
            sent=self.sent,
            outcome=outcome,
            error=one_line(error) if error else None,
        )
        await self.log.record(entry)


def _outcome_of(error: Exception) -> Outcome:
    """`failed` when Bangwo8 surely made no ticket; `unknown` when the request may have
    reached it and the answer was lost (or we failed on our side after sending)."""
    if isinstance(error, VendorUnavailableError):
        return "unknown" if error.request_sent else "failed"
    return "failed" if isinstance(error, CrmopsError) else "unknown"


def _custom_field_list(fields: dict[str, CustomValue] | None) -> list[dict[str, Any]] | None:
    if fields is None:
        return None
    return [{"key": key, "value": value} for key, value in fields.items()]


class TicketList(BaseModel):
    """One page of Bangwo8 tickets."""

    tickets: list[TicketInfo]
    count: int = Field(description="tickets matching the filters, over all pages")
    page: int = Field(description="this page's number, from 1")
    more_available: bool = Field(description="true when a next page exists: ask for page + 1")


_TIME_HINT = (
    "yyyy-MM-dd (the whole day) or yyyy-MM-ddTHH:MM:SS; China time unless an offset is given."
)


async def list_tickets(
    services: Services,
    *,
    created_start: Annotated[
        datetime | date | None, Field(description=f"Created at or after. {_TIME_HINT}")
    ] = None,
    created_end: Annotated[
        datetime | date | None, Field(description=f"Created at or before. {_TIME_HINT}")
    ] = None,
    updated_start: Annotated[
        datetime | date | None, Field(description=f"Updated at or after. {_TIME_HINT}")
    ] = None,
    updated_end: Annotated[
        datetime | date | None, Field(description=f"Updated at or before. {_TIME_HINT}")
    ] = None,
    created_order: Annotated[
        Order | None, Field(description="Sort by creation time: asc or desc.")
    ] = None,
    updated_order: Annotated[
        Order | None, Field(description="Sort by update time: asc or desc.")
    ] = None,
    page: Annotated[int, Field(ge=1, description="Page number, from 1.")] = 1,
    limit: Annotated[
        int,
        Field(ge=1, le=MAX_TICKETS_PER_PAGE, description="Tickets per page, 1-100."),
    ] = 20,
) -> TicketList:
    """List Bangwo8 (帮我吧) helpdesk tickets, filtered by creation or update time.

    Returns one page of at most `limit` tickets, the total count and whether more pages
    exist. Narrow the time range rather than paging through everything.
    """
    try:
        filters = TicketFilters(
            created_start=created_start,
            created_end=created_end,
            updated_start=updated_start,
            updated_end=updated_end,
            created_order=created_order,
            updated_order=updated_order,
        )
    except ValidationError as exc:
        raise InputError(problems_of(exc), summary=tr("invalid ticket filters")) from exc
    result = await services.bangwo8.list_tickets(page=page, per_page=limit, filters=filters)
    return TicketList(
        tickets=[TicketInfo.of(ticket) for ticket in result.tickets[:limit]],
        count=result.count,
        page=page,
        more_available=result.next_page is not None or page * limit < result.count,
    )
