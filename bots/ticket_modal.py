"""The "Create ticket" modal: its view, where it came from, and reading a submission back.

    source = TicketSource.of_message(body)          # a message shortcut's payload
    view = ticket_modal(source)                      # for views.open; prefilled from the message
    form = read_submission(view_payload)             # on view_submission
    form.arguments                                   # create_ticket's keyword arguments
    form.errors                                      # {block_id: message}: response_action errors

One modal serves the message shortcut, the "New ticket" global shortcut and `/crm ticket`
with no arguments; `TicketSource` (kept in the view's `private_metadata`) says which, and
where to answer: the message's thread, the command's `response_url`, or only the modal.

A submission is checked by `tools.tickets.ticket_to_create`, the check `create_ticket` runs:
each problem is shown under its field. The input blocks are named by the vendor's field
names (`priorityLevel`, `servicerUserId`, …), the names the check's problems carry. The
`nonce` in the metadata names one opened modal: its ticket is created once however often it
is submitted (`bots.shortcuts`), and it is the create's `request_id`, so Bangwo8 drops a
repeat too.

Bangwo8 has no API listing priorities, types, agents or custom fields, so those are typed:
ids as numbers (or the text codes the console shows), custom fields as `key = value` lines.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from slack_sdk.web.async_client import AsyncWebClient

from bots import blocks
from tools.errors import InputError, Problem
from tools.i18n import marked, tr
from tools.tickets import CodeValue, CustomValue, code_value, ticket_to_create
from tools.vendors.bangwo8.models import SUBJECT_MAX

TICKET_VIEW = "crm_ticket"
"""The modal's `callback_id`: its `view_submission` is routed by it."""
MESSAGE_SHORTCUT = "create_ticket"
"""The message shortcut "Create ticket" (manifest `shortcuts`, type message)."""
NEW_TICKET_SHORTCUT = "new_ticket"
"""The global shortcut "New ticket"."""
IMPORT_SHORTCUT = "import_customers"
"""The global shortcut "Import customers" (opens `bots.import_messages.import_modal`)."""

VALUE = "value"
"""The `action_id` of every input of the modal."""
INPUT_LIMIT = 3000  # Slack: a plain_text_input's initial_value and max_length
ERROR_LIMIT = 300  # our cap for one field's error under it
SourceKind = Literal["message", "command", "global"]


@dataclass(frozen=True)
class Field:
    """One input of the modal: its block id (the vendor's field name), label and help
    (English, `marked`: shown with `tr`)."""

    block_id: str
    label: str
    hint: str = ""
    multiline: bool = False
    optional: bool = True
    max_length: int = INPUT_LIMIT


SUBJECT = Field("subject", marked("Subject"), optional=False, max_length=SUBJECT_MAX)
MESSAGE = Field(
    "message", marked("Customer's message (the first reply)"), multiline=True, optional=False
)
PRIORITY = Field(
    "priorityLevel", marked("Priority"), marked("The priority id set in Bangwo8, e.g. 1-4.")
)
TYPE = Field("ticketType", marked("Type"), marked("The ticket type id set in Bangwo8."))
ASSIGNEE = Field(
    "servicerUserId",
    marked("Assignee"),
    marked("The Bangwo8 user id of the agent, e.g. 30001."),
)
CC = Field(
    "ccUserIdList",
    marked("Cc"),
    marked("Bangwo8 user ids to copy, separated by commas or spaces."),
)
CUSTOM = Field(
    "custom_fields",
    marked("Custom fields"),
    marked(
        "One key = value a line, keys as set in the Bangwo8 console; numbers are sent as numbers."
    ),
    multiline=True,
)
DESCRIPTION = Field(
    "descript",
    marked("Internal note"),
    marked("Not shown to the customer; holds the link back to Slack."),
    multiline=True,
)
FIELDS = (SUBJECT, MESSAGE, PRIORITY, TYPE, ASSIGNEE, CC, CUSTOM, DESCRIPTION)
_BLOCK_IDS = frozenset(each.block_id for each in FIELDS)


