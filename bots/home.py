"""App Home: what the viewing user has in flight, and buttons for the common actions.

    home = HomeFlow(services, access_check, import_flow, admins=frozenset({"U0ADMIN"}))
    await home.opened(event, body, client)      # app_home_opened → views.publish
    await home.pressed(body, client)            # its buttons (action ids `HOME_ACTIONS`)
    await home.import_confirmed(pending, respond)   # an import's Confirm: run it, tracked

The tab shows the user's recent imports (file, vendor, status, rows sent and failed, a
Resume button for an interrupted one), their recent tickets made through crmops, and New
ticket / Import customers buttons. Everything comes from the audit log (who ran which
import, who created which ticket: `bulk_import` and `create_ticket` entries) and the import
journal (where each import stands now: `find_import` + `counts`); imports running in this
process are known before their first audit entry. A user sees only their own; an admin
(`CRMOPS_SLACK_ADMIN_USERS`) sees everyone's.

Resume re-runs the import with `resume=True`, the way `/crm import` resumes a file sent
again: only the rows not yet confirmed go out. It needs the file the preview checked, which
the bot keeps (privately, for `ImportFlow.download_ttl`) on the server that checked it;
when it is gone, the user is told to give `/crm import` the same file. Progress and the
summary of a resumed import arrive as a direct message from the app (an App Home button has
no `response_url`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.webhook_response import WebhookResponse

from bots import blocks
from bots.access import AccessCheck
from bots.browse import slack_channel_of, slack_user_of, when
from bots.commands import SUBCOMMANDS
from bots.confirmations import Confirmation
from bots.import_messages import vendor_name
from bots.imports import ImportFlow
from bots.locale import adopt_user_language
from bots.replies import Caller
from bots.ticket_modal import TicketSource
from tools.bulk.planning import fingerprint
from tools.bulk.targets import import_target
from tools.i18n import marked, tr
from tools.services import Services
from tools.storage.audit import AuditEntry
from tools.storage.journal import ImportKey

if TYPE_CHECKING:
    from bots.shortcuts import TicketModalFlow

log = logging.getLogger("crmops.slack")

HOME_ACTIONS = re.compile(r"^crm_home_")
"""Every App Home button's action id starts so (bolt routes them to `HomeFlow.pressed`)."""
RESUME_ACTION = "crm_home_resume"
NEW_TICKET_ACTION = "crm_home_new_ticket"
IMPORT_ACTION = "crm_home_import"
SHOWN = 5
"""Imports and tickets the tab shows, newest first."""
AUDIT_SCAN = 500
"""Audit log entries read to find them (the latest writes of everyone)."""
STATUSES = {
    "running": marked("running"),
    "done": marked("done"),
    "interrupted": marked("interrupted"),
}
"""An import's status as the tab shows it (translated with `tr`)."""
_LABEL_TAIL = re.compile(r" \(import [0-9]+, run [0-9]+\)$")


@dataclass(frozen=True)
class ImportRef:
    """One import as the tab knows it: which file into which vendor, whose, and where."""

    vendor: str
    fingerprint: str
    file_name: str
    user_id: str
    team_id: str
    channel_id: str
    at: float

    @property
    def key(self) -> tuple[str, str]:
        return (self.vendor, self.fingerprint)

    @property
    def caller(self) -> Caller:
        return Caller(self.user_id, self.team_id, self.channel_id)


@dataclass(frozen=True)
class ImportState:
    """Where an import stands in the journal: `running` (here, now), `done` or `interrupted`."""

    ref: ImportRef
    status: str
    sent: int = 0
    failed: int = 0
    left: int = 0
    valid: int = 0


@dataclass(frozen=True)
class TicketRef:
    ticket: str
    subject: str
    user_id: str
    at: float


