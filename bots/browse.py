"""Reading back: `/crm tickets` a page at a time with a More button, and `/crm audit`.

    message = tickets_page_message(result, asked)      # a page, and More when there is one
    message = await next_tickets(services, value)      # the More button's value → next page
    message = await audit_answer(services)             # the latest writes (admins only)

The More button carries what the next page needs (the start time as an absolute moment,
and the page number), so a page never depends on state kept by the bot: any replica
answers it, any time later.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from typing import Any

from bots import blocks
from bots.blocks import Asked, Block, Message
from bots.locale import user_time
from tools.errors import InputError, Problem
from tools.i18n import marked, tr
from tools.services import Services
from tools.storage.audit import Actor, AuditEntry
from tools.tickets import TicketList, list_tickets

MORE_TICKETS_ACTION = "crm_tickets_more"
NEWEST_TICKETS = 10
"""Tickets a page of `/crm tickets` shows."""
AUDIT_SHOWN = 20
"""Audit log entries `/crm audit` shows, newest first."""
NOT_AN_ADMIN = marked(
    "`/crm audit` is for admins: an admin adds your member id to CRMOPS_SLACK_ADMIN_USERS."
)
_SLACK_ID = re.compile(r"[UW][A-Z0-9]{2,20}")


def tickets_page_message(result: TicketList, asked: Asked) -> Message:
    """A page of the newest tickets (`blocks.tickets_message`), which page and since when,
    and a More button when another page exists."""
    message = blocks.tickets_message(result, asked)
    start = asked.get("created_start")
    where = [tr("page {page}", page=result.page)]
    if start:
        where.append(tr("created since {moment}", moment=_moment(start)))
    extra: list[Block] = [blocks.context(" · ".join(where))]
    if result.more_available:
        value = json.dumps({"since": _moment(start) if start else "", "page": result.page + 1})
        extra.append(
            {"type": "actions", "elements": [blocks.button(tr("More"), MORE_TICKETS_ACTION, value)]}
        )
    message["blocks"] = [*message["blocks"], *extra]
    return message


async def next_tickets(services: Services, value: str) -> Message:
    """The page a More button's `value` names; `InputError` for a value not ours."""
    arguments = newest_tickets(*_read_more(value))
    return tickets_page_message(await list_tickets(services, **arguments), arguments)


def newest_tickets(created_start: datetime | date | None, page: int = 1) -> dict[str, Any]:
    """`list_tickets`' arguments for a page of the newest tickets created since a moment."""
    arguments: dict[str, Any] = {"created_order": "desc", "limit": NEWEST_TICKETS}
    if page > 1:
        arguments["page"] = page
    if created_start is not None:
        arguments["created_start"] = created_start
    return arguments


def _read_more(value: str) -> tuple[datetime | date | None, int]:
    try:
        data = json.loads(value)
        page = int(data["page"])
        since = str(data.get("since") or "")
        start = (
            (date.fromisoformat(since) if len(since) == 10 else datetime.fromisoformat(since))
            if since
            else None
        )
    except (ValueError, KeyError, TypeError):
        raise InputError([Problem("more", "this button is not one of ours")]) from None
    if page < 1:
        raise InputError([Problem("more", "this button is not one of ours")])
    return start, page


def _moment(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return value.isoformat() if isinstance(value, date) else str(value)


# --- /crm audit ---------------------------------------------------------------------------


async def audit_answer(services: Services, *, limit: int = AUDIT_SHOWN) -> Message:
    """The latest `limit` writes of the audit log, newest first, one line each."""
    entries = await services.store.audit.recent(limit)
    if not entries:
        return blocks.notice(tr("The audit log is empty: nothing was written yet."))
    head = tr("The {count} latest writes (audit log, newest first)", count=len(entries))
    lines = [blocks.cut(audit_line(entry), blocks.LINE_LIMIT) for entry in entries]
    return blocks.message(head, [blocks.section(f"*{head}*"), *_sections(lines)])


def audit_line(entry: AuditEntry) -> str:
    """`when · who (surface) · operation vendor target · outcome[: error]`, escaped."""
    what = " ".join(
        blocks.escape(part) for part in (entry.operation, entry.vendor, entry.target) if part
    )
    outcome = f"*{entry.outcome}*"
    if entry.error:
        outcome += f": {blocks.escape(blocks.cut(entry.error, 120))}"
    return f"{when(entry.at)} · {who(entry.actor)} · {what} · {outcome}"


def who(actor: Actor) -> str:
    """A Slack user as a mention, anyone else by name; with the surface."""
    user = slack_user_of(actor)
    if user is not None:
        return f"<@{user}> ({actor.surface})"
    return f"{blocks.escape(actor.name)} ({actor.surface})"


def slack_user_of(actor: Actor) -> str | None:
    """The Slack user id of a Slack actor (`team/channel/user`), None for other surfaces."""
    if actor.surface != "slack":
        return None
    user = actor.name.rsplit("/", 1)[-1]
    return user if _SLACK_ID.fullmatch(user) else None


def slack_channel_of(actor: Actor) -> str:
    """The channel a Slack actor (`team/channel/user`) acted in ("" when not known)."""
    parts = actor.name.split("/")
    return parts[1] if actor.surface == "slack" and len(parts) == 3 else ""


def when(at: float) -> str:
    """A Unix time for the user: in their Slack time zone, else UTC (`bots.locale`)."""
    return user_time(at)


def _sections(lines: list[str]) -> list[Block]:
    texts = [""]
    for line in lines:
        if texts[-1] and len(texts[-1]) + 1 + len(line) > blocks.SECTION_LIMIT:
            texts.append(line)
        else:
            texts[-1] = f"{texts[-1]}\n{line}" if texts[-1] else line
    return [blocks.section(text) for text in texts]