@dataclass(frozen=True)
class TicketSource:
    """Where a ticket modal was opened from, and so where its ticket is announced.

    `nonce` names this one modal (made fresh per opening): the create's idempotency key,
    the same on a retry (`again`), so Bangwo8 drops a ticket the failed try made after all.
    """

    kind: SourceKind
    user_id: str = ""
    team_id: str = ""
    channel_id: str = ""
    message_ts: str = ""
    thread_ts: str = ""
    permalink: str = ""
    response_url: str = ""
    text: str = ""
    nonce: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    attempt: str = "1"
    """Which submission of this modal may create its ticket: the next one after a failure."""

    @classmethod
    def of_message(cls, body: dict[str, Any]) -> TicketSource:
        """A message shortcut's payload: the message, its channel, and its thread."""
        message = body.get("message") or {}
        channel = str((body.get("channel") or {}).get("id", ""))
        team = body.get("team") or {}
        ts = str(message.get("ts", ""))
        thread = str(message.get("thread_ts") or ts)
        return cls(
            kind="message",
            user_id=str((body.get("user") or {}).get("id", "")),
            team_id=str(team.get("id", "")),
            channel_id=channel,
            message_ts=ts,
            thread_ts=thread,
            permalink=permalink(str(team.get("domain", "")), channel, ts, thread),
            response_url=str(body.get("response_url", "")),
            text=plain_text(str(message.get("text", ""))),
        )

    @classmethod
    def of_command(cls, body: dict[str, Any]) -> TicketSource:
        """`/crm ticket` with no arguments: answered through the command's `response_url`."""
        return cls(
            kind="command",
            user_id=str(body.get("user_id", "")),
            team_id=str(body.get("team_id", "")),
            channel_id=str(body.get("channel_id", "")),
            response_url=str(body.get("response_url", "")),
        )

    @classmethod
    def of_shortcut(cls, body: dict[str, Any]) -> TicketSource:
        """The "New ticket" global shortcut: no channel; the modal itself shows the ticket."""
        return cls(
            kind="global",
            user_id=str((body.get("user") or {}).get("id", "")),
            team_id=str((body.get("team") or {}).get("id", "")),
        )

    def again(self) -> TicketSource:
        """This source for the form shown again after a failed create: the next attempt."""
        return replace(self, attempt=str(int(self.attempt) + 1 if self.attempt.isdigit() else 2))

    def metadata(self) -> str:
        """The view's `private_metadata` (Slack keeps up to 3,000 characters; the message
        text is left out: it is in the form)."""
        return json.dumps({k: v for k, v in asdict(self).items() if k != "text" and v})

    @classmethod
    def of_view(cls, view: dict[str, Any]) -> TicketSource:
        """The source a submitted view's `private_metadata` holds (`nonce` "" when it holds
        none: not a modal of ours)."""
        try:
            data = json.loads(str(view.get("private_metadata") or "{}"))
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        known = {k: str(v) for k, v in data.items() if k in _SOURCE_FIELDS - {"kind", "text"}}
        kind: SourceKind = data["kind"] if data.get("kind") in ("message", "command") else "global"
        return cls(kind=kind, **{"nonce": "", **known})


_SOURCE_FIELDS = frozenset(TicketSource.__dataclass_fields__)


def permalink(domain: str, channel: str, ts: str, thread_ts: str) -> str:
    """The message's link as Slack writes it (`/archives/C…/p<ts without the dot>`), made
    here: no `chat.getPermalink` call stands between the shortcut and its modal."""
    if not (domain and channel and ts):
        return ""
    link = f"https://{domain}.slack.com/archives/{channel}/p{ts.replace('.', '')}"
    if thread_ts and thread_ts != ts:
        link += f"?thread_ts={thread_ts}&cid={channel}"
    return link


_ENTITY = re.compile(r"<([^<>|]*)(?:\|([^<>]*))?>")


def plain_text(mrkdwn: str) -> str:
    """A message's text as a person reads it: `<url|label>` as `label (url)`, `<@U1>` as
    `@U1`, `&amp;` `&lt;` `&gt;` as the characters."""

    def shown(found: re.Match[str]) -> str:
        target, label = found[1], found[2] or ""
        if target.startswith(("@", "#")):
            return target[0] + (label.lstrip("@#") or target[1:])
        if target.startswith("!"):
            return label or "@" + target[1:].split("^")[0]
        if not label or label in (target, target.removeprefix("mailto:")):
            return label or target
        return f"{label} ({target})"

    text = _ENTITY.sub(shown, mrkdwn)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def first_line(text: str) -> str:
    """The first line with words in it, cut to a subject's length."""
    line = next((each.strip() for each in text.splitlines() if each.strip()), "")
    return line[:SUBJECT_MAX]


def ticket_modal(
    source: TicketSource, *, values: dict[str, str] | None = None, problem: str = ""
) -> dict[str, Any]:
    """The modal for `views.open`: prefilled from the message when there is one, or with
    `values` (what was typed) when shown again after `problem` (mrkdwn) stopped a create."""
    initial = values or {
        SUBJECT.block_id: first_line(source.text),
        MESSAGE.block_id: source.text[:INPUT_LIMIT],
        DESCRIPTION.block_id: tr("From Slack: {link}", link=source.permalink)
        if source.permalink
        else "",
    }
    body: list[blocks.Block] = [_input(each, initial.get(each.block_id, "")) for each in FIELDS]
    if problem:
        body.insert(0, blocks.section(problem))
    notes = []
    if source.permalink:
        link = "<" + source.permalink + "|" + tr("this message") + ">"
        notes.append(tr("From {link}.", link=link))
    if len(source.text) > INPUT_LIMIT:
        notes.append(
            tr(
                "The message is cut to {limit} characters; the link has it all.",
                limit=format(INPUT_LIMIT, ","),
            )
        )
    if source.kind == "message":
        notes.append(tr("The ticket's id is posted in the message's thread."))
    if notes:
        body.insert(0, blocks.context(" ".join(notes)))
    return {
        "type": "modal",
        "callback_id": TICKET_VIEW,
        "private_metadata": source.metadata(),
        "title": {"type": "plain_text", "text": tr("Create ticket")},
        "submit": {"type": "plain_text", "text": tr("Create")},
        "close": {"type": "plain_text", "text": tr("Cancel")},
        "blocks": body,
    }