class DirectMessage(AsyncRespond):
    """Posts what a flow would post to a `response_url` as a direct message from the app:
    the first post is a new message, a later one with `replace_original` updates it."""

    def __init__(self, client: AsyncWebClient, user_id: str) -> None:
        super().__init__(response_url=None)
        self._client = client
        self._user_id = user_id
        self._channel = ""
        self._ts = ""

    async def __call__(self, *args: Any, **kwargs: Any) -> WebhookResponse:
        text = str(kwargs.get("text", args[0] if args else ""))
        shown = kwargs.get("blocks")
        if kwargs.get("replace_original") and self._ts:
            await self._client.chat_update(
                channel=self._channel, ts=self._ts, text=text, blocks=shown
            )
        else:
            # A user id as the channel: the app's direct messages with that user.
            posted = await self._client.chat_postMessage(
                channel=self._user_id, text=text, blocks=shown
            )
            self._channel, self._ts = str(posted.get("channel", "")), str(posted.get("ts", ""))
        return WebhookResponse(url="", status_code=200, body="ok", headers={})


class HomeFlow:
    """The App Home tab of each user, and its buttons."""

    def __init__(
        self,
        services: Services,
        access: AccessCheck,
        imports: ImportFlow,
        *,
        admins: frozenset[str] = frozenset(),
    ) -> None:
        self.services = services
        self.access = access
        self.imports = imports
        self.admins = admins
        self.ticket_modal: TicketModalFlow | None = None
        """The ticket modal's flow (`bots.shortcuts`), for the New ticket button."""
        self._files: dict[tuple[str, str], tuple[ImportRef, dict[str, Any]]] = {}
        self._running: set[tuple[str, str]] = set()

    # --- the tab ---------------------------------------------------------------------------
    async def opened(
        self, event: dict[str, Any], body: dict[str, Any], client: AsyncWebClient
    ) -> None:
        """`app_home_opened` on the Home tab: publish the user's view."""
        if event.get("tab", "home") != "home":
            return  # the Messages tab
        await adopt_user_language()  # an event is acked before its listener: look it up now
        await self.publish(str(event.get("user", "")), client)

    async def publish(self, user_id: str, client: AsyncWebClient, notice: str = "") -> None:
        """Publish `user_id`'s tab (with `notice` on top); a failure is logged."""
        try:
            view = await self.view(user_id, notice)
            await client.views_publish(user_id=user_id, view=view)
        except Exception:
            log.exception("could not publish the App Home of %s", user_id)

    async def view(self, user_id: str, notice: str = "") -> dict[str, Any]:
        """The Home tab `user_id` sees."""
        admin = user_id in self.admins
        entries = await self.services.store.audit.recent(AUDIT_SCAN)
        mine = [e for e in entries if admin or slack_user_of(e.actor) == user_id]
        states = [await self._state(ref) for ref in self._imports(mine, user_id, admin)]
        tickets = _tickets(mine)
        return home_view(states, tickets, admin=admin, notice=notice)

    def _imports(self, entries: list[AuditEntry], user_id: str, admin: bool) -> list[ImportRef]:
        """The latest imports of the entries, and those this process runs or ran."""
        found: dict[tuple[str, str], ImportRef] = {}
        for ref, _ in self._files.values():
            if admin or ref.user_id == user_id:
                found[ref.key] = ref
        for entry in entries:
            run = _import_of(entry)
            if run is not None and (run.key not in found or found[run.key].at < run.at):
                found[run.key] = run
        return sorted(found.values(), key=lambda ref: ref.at, reverse=True)[:SHOWN]

    async def _state(self, ref: ImportRef) -> ImportState:
        tenant = import_target(self.services, ref.vendor).tenant()  # type: ignore[arg-type]
        record = await self.services.store.journal.find_import(
            ImportKey(ref.vendor, tenant, ref.fingerprint)
        )
        running = ref.key in self._running
        if record is None:
            return ImportState(ref, "running" if running else "interrupted")
        counts = await self.services.store.journal.counts(record.id)
        left = counts.pending + counts.sent
        status = "running" if running else "done" if left == 0 and record.planned else "interrupted"
        return ImportState(
            ref,
            status,
            sent=counts.settled,
            failed=counts.failed,
            left=left,
            valid=counts.valid,
        )

    # --- buttons ---------------------------------------------------------------------------
    async def pressed(self, body: dict[str, Any], client: AsyncWebClient) -> None:
        """A Home button (already acked): New ticket, Import customers, Resume."""
        action = (body.get("actions") or [{}])[0]
        action_id = str(action.get("action_id", ""))
        caller = Caller.of_interaction(body)
        trigger_id = str(body.get("trigger_id", ""))
        try:
            if action_id == NEW_TICKET_ACTION and self.ticket_modal is not None:
                await self.ticket_modal.open(TicketSource.of_shortcut(body), trigger_id, client)
            elif action_id == IMPORT_ACTION:
                await self.imports.open_modal(None, body, client)
            elif action_id == RESUME_ACTION:
                await self.resume(caller, str(action.get("value", "")), client)
        except Exception as exc:
            log.exception("the App Home button %s failed", action_id)
            text = blocks.failure_message(exc, doing=marked("do this"))["text"]
            await self.publish(caller.user_id, client, text)

    async def resume(self, caller: Caller, value: str, client: AsyncWebClient) -> None:
        """Resume the import a Resume button names, as its owner (or an admin)."""
        ref = await self._resumable(caller, value)
        if isinstance(ref, str):
            await self.publish(caller.user_id, client, ref)
            return
        if ref.key in self._running:
            await self.publish(caller.user_id, client, tr("This import is running already."))
            return
        # Checked where the import was run: a rule may name the channels imports are for.
        where = replace(ref.caller, user_id=caller.user_id)
        refusal = await self.access.refusal(SUBCOMMANDS["import"], where, vendor=ref.vendor)
        if refusal is not None:
            await self.publish(caller.user_id, client, f":no_entry: {refusal}")
            return
        file = self._files.get(ref.key)
        if file is None:
            await self.publish(caller.user_id, client, _file_gone(ref.file_name))
            return
        self._running.add(ref.key)
        try:
            await self.publish(
                caller.user_id, client, tr("Resuming *{file}*…", file=blocks.escape(ref.file_name))
            )
            respond = DirectMessage(client, caller.user_id)
            try:
                await self.imports.run(file[1], where.actor, respond)
            except Exception as exc:
                log.warning("the resumed import failed", exc_info=True)
                await respond(**blocks.failure_message(exc, doing=marked("resume the import")))
        finally:
            self._running.discard(ref.key)
        await self.publish(caller.user_id, client)

    async def _resumable(self, caller: Caller, value: str) -> ImportRef | str:
        """The import a Resume `value` names when `caller` may resume it, else why not."""
        try:
            data = json.loads(value)
            key = (str(data["vendor"]), str(data["fingerprint"]))
        except (ValueError, KeyError, TypeError):
            return tr("This button is not one of ours.")
        admin = caller.user_id in self.admins
        entries = await self.services.store.audit.recent(AUDIT_SCAN)
        refs = [ref for ref in self._imports(entries, caller.user_id, admin) if ref.key == key]
        known = [ref for ref, _ in self._files.values() if ref.key == key]
        ref = next(iter(refs or known), None)
        if ref is None or not (admin or ref.user_id == caller.user_id):
            return tr("Only the person who ran this import (or an admin) can resume it.")
        return ref

    # --- an import's Confirm ---------------------------------------------------------------
    async def import_confirmed(self, pending: Confirmation, respond: AsyncRespond) -> None:
        """Run a confirmed import (`ImportFlow.confirmed`), remembering its file so the
        Home tab can show it running and resume it if it is interrupted."""
        ref = await self._remember(pending)
        if ref is not None:
            self._running.add(ref.key)
        try:
            await self.imports.confirmed(pending, respond)
        finally:
            if ref is not None:
                self._running.discard(ref.key)

    async def _remember(self, pending: Confirmation) -> ImportRef | None:
        payload = pending.payload
        vendor = str(payload.get("vendor", ""))
        try:
            # The engine's fingerprint of a file sent without a column mapping (as here).
            printed = await asyncio.to_thread(fingerprint, Path(payload["path"]), vendor, {}, None)
        except Exception:
            log.warning("could not fingerprint the import's file", exc_info=True)
            return None
        ref = ImportRef(
            vendor=vendor,
            fingerprint=printed,
            file_name=str(payload.get("file_name", "")),
            user_id=pending.user_id,
            team_id=pending.team_id,
            channel_id=pending.channel_id,
            at=time.time(),
        )
        self._files[ref.key] = (ref, dict(payload))
        return ref


