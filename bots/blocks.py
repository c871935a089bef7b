"""Block Kit messages for `/crm`: each function returns a message payload (`text` + `blocks`).

`text` is always set: Slack shows it in notifications and to screen readers. Texts written
by people or vendors are escaped (`&`, `<`, `>`) and cut to Slack's limits. Our own words
are in the current language (`tools.i18n.tr`; `bots.locale` picks it per request), times
in the user's time zone (`bots.locale.user_time`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel

from bots.locale import CHINESE_SUBCOMMANDS, user_time
from tools.customers import CustomerQuery
from tools.errors import CrmopsError
from tools.i18n import marked, tr
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
    """`/crm help`: each subcommand's usage, summary and example, in the order given (the
    usage and summary in the current language), the subcommands' Chinese names, and that
    `/crm` and the app's name stay as they are (Slack's rule)."""
    listed = list(subcommands)
    lines = [
        f"*`{tr(sub.usage)}`*\n"
        + tr(
            "{summary}. Example: {example}",
            summary=tr(sub.summary, **getattr(sub, "summary_values", {})),
            example="`" + sub.example + "`",
        )
        for sub in listed
    ]
    blocks = [section(tr("*crmops* — SocialEpoch, Xiaolanben and Bangwo8 from Slack"))]
    blocks += [section(line) for line in lines]
    writes = ", ".join(sub.name for sub in listed if sub.writes)
    if writes:
        blocks.append(context(tr("Writes ({writes}) ask you to confirm first.", writes=writes)))
    names = {sub.name for sub in listed}
    chinese = [f"`{zh}` = `{en}`" for zh, en in CHINESE_SUBCOMMANDS.items() if en in names]
    if chinese:
        blocks.append(
            context(
                tr("Each subcommand also has a Chinese name: {names}.", names=", ".join(chinese))
            )
        )
    blocks.append(context(tr(SLASH_NAMES_STAY)))
    return message("crmops: /crm " + ", ".join(sub.name for sub in listed), blocks)


SLASH_NAMES_STAY = marked(
    "Slack does not let an app translate its slash command or its name: `/crm` and "
    "crmops stay as they are in every language; the words after `/crm` may be Chinese "
    "(`/crm 错误 502`)."
)


def lookup_message(result: ErrorLookup) -> Message:
    return message(f"```{escape(render_text(result))}```")


def staff_message(result: StaffList, asked: Asked) -> Message:
    search = asked.get("search")
    if not result.staff:
        if search:
            return message(tr("No staff matching *{search}*.", search=escape(search)))
        return message(tr("No staff in Xiaolanben."))
    lines = [
        f"`{member.staff_id}` *{escape(member.real_name or '—')}*"
        f"  {escape(member.mobile or '')}  {escape(member.department or '')}"
        f"{'  · ' + escape(member.role) if member.role else ''}"
        for member in result.staff[:MAX_LIST_ITEMS]
    ]
    shown = min(len(result.staff), MAX_LIST_ITEMS)
    more = result.more_available or len(result.staff) > MAX_LIST_ITEMS
    head = (
        tr("{count} staff matching *{search}*", count=shown, search=escape(search))
        if search
        else tr("{count} staff in Xiaolanben", count=shown)
    )
    if more:
        head += tr(" (more match: narrow the search)")
    return message(head, [section(f"*{head}*"), section("\n".join(lines))])


def customer_message(result: CustomerQuery, asked: Asked) -> Message:
    """The customers found; `asked` is not needed: the result names the numbers not found."""
    if not result.customers:
        numbers = ", ".join(result.not_found)
        return message(
            tr("No SocialEpoch customer has WhatsApp number {numbers}.", numbers=escape(numbers))
        )
    blocks: list[Block] = []
    for record in result.customers:
        fields = {
            tr("Name"): record.friend_name,
            tr("Tags"): record.tab_name,
            tr("Stage"): record.stage,
            tr("Source"): record.source,
            tr("Owner"): record.agent_account,
            tr("Email"): record.email,
        }
        lines = [f"*{key}:* {escape(str(value))}" for key, value in fields.items() if value]
        lines += [f"*{key}:* {escape(str(value))}" for key, value in record.extended_fields.items()]
        blocks.append(section(f"*WhatsApp {escape(record.whatsapp)}*\n" + "\n".join(lines)))
    first = result.customers[0]
    # The fallback text is read as mrkdwn too: a stored name of `<!channel>` would ping everyone.
    fallback = tr(
        "SocialEpoch customer {whatsapp}: {name}",
        whatsapp=first.whatsapp,
        name=first.friend_name or "",
    )
    return message(escape(fallback), blocks)


def tickets_message(result: TicketList, asked: Asked) -> Message:
    """A page of Bangwo8 tickets, one line each: id, subject, status, created time."""
    if not result.tickets:
        return message(tr("No Bangwo8 tickets."))
    lines = [
        cut(
            f"`#{ticket.id}` *{escape(one_line(ticket.subject))}*  "
            + tr(
                "status {status} · created {created}",
                status=escape(str(ticket.status or "—")),
                created=_when(ticket.created_at),
            ),
            LINE_LIMIT,
        )
        for ticket in result.tickets[:MAX_LIST_ITEMS]
    ]
    shown = min(len(result.tickets), MAX_LIST_ITEMS)
    if asked.get("created_order") == "desc":
        head = tr("The {shown} newest of {count} Bangwo8 tickets", shown=shown, count=result.count)
    else:
        head = tr("The {shown} of {count} Bangwo8 tickets", shown=shown, count=result.count)
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
    title = tr(title)
    head = "\n".join([f"*{escape(title)}*", *(f"*{key}:* {text}" for key, text in plain)])
    blocks = [section(head), *lists][:MAX_BLOCKS]
    return message(f"{title}: " + ", ".join(f"{key} {text}" for key, text in plain), blocks)


def _list_lines(label: str, items: list[Any]) -> list[str]:
    lines = [f"*{label}* ({len(items)})"]
    lines += [cut(_shown(item), LINE_LIMIT) for item in items[:MAX_LIST_ITEMS]] or [tr("none")]
    if len(items) > MAX_LIST_ITEMS:
        lines.append(tr("… and {count} more", count=len(items) - MAX_LIST_ITEMS))
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
        return tr("yes") if value else tr("no")
    if isinstance(value, datetime):
        return _when(value)
    if isinstance(value, list):
        return ", ".join(_shown(item) for item in value)
    return escape(one_line(str(value))) if value is not None else ""


def _label(name: str) -> str:
    """A result field's name as a person reads it: its translation when the catalogs have
    one (`rows_read` → "rows read", 已读取行数), else the name with spaces."""
    return tr(name.replace("_", " "))


def _when(moment: datetime | None) -> str:
    return user_time(moment)


def ticket_confirmation(
    confirmation_id: str, subject: str, body: str, options: dict[str, str]
) -> Message:
    names = {
        "priority": tr("Priority"),
        "type": tr("Type"),
        "description": tr("Description"),
    }
    details = "".join(
        f"\n*{names.get(key, key.title())}:* {escape(value)}" for key, value in options.items()
    )
    ask, subject_label, message_label = (
        tr("Create this Bangwo8 ticket?"),
        tr("Subject"),
        tr("Message"),
    )
    text = f"{ask}\n*{subject_label}:* {escape(subject)}\n*{message_label}:* {escape(body)}"
    return message(
        ask,
        [
            section(text + details),
            {
                "type": "actions",
                "elements": [
                    button(tr("Create ticket"), CONFIRM_ACTION, confirmation_id, "primary"),
                    button(tr("Cancel"), CANCEL_ACTION, confirmation_id),
                ],
            },
        ],
    )


def ticket_created(created: CreatedTicket, user_id: str) -> Message:
    ticket = created.ticket
    who = f"<@{user_id}>"
    return message(
        tr(
            "{user} created Bangwo8 ticket #{id}: {subject}",
            user=who,
            id=ticket.id,
            subject=escape(ticket.subject),
        ),
        [
            section(
                ":white_check_mark: "
                + tr("{user} created Bangwo8 ticket *#{id}*", user=who, id=ticket.id)
            ),
            section(f"*{escape(ticket.subject)}*"),
            context(
                tr(
                    "status {status} · priority {priority}",
                    status=ticket.status or "—",
                    priority=ticket.priority or "—",
                )
            ),
        ],
    )


def failure_message(error: BaseException, *, doing: str) -> Message:
    """What a person sees when `doing` failed: a `CrmopsError` in its own words, else a bug.
    `doing` finishes "Could not …" and is translated here (give it `marked("…")`)."""
    doing = tr(doing)
    if isinstance(error, CrmopsError):
        could_not = tr("Could not {doing}.", doing=doing)
        return message(f":warning: {could_not}\n```{escape(str(error))}```")
    return message(
        ":x: "
        + tr(
            "Could not {doing}: crmops failed unexpectedly ({error}). "
            "The details are in the bot's log.",
            doing=doing,
            error=type(error).__name__,
        )
    )


def notice(text: str) -> Message:
    return message(text)
