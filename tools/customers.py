"""Customer tools: import into SocialEpoch or Xiaolanben, query SocialEpoch by WhatsApp number::

    result = await import_customer(services, vendor="xiaolanben", customers=rows)
    found = await query_customer(services, whatsapp="8618221733141")

Every record is checked before anything is sent: one bad record stops the whole call with an
`InputError` listing each problem by record index and field.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, Field

from tools.errors import InputError, Problem, VendorError
from tools.models import RecordOutcome
from tools.services import Services
from tools.settings import SocialEpochSettings
from tools.vendors.socialepoch import CustomerRecord, SocialEpochClient, SocialEpochCustomer
from tools.vendors.socialepoch import validate_customers as validate_socialepoch
from tools.vendors.socialepoch.models import normalize_whatsapp
from tools.vendors.xiaolanben import ImportFlags, XiaolanbenClient, XiaolanbenCustomer
from tools.vendors.xiaolanben import validate_customers as validate_xiaolanben

ImportVendor = Literal["socialepoch", "xiaolanben"]
R = TypeVar("R")
ProgressCallback = Callable[[int, int], Awaitable[None]]
"""Called after each batch with (records done, records in total)."""

MAX_IMPORT_RECORDS = 500
MAX_QUERY_NUMBERS = 50


class CustomerImport(BaseModel):
    """What an `import_customer` call did (or, with `dry_run`, would do)."""

    vendor: ImportVendor
    dry_run: bool = Field(description="true: validated only, nothing was sent")
    total: int = Field(description="records given")
    batches: int = Field(description="vendor calls made (dry run: that would be made)")
    created: int = 0
    updated: int = 0
    accepted: int = Field(default=0, description="confirmed without saying new or updated")
    failed: int = 0
    outcomes: list[RecordOutcome] = Field(
        default_factory=list, description="one per record, in the order given (empty on dry run)"
    )
    would_send: list[dict[str, Any]] = Field(
        default_factory=list,
        description="dry run only: each record exactly as it would be sent, vendor field names",
    )
    stopped_early: str | None = Field(
        default=None,
        description="set when a batch failed after earlier ones succeeded: the error; the "
        "records of that batch and later ones are marked failed and were not imported",
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
                "keys, contacts (at most 10: thirdDataId required, name, position, dept, "
                "phone, tel, wechat, qq (each <=30 chars), email, addr, gender 男/女/未知, "
                "birthday yyyy-MM-dd)."
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
    progress: ProgressCallback | None = None,
) -> CustomerImport:
    """Import (create or update) customers into SocialEpoch or Xiaolanben.

    Every record is validated first; any bad record stops the call before anything is
    sent, listing each problem by record index and field. The records are then sent in
    batches of the vendor's size, and the result has one outcome per record: created,
    updated, accepted (the vendor confirmed without saying which) or failed with the
    vendor's reason. Importing a known customer updates it, but re-running a partly failed
    import re-sends the successful records too: send only the failed ones again.
    """
    if xiaolanben_flags is not None and vendor != "xiaolanben":
        raise InputError(
            [Problem("xiaolanben_flags", "only for vendor 'xiaolanben'; leave it out")],
            summary="invalid import options",
        )
    if vendor == "socialepoch":
        return await _import_socialepoch(services, customers, dry_run, progress)
    return await _import_xiaolanben(services, customers, dry_run, xiaolanben_flags, progress)


async def _import_socialepoch(
    services: Services,
    rows: Sequence[dict[str, Any]],
    dry_run: bool,
    progress: ProgressCallback | None,
) -> CustomerImport:
    records = validate_socialepoch(rows)
    settings = services.settings.socialepoch
    _check_socialepoch_import(records, settings)
    if dry_run:
        wire = [_socialepoch_wire(record, settings) for record in records]
        return _dry_run("socialepoch", wire, SocialEpochClient.MAX_BATCH)
    client = services.socialepoch

    async def send(batch: Sequence[SocialEpochCustomer]) -> list[RecordOutcome]:
        return await client.import_customers(batch)

    keys = [record.whatsapp for record in records]
    return await _send_in_batches(
        "socialepoch",
        records=records,
        keys=keys,
        batch_size=SocialEpochClient.MAX_BATCH,
        send=send,
        progress=progress,
    )


def _check_socialepoch_import(
    records: Sequence[SocialEpochCustomer], settings: SocialEpochSettings
) -> None:
    """What the client would refuse in some batch, checked for all records before any is sent."""
    problems: list[Problem] = []
    for index, record in enumerate(records):
        if settings.import_api == "legacy":
            for field, value in (
                ("agentAccount", record.agent_account),
                ("cancelTabName", record.cancel_tab_name),
            ):
                if value is not None:
                    problems.append(Problem(field, _LEGACY_ONLY_BATCH, index))
        elif record.agent_account is None and settings.agent_account is None:
            problems.append(Problem("agentAccount", _NO_AGENT, index))
    if problems:
        raise InputError(problems, summary="invalid SocialEpoch customers")


_LEGACY_ONLY_BATCH = (
    "only the batch import takes it: set SOCIALEPOCH_IMPORT_API=batch or leave it out"
)
_NO_AGENT = "no agent owns this customer: give agentAccount or set SOCIALEPOCH_AGENT_ACCOUNT"


def _socialepoch_wire(record: SocialEpochCustomer, settings: SocialEpochSettings) -> dict[str, Any]:
    wire = record.wire()
    if settings.import_api == "batch":
        wire.setdefault("agentAccount", settings.agent_account)
    return wire


async def _import_xiaolanben(
    services: Services,
    rows: Sequence[dict[str, Any]],
    dry_run: bool,
    flags: ImportFlags | None,
    progress: ProgressCallback | None,
) -> CustomerImport:
    records = validate_xiaolanben(rows)
    if dry_run:
        return _dry_run("xiaolanben", [r.wire() for r in records], XiaolanbenClient.MAX_BATCH)
    client = services.xiaolanben

    async def send(batch: Sequence[XiaolanbenCustomer]) -> list[RecordOutcome]:
        return await client.import_customers(batch, flags)

    keys = [record.customer_name for record in records]
    return await _send_in_batches(
        "xiaolanben",
        records=records,
        keys=keys,
        batch_size=XiaolanbenClient.MAX_BATCH,
        send=send,
        progress=progress,
    )


def _dry_run(vendor: ImportVendor, wire: list[dict[str, Any]], batch_size: int) -> CustomerImport:
    return CustomerImport(
        vendor=vendor,
        dry_run=True,
        total=len(wire),
        batches=_batch_count(len(wire), batch_size),
        would_send=wire,
    )


def _batch_count(total: int, batch_size: int) -> int:
    return -(-total // batch_size)


async def _send_in_batches(
    vendor: ImportVendor,
    *,
    records: Sequence[R],
    keys: Sequence[str],
    batch_size: int,
    send: Callable[[Sequence[R]], Awaitable[list[RecordOutcome]]],
    progress: ProgressCallback | None,
) -> CustomerImport:
    """Send batch after batch; the first batch's failure raises, a later one stops the rest."""
    outcomes: list[RecordOutcome] = []
    stopped: str | None = None
    batches = 0
    for start in range(0, len(records), batch_size):
        try:
            outcomes += await send(records[start : start + batch_size])
        except VendorError as exc:
            if not outcomes:
                raise
            stopped = str(exc)
            outcomes += [_not_imported(key, stopped) for key in keys[start:]]
            break
        batches += 1
        if progress is not None:
            await progress(len(outcomes), len(records))
    return _summary(vendor, outcomes, batches, stopped)


def _not_imported(key: str, error: str) -> RecordOutcome:
    return RecordOutcome(key=key, status="failed", reason=f"not imported: {error}")


def _summary(
    vendor: ImportVendor, outcomes: list[RecordOutcome], batches: int, stopped: str | None
) -> CustomerImport:
    count = dict.fromkeys(("created", "updated", "accepted", "failed"), 0)
    for outcome in outcomes:
        count[outcome.status] += 1
    return CustomerImport(
        vendor=vendor,
        dry_run=False,
        total=len(outcomes),
        batches=batches,
        outcomes=outcomes,
        stopped_early=stopped,
        **count,
    )


class CustomerQuery(BaseModel):
    """SocialEpoch customers found for the numbers asked about."""

    customers: list[CustomerRecord] = Field(description="the customers found")
    not_found: list[str] = Field(description="numbers asked about that match no customer")


async def query_customer(
    services: Services,
    *,
    whatsapp: Annotated[
        str | list[str],
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
            Problem("whatsapp", f"give 1 to {MAX_QUERY_NUMBERS} numbers (got {len(given)})")
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
        raise InputError(problems, summary="invalid WhatsApp number(s)")
    return numbers
