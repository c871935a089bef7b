"""Customer tools: import into SocialEpoch or Xiaolanben, query SocialEpoch by WhatsApp number::

    result = await import_customer(services, vendor="xiaolanben", customers=rows,
                                   actor=Actor("mcp", "Claude Desktop"))
    found = await query_customer(services, whatsapp="8618221733141")

`import_customer` runs the bulk-import engine (`tools.bulk`) on the records in memory: the
same checks, chunking, rate limit, retries and per-row journal as a file import, and an audit
entry naming `actor`. Every record is checked before anything is sent: one bad record stops
the whole call with an `InputError` listing each problem by record index and field.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, Field

from tools.errors import InputError, Problem, VendorError
from tools.i18n import tr
from tools.models import NumberText, RecordOutcome
from tools.services import Services
from tools.storage.audit import Actor
from tools.vendors.socialepoch.models import CustomerRecord, normalize_whatsapp
from tools.vendors.xiaolanben.models import ImportFlags

if TYPE_CHECKING:
    from tools.bulk import BulkImportReport, ImportProgress

ImportVendor = Literal["socialepoch", "xiaolanben"]
ProgressCallback = Callable[[int, int], Awaitable[None]]
"""Called as records settle with (records done, records in total)."""

MAX_IMPORT_RECORDS = 500
MAX_QUERY_NUMBERS = 50
RECORDS_NAME = "import_customer"
"""What the journal and the audit log call an input of records (in place of a file name)."""


class CustomerImport(BaseModel):
    """What an `import_customer` call did (or, with `dry_run`, would do)."""

    vendor: ImportVendor
    dry_run: bool = Field(description="true: validated only, nothing was sent")
    total: int = Field(description="records given")
    batches: int = Field(description="vendor calls made (dry run: that would be made)")
    created: int = 0
    updated: int = 0
    accepted: int = Field(default=0, description="confirmed without saying new or updated")
    failed: int = Field(default=0, description="records the vendor refused")
    not_confirmed: int = Field(
        default=0,
        description="records sent whose answer was lost, or not sent: call again with the "
        "same records to send only these",
    )
    outcomes: list[RecordOutcome] = Field(
        default_factory=list,
        description="one per record sent in this call, in the order given (empty on dry run)",
    )
    would_send: list[dict[str, Any]] = Field(
        default_factory=list,
        description="dry run only: each record exactly as it would be sent, vendor field names",
    )
    stopped_early: str | None = Field(
        default=None,
        description="set when sending stopped after repeated vendor failures: the last error",
    )
    note: str | None = Field(
        default=None,
        description="e.g. that these very records were imported by an earlier call (the "
        "counts include it; nothing was sent again)",
    )


async def import_customer(
    services: Services,
    *,
    vendor: Annotated[
        ImportVendor,
        Field(
            description="Where to import: 'socialepoch' (WhatsApp SCRM, customers keyed by "
            "WhatsApp number) or 'xiaolanben' (B2B CRM, companies with contacts)."
        ),
    ],
    customers: Annotated[
        list[dict[str, Any]],
        Field(
            min_length=1,
            max_length=MAX_IMPORT_RECORDS,
            description=(
                "The customer records, 1 to 500. Field names may be the vendor's own or "
                "snake_case. socialepoch: whatsApp (required: digits with country code, "
                "e.g. 8618221733141), friendName, sex (unknown|male|female), birthday "
                "(yyyy/MM/dd), address, email, profession, income, desc, tabName (tags, "
                "comma-separated or a list), stage, source, languageTag, welcome, "
                "agentAccount, cancelTabName; any other key is sent as a tenant extended "
                "field. xiaolanben: customerName (required, 1-200 chars), entName, staffId "
                "(owner, see list_staff), customerSource, tag, tagIds, customizeField.<id> "
                "keys, contacts (at most 10, each with a phone (the vendor matches contacts "
                "by phone); thirdDataId (default: the phone), name, position, dept, tel, "
                "wechat, qq (each <=30 chars), email, addr, gender 男/女/未知, birthday "
                "yyyy-MM-dd)."
            ),
        ),
    ],
    dry_run: Annotated[
        bool,
        Field(
            description="true: only validate and show what would be sent, without sending. "
            "Use it first when unsure about the data."
        ),
    ] = False,
    xiaolanben_flags: Annotated[
        ImportFlags | None,
        Field(
            description="xiaolanben only, optional: checkKeepLimit, ownerConflictUpdate, "
            "autoUnlock, autoDraw, duplicateControl (SYSTEM, CUSTOMER_PHONE_DUPLICATE_FAIL, "
            "CUSTOMER_PHONE_DUPLICATE_IGNORE). Leave out for the vendor's defaults."
        ),
    ] = None,
    actor: Actor | None = None,
    progress: ProgressCallback | None = None,
) -> CustomerImport:
    """Import (create or update) customers into SocialEpoch or Xiaolanben.

    Every record is validated first; any bad record stops the call before anything is
    sent, listing each problem by record index and field. The records are then sent in
    batches of the vendor's size, and the result has one outcome per record sent: created,
    updated, accepted (the vendor confirmed without saying which) or failed with the
    vendor's reason. Calling again with exactly the same records sends only what is not
    confirmed yet (e.g. after a timeout), never a record twice; to import changed data,
    change the records.
    """
    if xiaolanben_flags is not None and vendor != "xiaolanben":
        raise InputError(
            [Problem("xiaolanben_flags", tr("only for vendor 'xiaolanben'; leave it out"))],
            summary=tr("invalid import options"),
        )
    # The bulk engine (~40 ms to import) loads at the first import, not in every process
    # that lists this tool (`crmops mcp` before `tools/list`, the Slack bot).
    from tools.bulk import Records, RowCallbacks, bulk_import  # noqa: PLC0415 - start-up cost

    seen = _Seen(len(customers), progress)
    try:
        report = await bulk_import(
            services,
            source=Records(RECORDS_NAME, customers),
            vendor=vendor,
            store=None if dry_run else services.store,
            actor=actor or Actor.local_user("library"),
            dry_run=dry_run,
            resume=True,
            xiaolanben_flags=xiaolanben_flags,
            progress=seen.progress,
            rows=RowCallbacks(on_valid=seen.valid, on_outcome=seen.outcome, refuse_invalid=True),
        )
    finally:
        await seen.reported()
    _raise_when_nothing_was_imported(report)
    return _result(report, seen)


@dataclass
class _Seen:
    """What the engine told about each record, and the caller's progress reports."""

    total: int
    on_progress: ProgressCallback | None
    payloads: dict[int, dict[str, Any]] = field(default_factory=dict)
    outcomes: dict[int, RecordOutcome] = field(default_factory=dict)
    _reports: list[asyncio.Future[None]] = field(default_factory=list)

    def valid(self, number: int, payload: dict[str, Any]) -> None:
        self.payloads[number] = payload

    def outcome(self, number: int, outcome: RecordOutcome) -> None:
        self.outcomes[number] = outcome

    def progress(self, state: ImportProgress) -> None:
        if self.on_progress is not None and state.phase == "sending":
            self._reports.append(asyncio.ensure_future(self.on_progress(state.done, self.total)))

    async def reported(self) -> None:
        """Wait for the progress reports (each one a task: the engine's callback is sync)."""
        await asyncio.gather(*self._reports, return_exceptions=True)