async def open_ticket_modal(client: AsyncWebClient, trigger_id: str, source: TicketSource) -> str:
    """Open the modal for `source` (`views.open`, within 3 s of the trigger); its view id."""
    opened = await client.views_open(trigger_id=trigger_id, view=ticket_modal(source))
    return str((opened.get("view") or {}).get("id", ""))


def _input(spec: Field, initial: str) -> blocks.Block:
    element: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": VALUE,
        "multiline": spec.multiline,
        "max_length": spec.max_length,
    }
    if initial:
        element["initial_value"] = initial
    block: blocks.Block = {
        "type": "input",
        "block_id": spec.block_id,
        "optional": spec.optional,
        "label": {"type": "plain_text", "text": tr(spec.label)},
        "element": element,
    }
    if spec.hint:
        block["hint"] = {"type": "plain_text", "text": tr(spec.hint)}
    return block


def status_view(title: str, text: str) -> dict[str, Any]:
    """A modal that only says something (working, created, refused, failed): no submit."""
    return {
        "type": "modal",
        "title": {"type": "plain_text", "text": title},
        "close": {"type": "plain_text", "text": tr("Close")},
        "blocks": [blocks.section(text)],
    }


# --- a submission --------------------------------------------------------------------------


@dataclass(frozen=True)
class TicketForm:
    """A submitted modal: `create_ticket`'s arguments, or the errors to show per block;
    `values` as typed (to show the form again)."""

    arguments: dict[str, Any]
    errors: dict[str, str]
    values: dict[str, str]


def read_submission(view: dict[str, Any]) -> TicketForm:
    """The submitted values as `create_ticket` arguments, checked as `create_ticket` checks
    them (`ticket_to_create`: no network); `errors` maps a block id to what is wrong."""
    values = _values(view)
    errors: dict[str, str] = {}
    cc = _cc_ids(values.get(CC.block_id, ""))
    custom, bad_line = _custom_fields(values.get(CUSTOM.block_id, ""))
    if bad_line:
        errors[CUSTOM.block_id] = bad_line
    arguments: dict[str, Any] = {
        "subject": values.get(SUBJECT.block_id, ""),
        "message": values.get(MESSAGE.block_id, ""),
        "description": values.get(DESCRIPTION.block_id) or None,
        "priority": _code(values, PRIORITY),
        "ticket_type": _code(values, TYPE),
        "servicer_user_id": _code(values, ASSIGNEE),
        "cc_user_ids": cc,
        "custom_fields": custom,
    }
    try:
        ticket_to_create(**arguments)
    except InputError as exc:
        errors = _field_errors(exc.problems) | errors
    return TicketForm(arguments=arguments, errors=errors, values=values)


def _values(view: dict[str, Any]) -> dict[str, str]:
    state = (view.get("state") or {}).get("values") or {}
    found: dict[str, str] = {}
    for block_id, inputs in state.items():
        value = ((inputs or {}).get(VALUE) or {}).get("value")
        if block_id in _BLOCK_IDS and isinstance(value, str):
            found[block_id] = value
    return found


def _code(values: dict[str, str], spec: Field) -> CodeValue | None:
    """An id typed in `spec`'s input; None when it holds only spaces."""
    text = values.get(spec.block_id, "")
    return code_value(text) if text.strip() else None


def _cc_ids(text: str) -> list[CodeValue] | None:
    ids = [code_value(word) for word in re.split(r"[\s,，;；]+", text) if word]
    return [each for each in ids if each is not None] or None


_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def _custom_fields(text: str) -> tuple[dict[str, CustomValue] | None, str]:
    """`key = value` lines → custom fields; the second item says which line is not one."""
    fields: dict[str, CustomValue] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep:
            got = line.strip()[:40]
            return None, tr(
                "line {number}: write `key = value` (got `{got}`)", number=number, got=got
            )
        value = value.strip()
        fields[key.strip()] = _number(value) if _NUMBER.fullmatch(value) else value
    return fields or None, ""


def _number(text: str) -> int | float:
    return float(text) if "." in text else int(text)


def _field_errors(problems: list[Problem]) -> dict[str, str]:
    """Each problem under its block: the first part of its field is the block id
    (`ccUserIdList.1` → `ccUserIdList`, "item 2: …"); anything else goes under the subject."""
    found: dict[str, list[str]] = {}
    for problem in problems:
        head, _, rest = problem.field.partition(".")
        block = head if head in _BLOCK_IDS else SUBJECT.block_id
        where = _where(head, rest) if head in _BLOCK_IDS else f"{problem.field}: "
        found.setdefault(block, []).append(where + problem.message)
    return {block: blocks.cut("; ".join(texts), ERROR_LIMIT) for block, texts in found.items()}


def _where(head: str, rest: str) -> str:
    index = rest.split(".", 1)[0]
    if not index.isdigit():
        return ""
    if head == CUSTOM.block_id:
        return tr("field {number}: ", number=int(index) + 1)
    return tr("id {number}: ", number=int(index) + 1)
