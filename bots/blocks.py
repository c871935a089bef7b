"""Block Kit messages for `/crm`: each function returns a message payload (`text` + `blocks`).

`text` is always set: Slack shows it in notifications and to screen readers. Texts written
by people or vendors are escaped (`&`, `<`, `>`) and cut to Slack's limits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bots.commands import SUBCOMMANDS
from tools.customers import CustomerQuery
from tools.errors import CrmopsError
from tools.lookup import ErrorLookup, render_text
from tools.staff import StaffList
from tools.tickets import CreatedTicket

Block = dict[str, Any]
Message = dict[str, Any]

CONFIRM_ACTION = "crm_confirm"
CANCEL_ACTION = "crm_cancel"
SECTION_LIMIT = 3000  # Slack: a section's text
TEXT_LIMIT = 3000  # our cap for a message's fallback text
MAX_LIST_ITEMS = 20


def escape(text: str) -> str:
    """Text shown as mrkdwn without Slack reading `<...>` as a link or mention."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cut(text: str, limit: int = SECTION_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": cut(text)}}


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": cut(text)}]}


def button(text: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        "value": value,
    }
    if style:
        element["style"] = style
    return element


def message(text: str, blocks: Sequence[Block] | None = None) -> Message:
    """A payload with `text` as fallback and, by default, one section holding it."""
    return {"text": cut(text, TEXT_LIMIT), "blocks": list(blocks or [section(text)])}


def help_message() -> Message:
    lines = [
        f"*`{sub.usage}`*\n{sub.summary}. Example: `{sub.example}`" for sub in SUBCOMMANDS.values()
    ]
    blocks = [section("*crmops* — SocialEpoch, Xiaolanben and Bangwo8 from Slack")]
    blocks += [section(line) for line in lines]
    blocks.append(context("Writes (ticket, import) ask you to confirm first."))
    return message("crmops: /crm help, error, staff, customer, ticket, import", blocks)


def lookup_message(result: ErrorLookup) -> Message:
    return message(f"```{escape(render_text(result))}```")


def staff_message(result: StaffList, search: str | None) -> Message:
    what = f"matching *{escape(search)}*" if search else "in Xiaolanben"
    if not result.staff:
        return message(f"No staff {what}.")
    lines = [
        f"`{member.staff_id}` *{escape(member.real_name or '—')}*"
        f"  {escape(member.mobile or '')}  {escape(member.department or '')}"
        f"{'  · ' + escape(member.role) if member.role else ''}"
        for member in result.staff[:MAX_LIST_ITEMS]
    ]
    shown = min(len(result.staff), MAX_LIST_ITEMS)
    more = result.more_available or len(result.staff) > MAX_LIST_ITEMS
    head = f"{shown} staff {what}" + (" (more match: narrow the search)" if more else "")
    return message(head, [section(f"*{head}*"), section("\n".join(lines))])


def customer_message(result: CustomerQuery) -> Message:
    if not result.customers:
        numbers = ", ".join(result.not_found)
        return message(f"No SocialEpoch customer has WhatsApp number {escape(numbers)}.")
    blocks: list[Block] = []
    for record in result.customers:
        fields = {
            "Name": record.friend_name,
            "Tags": record.tab_name,
            "Stage": record.stage,
            "Source": record.source,
            "Owner": record.agent_account,
            "Email": record.email,
        }
        lines = [f"*{key}:* {escape(str(value))}" for key, value in fields.items() if value]
        lines += [f"*{key}:* {escape(str(value))}" for key, value in record.extended_fields.items()]
        blocks.append(section(f"*WhatsApp {escape(record.whatsapp)}*\n" + "\n".join(lines)))
    first = result.customers[0]
    return message(f"SocialEpoch customer {first.whatsapp}: {first.friend_name or ''}", blocks)


def ticket_confirmation(
    confirmation_id: str, subject: str, body: str, options: dict[str, str]
) -> Message:
    details = "".join(f"\n*{key.title()}:* {escape(value)}" for key, value in options.items())
    text = f"Create this Bangwo8 ticket?\n*Subject:* {escape(subject)}\n*Message:* {escape(body)}"
    return message(
        "Create this Bangwo8 ticket?",
        [
            section(text + details),
            {
                "type": "actions",
                "elements": [
                    button("Create ticket", CONFIRM_ACTION, confirmation_id, "primary"),
                    button("Cancel", CANCEL_ACTION, confirmation_id),
                ],
            },
        ],
    )


def ticket_created(created: CreatedTicket, user_id: str) -> Message:
    ticket = created.ticket
    return message(
        f"<@{user_id}> created Bangwo8 ticket #{ticket.id}: {escape(ticket.subject)}",
        [
            section(f":white_check_mark: <@{user_id}> created Bangwo8 ticket *#{ticket.id}*"),
            section(f"*{escape(ticket.subject)}*"),
            context(f"status {ticket.status or '—'} · priority {ticket.priority or '—'}"),
        ],
    )


def failure_message(error: BaseException, *, doing: str) -> Message:
    """What a person sees when `doing` failed: a `CrmopsError` in its own words, else a bug."""
    if isinstance(error, CrmopsError):
        return message(f":warning: Could not {doing}.\n```{escape(str(error))}```")
    return message(
        f":x: Could not {doing}: crmops failed unexpectedly ({type(error).__name__}). "
        "The details are in the bot's log."
    )


def notice(text: str) -> Message:
    return message(text)