def _raise_when_nothing_was_imported(report: BulkImportReport) -> None:
    """A call whose records all went unanswered fails as a whole, with the vendor's error."""
    if report.dry_run or report.last_error is None or report.confirmed or report.failed:
        return
    raise VendorError(
        f"{report.vendor} import_customer: nothing was imported: {report.last_error} The "
        "records are journaled: call again with the same records to send only these.",
        vendor=report.vendor,
        operation="import_customer",
    )


def _result(report: BulkImportReport, seen: _Seen) -> CustomerImport:
    return CustomerImport(
        vendor=report.vendor,
        dry_run=report.dry_run,
        total=seen.total,
        batches=report.requests,
        created=report.created,
        updated=report.updated,
        accepted=report.accepted,
        failed=report.failed,
        not_confirmed=0 if report.dry_run else report.unknown + report.pending,
        outcomes=[seen.outcomes[number] for number in sorted(seen.outcomes)],
        would_send=[seen.payloads[n] for n in sorted(seen.payloads)] if report.dry_run else [],
        stopped_early=report.stopped,
        note=report.note,
    )


class CustomerQuery(BaseModel):
    """SocialEpoch customers found for the numbers asked about."""

    customers: list[CustomerRecord] = Field(description="the customers found")
    not_found: list[str] = Field(description="numbers asked about that match no customer")


async def query_customer(
    services: Services,
    *,
    whatsapp: Annotated[
        NumberText | list[NumberText],
        Field(
            description="One WhatsApp number, or a list of up to 50: digits with the country "
            "code, e.g. 8618221733141 (spaces, dashes and a leading + are removed)."
        ),
    ],
) -> CustomerQuery:
    """Look up SocialEpoch (WhatsApp SCRM) customers by WhatsApp number.

    Returns each customer's record (name, tags, stage, owner agent, extended fields) and
    lists the numbers that match no customer.
    """
    numbers = _valid_numbers([whatsapp] if isinstance(whatsapp, str) else whatsapp)
    records = await services.socialepoch.query_customers(numbers)
    found = {record.whatsapp for record in records}
    return CustomerQuery(
        customers=records, not_found=[number for number in numbers if number not in found]
    )


def _valid_numbers(given: Sequence[str]) -> list[str]:
    problems: list[Problem] = []
    if not 1 <= len(given) <= MAX_QUERY_NUMBERS:
        problems.append(
            Problem(
                "whatsapp",
                tr(
                    "give 1 to {most} numbers (got {count})",
                    most=MAX_QUERY_NUMBERS,
                    count=len(given),
                ),
            )
        )
    numbers: list[str] = []
    for index, value in enumerate(given):
        try:
            number = normalize_whatsapp(value)
        except ValueError as exc:
            problems.append(Problem("whatsapp", str(exc), index if len(given) > 1 else None))
            continue
        if number not in numbers:
            numbers.append(number)
    if problems:
        raise InputError(problems, summary=tr("invalid WhatsApp number(s)"))
    return numbers
