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

IMPORT_VIEW = "crm_import"
DOWNLOAD_ACTION = "crm_rejected_csv"
VENDOR_BLOCK, VENDOR_INPUT = "vendor", "vendor_select"
FILE_BLOCK, FILE_INPUT = "file", "file_input"
FILE_TYPES = ("csv", "xlsx")
MAX_SHOWN_PROBLEMS = 15
VENDOR_NAMES: dict[BulkVendor, str] = {
    "socialepoch": "SocialEpoch (WhatsApp SCRM)",
    "xiaolanben": "Xiaolanben 小蓝本 (B2B CRM)",
}


def import_modal(vendor: BulkVendor | None, metadata: dict[str, str]) -> dict[str, Any]:
    options = [
        {"text": {"type": "plain_text", "text": label}, "value": value}
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
        "title": {"type": "plain_text", "text": "Import customers"},
        "submit": {"type": "plain_text", "text": "Check file"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": VENDOR_BLOCK,
                "label": {"type": "plain_text", "text": "Import into"},
                "element": select,
            },
            {
                "type": "input",
                "block_id": FILE_BLOCK,
                "label": {"type": "plain_text", "text": "Customers file (CSV or XLSX)"},
                "element": {
                    "type": "file_input",
                    "action_id": FILE_INPUT,
                    "filetypes": list(FILE_TYPES),
                    "max_files": 1,
                },
            },
            blocks.context("Nothing is imported until you press Import on the preview."),
        ],
    }


def _problem_lines(report: BulkImportReport) -> str:
    lines = [
        f"row {p.row}: {blocks.escape(p.field + ': ' if p.field else '')}{blocks.escape(p.reason)}"
        for p in report.problems[:MAX_SHOWN_PROBLEMS]
    ]
    hidden = (report.rejected + report.failed) - len(lines)
    if hidden > 0:
        lines.append(f"… and {hidden} more (download the CSV)")
    return "\n".join(lines)


def preview_message(
    report: BulkImportReport, file_name: str, confirmation_id: str, download_id: str | None
) -> blocks.Message:
    head = (
        f"*{blocks.escape(file_name)}* → {VENDOR_NAMES[report.vendor]}: "
        f"{report.valid} valid row(s), {report.rejected} rejected of {report.rows_read}."
    )
    body = [blocks.section(head)]
    if report.rejected:
        body.append(blocks.section("*Rejected (not imported):*\n" + _problem_lines(report)))
    buttons = [blocks.button("Cancel", blocks.CANCEL_ACTION, confirmation_id)]
    if report.valid:
        buttons.insert(
            0,
            blocks.button(
                f"Import {report.valid} row(s)", blocks.CONFIRM_ACTION, confirmation_id, "primary"
            ),
        )
    if download_id is not None:
        buttons.append(blocks.button("Download rejected rows (CSV)", DOWNLOAD_ACTION, download_id))
    body.append({"type": "actions", "elements": buttons})
    return blocks.message(head, body)


def progress_message(progress: ImportProgress, file_name: str) -> blocks.Message:
    return blocks.notice(
        f":hourglass_flowing_sand: Importing *{blocks.escape(file_name)}*: "
        f"{progress.done} of {progress.total} row(s) done, {progress.failed} refused."
    )


def summary_message(
    report: BulkImportReport, file_name: str, download_id: str | None
) -> blocks.Message:
    icon = ":white_check_mark:" if report.status == "ok" else ":warning:"
    head = (
        f"{icon} Imported *{blocks.escape(file_name)}* into {VENDOR_NAMES[report.vendor]}: "
        f"{report.created} created, {report.updated} updated, {report.accepted} accepted, "
        f"{report.failed} refused by the vendor, {report.rejected} rejected before sending."
    )
    body = [blocks.section(head)]
    if report.unknown or report.pending:
        body.append(
            blocks.section(
                f"{report.unknown + report.pending} row(s) were not settled"
                f"{': ' + blocks.escape(report.stopped) if report.stopped else ''}. "
                "Run the same import again to send only those."
            )
        )
    if report.problems:
        body.append(blocks.section("*Not imported:*\n" + _problem_lines(report)))
    if download_id is not None:
        body.append(
            {
                "type": "actions",
                "elements": [
                    blocks.button("Download rejected rows (CSV)", DOWNLOAD_ACTION, download_id)
                ],
            }
        )
    return blocks.message(head, body)