def _import_of(entry: AuditEntry) -> ImportRef | None:
    """The import a `bulk_import` entry (one run's summary) is of."""
    printed = entry.sent.get("fingerprint") if entry.operation == "bulk_import" else None
    user = slack_user_of(entry.actor) or ""
    if not isinstance(printed, str) or not printed:
        return None
    team = entry.actor.name.split("/", 1)[0] if user else ""
    return ImportRef(
        vendor=entry.vendor,
        fingerprint=printed,
        file_name=_LABEL_TAIL.sub("", entry.target),
        user_id=user,
        team_id=team,
        channel_id=slack_channel_of(entry.actor),
        at=entry.at,
    )


def _tickets(entries: list[AuditEntry]) -> list[TicketRef]:
    made = [e for e in entries if e.operation == "create_ticket" and e.outcome == "ok"]
    return [
        TicketRef(
            ticket=entry.target.removeprefix("ticket ").strip(),
            subject=str(entry.sent.get("subject", "")),
            user_id=slack_user_of(entry.actor) or "",
            at=entry.at,
        )
        for entry in made[:SHOWN]
    ]


def _file_gone(name: str) -> str:
    return tr(
        "The file *{file}* is no longer kept by crmops (files are kept for an "
        "hour, on the server that checked them). Run `/crm import` with the same file: only "
        "the rows not yet imported are sent.",
        file=blocks.escape(name),
    )


