"""Block Kit messages for `/crm`: each function returns a message payload (`text` + `blocks`).

`text` is always set: Slack shows it in notifications and to screen readers. Texts written
by people or vendors are escaped (`&`, `<`, `>`) and cut to Slack's limits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel

from tools.customers import CustomerQuery
from tools.errors import CrmopsError
from tools.lookup import ErrorLookup, render_text
from tools.staff import StaffList
from tools.text import one_line
from tools.tickets import CreatedTicket, TicketList

Block = dict[str, Any]
Message = dict[str, Any]
Asked = Mapping[str, Any]
"""The keyword arguments a tool was called with, as a renderer receives them."""

CONFIRM_ACTION = "crm_confirm"
CANCEL_ACTION = "crm_cancel"
SECTION_LIMIT = 3000  # Slack: a section's text
TEXT_LIMIT = 3000  # our cap for a message's fallback text
MAX_LIST_ITEMS = 20
MAX_BLOCKS = 50  # Slack: blocks in one message
LINE_LIMIT = 300  # our cap for one item's line in a list


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


class Documented(Protocol):
    """What `/crm help` shows of a subcommand (`bots.commands.Subcommand` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def usage(self) -> str: ...
    @property
    def summary(self) -> str: ...
    @property
    def example(self) -> str: ...
    @property
    def writes(self) -> bool: ...


def help_message(subcommands: Iterable[Documented]) -> Message:
    """`/crm help`: each subcommand's usage, summary and example, in the order given."""
    listed = list(subcommands)
    lines = [f"*`{sub.usage}`*\n{sub.summary}. Example: `{sub.example}`" for sub in listed]
    blocks = [section("*crmops* — SocialEpoch, Xiaolanben and Bangwo8 from Slack")]
    blocks += [section(line) for line in lines]
    writes = ", ".join(sub.name for sub in listed if sub.writes)
    blocks.append(context(f"Writes ({writes}) ask you to confirm first."))
    return message("crmops: /crm " + ", ".join(sub.name for sub in listed), blocks)


def lookup_message(result: ErrorLookup) -> Message:
    return message(f"```{escape(render_text(result))}```")


def staff_message(result: StaffList, asked: Asked) -> Message:
    search = asked.get("search")
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


def customer_message(result: CustomerQuery, asked: Asked) -> Message:
    """The customers found; `asked` is not needed: the result names the numbers not found."""
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
    # The fallback text is read as mrkdwn too: a stored name of `<!channel>` would ping everyone.
    fallback = f"SocialEpoch customer {first.whatsapp}: {first.friend_name or ''}"
    return message(escape(fallback), blocks)


def tickets_message(result: TicketList, asked: Asked) -> Message:
    """A page of Bangwo8 tickets, one line each: id, subject, status, created time."""
    if not result.tickets:
        return message("No Bangwo8 tickets.")
    lines = [
        cut(
            f"`#{ticket.id}` *{escape(one_line(ticket.subject))}*"
            f"  status {escape(str(ticket.status or '—'))}"
            f" · created {_when(ticket.created_at)}",
            LINE_LIMIT,
        )
        for ticket in result.tickets[:MAX_LIST_ITEMS]
    ]
    shown = min(len(result.tickets), MAX_LIST_ITEMS)
    newest = "newest " if asked.get("created_order") == "desc" else ""
    head = f"The {shown} {newest}of {result.count} Bangwo8 tickets"
    return message(head, [section(f"*{head}*"), section("\n".join(lines))])


def result_message(title: str, result: BaseModel) -> Message:
    """Any tool result, readably: `title`, the result's plain fields as `*name:* value`
    lines, then each list field as at most `MAX_LIST_ITEMS` lines (one an item) saying how
    many more there are. Within Slack's limits whatever the result."""
    plain: list[tuple[str, str]] = []
    lists: list[Block] = []
    for name, value in result:
        if isinstance(value, list):
            lists += [section(text) for text in _packed(_list_lines(_label(name), value))]
        elif value is not None and value != {}:
            plain.append((_label(name), _shown(value)))
    head = "\n".join([f"*{escape(title)}*", *(f"*{key}:* {text}" for key, text in plain)])
    blocks = [section(head), *lists][:MAX_BLOCKS]
    return message(f"{title}: " + ", ".join(f"{key} {text}" for key, text in plain), blocks)


def _list_lines(label: str, items: list[Any]) -> list[str]:
    lines = [f"*{label}* ({len(items)})"]
    lines += [cut(_shown(item), LINE_LIMIT) for item in items[:MAX_LIST_ITEMS]] or ["none"]
    if len(items) > MAX_LIST_ITEMS:
        lines.append(f"… and {len(items) - MAX_LIST_ITEMS} more")
    return lines


def _packed(lines: list[str]) -> list[str]:
    """`lines` in as few texts as fit a section each (every line is under the limit)."""
    texts = [lines[0]]
    for line in lines[1:]:
        if len(texts[-1]) + 1 + len(line) > SECTION_LIMIT:
            texts.append(line)
        else:
            texts[-1] += "\n" + line
    return texts


def _shown(value: Any) -> str:
    """A value on one escaped line: a model or mapping as `name value · name value`."""
    if isinstance(value, BaseModel):
        value = dict(value)
    if isinstance(value, Mapping):
        shown = ((escape(_label(str(key))), _shown(item)) for key, item in value.items())
        return " · ".join(f"{key} {text}" for key, text in shown if text)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return _when(value)
    if isinstance(value, list):
        return ", ".join(_shown(item) for item in value)
    return escape(one_line(str(value))) if value is not None else ""


def _label(name: str) -> str:
    return name.replace("_", " ")


def _when(moment: datetime | None) -> str:
    return moment.isoformat(sep=" ", timespec="minutes") if moment else "—"


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
