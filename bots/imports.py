"""`/crm import`: a file from a modal, a preview, then the bulk import with progress.

1. `/crm import [vendor]` opens a modal (vendor + a CSV/XLSX file input). The command's
   `response_url` travels in the modal's `private_metadata`: a submission has none.
2. On submit the access rules are checked (the vendor is known only now), the file is
   downloaded with the bot token (scope `files:read`; Slack answers a sign-in page with
   status 200 when the token is missing, so the content type is checked), checked row by
   row (a dry run of `bulk_import`), and a preview — valid rows, rejected rows with
   reasons — is posted with Import / Cancel buttons.
3. Import runs `bulk_import` with the caller as its actor: the engine records the import in
   the audit log, as it does for the CLI and MCP. One message (the preview's) shows
   progress, then the final per-row summary. Rejected rows can be downloaded as a CSV, sent
   to the user's DM.

The file is streamed to disk and refused once it passes `MAX_FILE_BYTES`, into a private
folder (mode 0700, made per process with `tempfile.mkdtemp` unless `workdir` is given);
the preview's confirmation carries the SHA-256 of the bytes it checked, and Import refuses
a file that no longer has it.

A `response_url` takes 5 posts: the start, at most `MAX_PROGRESS_UPDATES` progress posts,
and the summary, leaving one for a failure. The messages are in `bots.import_messages`.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import secrets
import shutil
import tempfile
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
from slack_bolt.async_app import AsyncAck, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bots import auth, blocks
from bots.access import AccessCheck
from bots.commands import SUBCOMMANDS, ImportCommand
from bots.confirmations import Confirmation, ConfirmationFlow
from bots.import_messages import (
    FILE_BLOCK,
    FILE_INPUT,
    FILE_TYPES,
    VENDOR_BLOCK,
    VENDOR_INPUT,
    VENDOR_NAMES,
    import_modal,
    preview_message,
    progress_message,
    summary_message,
)
from bots.replies import Caller, send
from bots.settings import SlackSettings
from tools.bulk import BulkImportReport, ImportProgress, bulk_import
from tools.bulk.columns import BulkVendor
from tools.errors import InputError, Problem
from tools.i18n import marked, tr
from tools.services import Services
from tools.storage.audit import Actor

log = logging.getLogger("crmops.slack")

MAX_FILE_BYTES = 20 * 1024 * 1024
"""The largest import file the bot downloads; the download stops as soon as it is passed."""
DOWNLOAD_CHUNK = 64 * 1024
PRIVATE = 0o700
MAX_PROGRESS_UPDATES = 2


@dataclass(frozen=True)
class Download:
    """A rejected-rows CSV its owner may fetch until `expires_at`."""

    user_id: str
    path: Path
    name: str
    expires_at: float


class ImportFlow:
    """The import modal, preview, run and downloads; `CrmBot` routes `/crm import`, the
    modal's submission, the import's Confirm and the download button to it.

    The journal and the audit log are `services.store`'s.
    """

    CONFIRMATION: ClassVar[str] = "import"
    """The `command` of an import's pending confirmation."""

    def __init__(
        self,
        *,
        settings: SlackSettings,
        services: Services,
        confirmations: ConfirmationFlow,
        access: AccessCheck,
        workdir: Path | None = None,
        progress_interval: float = 2.0,
        download_ttl: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.services = services
        self.confirmations = confirmations
        self.access = access
        self._workdir = workdir
        self.progress_interval = progress_interval
        self.download_ttl = download_ttl
        self.clock = clock
        self.downloads: dict[str, Download] = {}

    @functools.cached_property
    def workdir(self) -> Path:
        """The private folder the files go to, made on first use."""
        return _private_workdir(self, self._workdir)

    # --- 1. the modal -------------------------------------------------------------------------
    async def open(
        self, command: ImportCommand, ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient
    ) -> None:
        """`/crm import [vendor]`: ack, then open the modal (a failure goes to response_url)."""
        await ack()
        try:
            await self.open_modal(command.vendor, body, client)
        except Exception as exc:
            log.warning("could not open the import modal", exc_info=True)
            respond = AsyncRespond(response_url=str(body.get("response_url", "")))
            await send(respond, blocks.failure_message(exc, doing=marked("open the import form")))

    async def open_modal(
        self, vendor: BulkVendor | None, body: dict[str, Any], client: AsyncWebClient
    ) -> None:
        metadata = {
            "response_url": str(body.get("response_url", "")),
            "channel_id": str(body.get("channel_id", "")),
        }
        await client.views_open(
            trigger_id=str(body.get("trigger_id", "")), view=import_modal(vendor, metadata)
        )

    # --- 2. the preview -----------------------------------------------------------------------
    async def submitted(self, ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        """Check the submitted file and post the preview to the command's `response_url`."""
        vendor, file = self.submitted_file(view)
        if vendor is None or file is None:
            errors = {VENDOR_BLOCK: tr("Pick a vendor.")} if vendor is None else {}
            errors |= {FILE_BLOCK: tr("Attach a CSV or XLSX file.")} if file is None else {}
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        metadata = _metadata(view) | _picked_conversation(body)
        caller = Caller(
            user_id=str((body.get("user") or {}).get("id", "")),
            team_id=str((body.get("team") or {}).get("id", "")),
            channel_id=metadata.get("channel_id", ""),
        )
        respond = AsyncRespond(response_url=metadata.get("response_url", ""))
        try:
            await self._preview(vendor, file, caller, respond)
        except Exception as exc:
            if not isinstance(exc, InputError):
                log.warning("could not check the import file", exc_info=True)
            await send(respond, blocks.failure_message(exc, doing=marked("check the file")))

    async def _preview(
        self, vendor: BulkVendor, file: dict[str, Any], caller: Caller, respond: AsyncRespond
    ) -> None:
        refusal = await self.access.refusal(SUBCOMMANDS["import"], caller, vendor=vendor)
        if refusal is not None:
            await send(respond, blocks.notice(f":no_entry: {refusal}"))
            return
        path, sha256 = await self.download(file)
        report, rejected = await self.check(path, vendor)
        payload = {"vendor": vendor, "path": str(path), "file_name": path.name, "sha256": sha256}
        pending = await self.confirmations.ask(
            caller, self.CONFIRMATION, str(respond.response_url), payload
        )
        download = (
            self.offer_download(caller.user_id, rejected, f"rejected-{path.stem}.csv")
            if report.rejected
            else None
        )
        await send(respond, preview_message(report, path.name, pending.id, download))

    @staticmethod
    def submitted_file(view: dict[str, Any]) -> tuple[BulkVendor | None, dict[str, Any] | None]:
        """The vendor and the file object a submitted modal holds (None when missing)."""
        values = (view.get("state") or {}).get("values") or {}
        chosen = ((values.get(VENDOR_BLOCK) or {}).get(VENDOR_INPUT) or {}).get("selected_option")
        vendor = chosen.get("value") if isinstance(chosen, dict) else None
        files = ((values.get(FILE_BLOCK) or {}).get(FILE_INPUT) or {}).get("files") or []
        known: BulkVendor | None = vendor if vendor in VENDOR_NAMES else None
        return known, files[0] if files else None

    async def download(self, file: dict[str, Any]) -> tuple[Path, str]:
        """The uploaded file, saved under its own name (the suffix picks the reader) in a
        folder of its own, and the SHA-256 of its bytes; `InputError` past `MAX_FILE_BYTES`."""
        name = Path(str(file.get("name") or "upload.csv")).name
        if Path(name).suffix.lower().lstrip(".") not in FILE_TYPES:
            raise _file_problem(tr("{name}: give a .csv or .xlsx file", name=name))
        url = str(file.get("url_private_download") or file.get("url_private") or "")
        if urlsplit(url).netloc not in self.settings.file_hosts:
            # The bot token goes only to Slack's own hosts.
            host = urlsplit(url).netloc
            raise _file_problem(tr("the file's URL is not on Slack ({host})", host=host))
        self._sweep()
        folder = self.workdir / secrets.token_hex(8)
        folder.mkdir(mode=PRIVATE)
        path = folder / name
        try:
            return path, await self._fetch(url, path)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    async def _fetch(self, url: str, path: Path) -> str:
        """Stream `url` into `path`, stopping past `MAX_FILE_BYTES`; the bytes' SHA-256."""
        # identity: a compressed answer could unpack far past the limit in one chunk.
        headers = {**auth.bearer_header(self.settings), "Accept-Encoding": "identity"}
        async with (
            httpx.AsyncClient(timeout=30, follow_redirects=True) as http,
            http.stream("GET", url, headers=headers) as response,
        ):
            _check_answer(response, path.name)
            digest, size = hashlib.sha256(), 0
            with path.open("xb") as out:
                async for chunk in response.aiter_bytes(DOWNLOAD_CHUNK):
                    size += len(chunk)
                    if size > MAX_FILE_BYTES:
                        raise _too_big(path.name)
                    digest.update(chunk)
                    out.write(chunk)
        return digest.hexdigest()

    async def check(self, path: Path, vendor: BulkVendor) -> tuple[BulkImportReport, Path]:
        """A dry run: every row checked, nothing sent; the rejected rows as a CSV."""
        rejected = path.with_name("rejected-rows.csv")
        report = await bulk_import(
            self.services,
            source=path,
            vendor=vendor,
            store=None,
            actor=Actor("slack", "preview"),
            dry_run=True,
            rejections_csv=rejected,
        )
        return report, rejected

    def offer_download(self, user_id: str, path: Path, name: str) -> str:
        download_id = secrets.token_urlsafe(16)
        now = self.clock()
        self.downloads = {k: d for k, d in self.downloads.items() if d.expires_at > now}
        self.downloads[download_id] = Download(user_id, path, name, now + self.download_ttl)
        return download_id

    # --- 3. the import --------------------------------------------------------------------------
    async def confirmed(self, pending: Confirmation, respond: AsyncRespond) -> None:
        """Import's Confirm: run it; a failure is posted over the preview."""
        caller = Caller(pending.user_id, pending.team_id, pending.channel_id)
        try:
            await self.run(pending.payload, caller.actor, respond)
        except Exception as exc:
            if not isinstance(exc, InputError):
                log.warning("the import failed", exc_info=True)
            failed = blocks.failure_message(exc, doing=marked("import"))
            await send(respond, failed, replace_original=True)

    async def run(
        self, payload: dict[str, Any], actor: Actor, respond: AsyncRespond
    ) -> BulkImportReport:
        """Import the checked file, posting progress and then the summary to `respond`."""
        path, name = Path(payload["path"]), str(payload["file_name"])
        await _check_unchanged(path, name, str(payload.get("sha256", "")))
        reporter = _ProgressPoster(respond, name, self.progress_interval)
        await _post(respond, blocks.notice(tr("Importing *{file}*…", file=blocks.escape(name))))
        rejected = path.with_name("rejected-rows-final.csv")
        report = await bulk_import(
            self.services,
            source=path,
            vendor=payload["vendor"],
            store=self.services.store,
            actor=actor,
            resume=True,
            progress=reporter,
            rejections_csv=rejected,
        )
        await reporter.drain()
        user_id = actor.name.rsplit("/", 1)[-1]
        download = (
            self.offer_download(user_id, rejected, f"rejected-{path.stem}.csv")
            if report.problems
            else None
        )
        await _post(respond, summary_message(report, name, download))
        return report

    async def download_pressed(
        self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        """The download button: DM the rejected rows, or say why not."""
        await ack()
        try:
            caller = Caller.of_interaction(body)
            download_id = str(((body.get("actions") or [{}])[0]).get("value", ""))
            refusal = await self.send_download(download_id, caller.user_id, client)
            text = refusal or tr("Sent you the rejected rows as a CSV in a direct message.")
            await send(respond, blocks.notice(text), replace_original=False)
        except Exception as exc:
            log.warning("could not send the rejected rows", exc_info=True)
            failed = blocks.failure_message(exc, doing=marked("send the rejected rows"))
            await send(respond, failed)

    async def send_download(
        self, download_id: str, user_id: str, client: AsyncWebClient
    ) -> str | None:
        """DM the rejected-rows CSV to its owner; None when done, else why not."""
        download = self.downloads.get(download_id)
        if download is None or download.expires_at <= self.clock():
            return tr("This download has expired; run the import again to get the rows.")
        if download.user_id != user_id:
            return tr("Only {owner} can download these rows.", owner="<@" + download.user_id + ">")
        opened = await client.conversations_open(users=user_id)
        channel = str((opened.get("channel") or {}).get("id", ""))
        await client.files_upload_v2(
            channel=channel,
            file=str(download.path),
            filename=download.name,
            title=download.name,
            initial_comment=tr("The rows that were not imported, with the reason for each."),
        )
        return None

    def _sweep(self) -> None:
        """Delete the files of imports older than a download lasts (they hold customer data)."""
        if not self.workdir.is_dir():
            return
        oldest = time.time() - self.download_ttl
        for folder in self.workdir.iterdir():
            if folder.is_dir() and folder.stat().st_mtime < oldest:
                shutil.rmtree(folder, ignore_errors=True)


def _metadata(view: dict[str, Any]) -> dict[str, str]:
    try:
        data = json.loads(str(view.get("private_metadata") or "{}"))
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _picked_conversation(body: dict[str, Any]) -> dict[str, str]:
    """The conversation a modal opened by a shortcut was told to post in (`response_urls`
    of its `response_url_enabled` select); nothing when it was opened by `/crm import`."""
    for each in body.get("response_urls") or []:
        if isinstance(each, dict) and each.get("response_url"):
            return {
                "response_url": str(each["response_url"]),
                "channel_id": str(each.get("channel_id", "")),
            }
    return {}


def _private_workdir(flow: ImportFlow, workdir: Path | None) -> Path:
    """`workdir` made private, or a fresh private folder deleted when `flow` is."""
    if workdir is not None:
        workdir.mkdir(mode=PRIVATE, parents=True, exist_ok=True)
        return workdir
    # mkdtemp: an unguessable name, mode 0700, created by us (never one another user made).
    made = Path(tempfile.mkdtemp(prefix="crmops-slack-"))
    weakref.finalize(flow, shutil.rmtree, made, ignore_errors=True)
    return made


def _check_answer(response: httpx.Response, name: str) -> None:
    content_type = response.headers.get("content-type", "")
    if response.status_code != 200 or content_type.startswith("text/html"):
        # Slack answers a missing or wrong token with its sign-in page and status 200.
        raise _file_problem(
            tr(
                "Slack did not hand out the file (it sent a web page): check that "
                "SLACK_BOT_TOKEN is right and the app has the files:read scope"
            )
        )
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_FILE_BYTES:
        raise _too_big(name)


def _too_big(name: str) -> InputError:
    return _file_problem(
        tr(
            "{name} is over {size} MB: split it into smaller files",
            name=name,
            size=MAX_FILE_BYTES // (1024 * 1024),
        )
    )


async def _check_unchanged(path: Path, name: str, sha256: str) -> None:
    """Refuse to import anything but the bytes the preview checked."""
    try:
        now = await asyncio.to_thread(_sha256_of, path)
    except FileNotFoundError:
        now = ""
    if not sha256 or now != sha256:
        raise _file_problem(
            tr(
                "{name} is no longer the file that was previewed (it changed or is gone), "
                "so nothing was imported: run /crm import again",
                name=name,
            )
        )


def _sha256_of(path: Path) -> str:
    with path.open("rb") as source:
        return hashlib.file_digest(source, "sha256").hexdigest()


def _file_problem(message: str) -> InputError:
    return InputError([Problem("file", message)], summary=tr("cannot use this file"))


async def _post(respond: AsyncRespond, answer: blocks.Message) -> None:
    try:
        await respond(**answer, replace_original=True)
    except Exception:
        log.exception("could not post the import's progress")


class _ProgressPoster:
    """The engine's (synchronous) progress callback: posts at most a few updates, in order."""

    def __init__(self, respond: AsyncRespond, file_name: str, interval: float) -> None:
        self._respond = respond
        self._file_name = file_name
        self._interval = interval
        self._last = time.monotonic()
        self._posted = 0
        self._chain: asyncio.Task[None] | None = None

    def __call__(self, progress: ImportProgress) -> None:
        now = time.monotonic()
        if progress.phase != "sending" or progress.total == 0:
            return
        if self._posted >= MAX_PROGRESS_UPDATES or now - self._last < self._interval:
            return
        self._posted += 1
        self._last = now
        previous = self._chain
        message = progress_message(progress, self._file_name)
        self._chain = asyncio.get_running_loop().create_task(self._after(previous, message))

    async def _after(self, previous: asyncio.Task[None] | None, message: blocks.Message) -> None:
        if previous is not None:
            await previous
        await _post(self._respond, message)

    async def drain(self) -> None:
        """Wait for the progress posts still in flight (before the summary replaces them)."""
        if self._chain is not None:
            await self._chain