# --- the view -------------------------------------------------------------------------------


def home_view(
    imports: list[ImportState], tickets: list[TicketRef], *, admin: bool, notice: str = ""
) -> dict[str, Any]:
    """The Home tab: actions, then imports and tickets (everyone's for an admin)."""
    shown: list[blocks.Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": "crmops"}},
        {
            "type": "actions",
            "elements": [
                blocks.button(tr("New ticket"), NEW_TICKET_ACTION, "new", "primary"),
                blocks.button(tr("Import customers"), IMPORT_ACTION, "import"),
            ],
        },
    ]
    if notice:
        shown.append(blocks.section(notice))
    imports_head = tr("*Everyone's recent imports*") if admin else tr("*Your recent imports*")
    shown += [{"type": "divider"}, blocks.section(imports_head)]
    shown += [_import_block(state, admin=admin) for state in imports] or [
        blocks.context(tr("No imports yet: `/crm import`, or Import customers above."))
    ]
    tickets_head = (
        tr("*Everyone's recent tickets made in crmops*")
        if admin
        else tr("*Your recent tickets made in crmops*")
    )
    shown += [{"type": "divider"}, blocks.section(tickets_head)]
    lines = [_ticket_line(ticket, admin=admin) for ticket in tickets]
    shown.append(
        blocks.section("\n".join(lines))
        if lines
        else blocks.context(tr("No tickets yet: New ticket above, or `/crm ticket`."))
    )
    return {"type": "home", "blocks": shown}


def _import_block(state: ImportState, *, admin: bool) -> blocks.Block:
    ref = state.ref
    vendor = vendor_name(ref.vendor)
    by = tr(" by {user}", user="<@" + ref.user_id + ">") if admin and ref.user_id else ""
    figures = tr(
        "{sent} of {valid} rows sent · {failed} failed",
        sent=state.sent,
        valid=state.valid,
        failed=state.failed,
    )
    if state.status == "interrupted":
        figures += " · " + tr("{left} not sent yet", left=state.left)
    status = tr(STATUSES.get(state.status, state.status))
    text = (
        f"*{blocks.escape(ref.file_name)}* → {blocks.escape(vendor)} · *{status}*\n"
        f"{figures} · {when(ref.at)}{by}"
    )
    block = blocks.section(text)
    if state.status == "interrupted":
        value = json.dumps({"vendor": ref.vendor, "fingerprint": ref.fingerprint})
        block["accessory"] = blocks.button(tr("Resume"), RESUME_ACTION, value, "primary")
    return block


def _ticket_line(ticket: TicketRef, *, admin: bool) -> str:
    by = tr(" by {user}", user="<@" + ticket.user_id + ">") if admin and ticket.user_id else ""
    subject = blocks.escape(blocks.cut(ticket.subject, 150))
    return f"`#{blocks.escape(ticket.ticket)}` {subject} · {when(ticket.at)}{by}"
