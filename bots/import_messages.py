"""What `/crm import` shows: the modal, the preview, progress and the summary (Block Kit).

    view = import_modal("xiaolanben", {"response_url": url, "channel_id": "C1"})
    message = preview_message(report, "customers.csv", confirmation_id, download_id)

The ids (`IMPORT_VIEW`, `DOWNLOAD_ACTION`, the blocks and inputs) are what the flow in
`bots.imports` listens for and reads back.
"""

from __future__ import annotations

import json
from typing import Any

from bots import blocks
from tools.bulk import BulkImportReport, ImportProgress
from tools.bulk.columns import BulkVendor
from tools.i18n import marked, tr

IMPORT_VIEW = "crm_import"
DOWNLOAD_ACTION = "crm_rejected_csv"
VENDOR_BLOCK, VENDOR_INPUT = "vendor", "vendor_select"
FILE_BLOCK, FILE_INPUT = "file", "file_input"
POST_IN_BLOCK, POST_IN_INPUT = "post_in", "post_in_select"
FILE_TYPES = ("csv", "xlsx")
MAX_SHOWN_PROBLEMS = 15
VENDOR_NAMES: dict[BulkVendor, str] = {
    "socialepoch": marked("SocialEpoch (WhatsApp SCRM)"),
    "xiaolanben": marked("Xiaolanben 小蓝本 (B2B CRM)"),
}
"""Each vendor's name as shown (translate with `tr`, or use `vendor_name`)."""


def vendor_name(vendor: str) -> str:
    """`vendor` as a person reads it, in the current language (unknown: as it is)."""
    known = VENDOR_NAMES.get(vendor)  # type: ignore[call-overload]
    return tr(known) if known else vendor


def import_modal(vendor: BulkVendor | None, metadata: dict[str, str]) -> dict[str, Any]:
    options = [
        {"text": {"type": "plain_text", "text": tr(label)}, "value": value}
        for value, label in VENDOR_NAMES.items()
    ]
    select: dict[str, Any] = {
        "type": "static_select",
        "action_id": VENDOR_INPUT,
        "options": options,
    }
    if vendor is not None:
        select["initial_option"] = next(each for each in options if each["value"] == vendor)
    return {
        "type": "modal",
        "callback_id": IMPORT_VIEW,
        "private_metadata": json.dumps(metadata),
        "title": {"type": "plain_text", "text": tr("Import customers")},
        "submit": {"type": "plain_text", "text": tr("Check file")},
        "close": {"type": "plain_text", "text": tr("Cancel")},
        "blocks": [
            {
                "type": "input",
                "block_id": VENDOR_BLOCK,
                "label": {"type": "plain_text", "text": tr("Import into")},
                "element": select,
            },
            {
                "type": "input",
                "block_id": FILE_BLOCK,
                "label": {"type": "plain_text", "text": tr("Customers file (CSV or XLSX)")},
                "element": {
                    "type": "file_input",
                    "action_id": FILE_INPUT,
                    "filetypes": list(FILE_TYPES),
                    "max_files": 1,
                },
            },
            *([] if metadata.get("response_url") else [_post_in_block()]),
            blocks.context(tr("Nothing is imported until you press Import on the preview.")),
        ],
    }


def _post_in_block() -> dict[str, Any]:
    """Where to post the preview, for a modal opened with no command (a global shortcut):
    Slack hands the submission a `response_url` for the conversation picked."""
    return {
        "type": "input",
        "block_id": POST_IN_BLOCK,
        "label": {"type": "plain_text", "text": tr("Post the preview and progress in")},
        "element": {
            "type": "conversations_select",
            "action_id": POST_IN_INPUT,
            "response_url_enabled": True,
            "default_to_current_conversation": True,
        },
    }


def _problem_lines(report: BulkImportReport) -> str:
    lines = [
        tr("row {row}: ", row=p.row)
        + f"{blocks.escape(p.field + ': ' if p.field else '')}{blocks.escape(p.reason)}"
        for p in report.problems[:MAX_SHOWN_PROBLEMS]
    ]
    hidden = (report.rejected + report.failed) - len(lines)
    if hidden > 0:
        lines.append(tr("… and {count} more (download the CSV)", count=hidden))
    return "\n".join(lines)


def preview_message(
    report: BulkImportReport, file_name: str, confirmation_id: str, download_id: str | None
) -> blocks.Message:
    head = tr(
        "*{file}* → {vendor}: {valid} valid row(s), {rejected} rejected of {read}.",
        file=blocks.escape(file_name),
        vendor=vendor_name(report.vendor),
        valid=report.valid,
        rejected=report.rejected,
        read=report.rows_read,
    )
    body = [blocks.section(head)]
    if report.rejected:
        rejected = tr("*Rejected (not imported):*")
        body.append(blocks.section(f"{rejected}\n" + _problem_lines(report)))
    buttons = [blocks.button(tr("Cancel"), blocks.CANCEL_ACTION, confirmation_id)]
    if report.valid:
        buttons.insert(
            0,
            blocks.button(
                tr("Import {count} row(s)", count=report.valid),
                blocks.CONFIRM_ACTION,
                confirmation_id,
                "primary",
            ),
        )
    if download_id is not None:
        buttons.append(
            blocks.button(tr("Download rejected rows (CSV)"), DOWNLOAD_ACTION, download_id)
        )
    body.append({"type": "actions", "elements": buttons})
    return blocks.message(head, body)


def progress_message(progress: ImportProgress, file_name: str) -> blocks.Message:
    return blocks.notice(
        ":hourglass_flowing_sand: "
        + tr(
            "Importing *{file}*: {done} of {total} row(s) done, {failed} refused.",
            file=blocks.escape(file_name),
            done=progress.done,
            total=progress.total,
            failed=progress.failed,
        )
    )


def summary_message(
    report: BulkImportReport, file_name: str, download_id: str | None
) -> blocks.Message:
    icon = ":white_check_mark:" if report.status == "ok" else ":warning:"
    head = f"{icon} " + tr(
        "Imported *{file}* into {vendor}: {created} created, {updated} updated, "
        "{accepted} accepted, {failed} refused by the vendor, {rejected} rejected before sending.",
        file=blocks.escape(file_name),
        vendor=vendor_name(report.vendor),
        created=report.created,
        updated=report.updated,
        accepted=report.accepted,
        failed=report.failed,
        rejected=report.rejected,
    )
    body = [blocks.section(head)]
    if report.unknown or report.pending:
        unsettled = report.unknown + report.pending
        why = (
            tr(
                "{count} row(s) were not settled: {reason}.",
                count=unsettled,
                reason=blocks.escape(report.stopped),
            )
            if report.stopped
            else tr("{count} row(s) were not settled.", count=unsettled)
        )
        body.append(blocks.section(why + " " + tr("Run the same import again to send only those.")))
    if report.problems:
        body.append(blocks.section(tr("*Not imported:*") + "\n" + _problem_lines(report)))
    if download_id is not None:
        body.append(
            {
                "type": "actions",
                "elements": [
                    blocks.button(tr("Download rejected rows (CSV)"), DOWNLOAD_ACTION, download_id)
                ],
            }
        )
    return blocks.message(head, body)
