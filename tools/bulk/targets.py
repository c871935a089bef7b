"""What the bulk import needs to know about each vendor: how to check one record, what
identifies it (the vendor's dedupe key), and how to send a chunk of them.

    target = import_target(services, "socialepoch")
    prepared = target.prepare({"whatsApp": "+86 138-0013-8000"})   # InputError if bad
    outcomes = await target.send([prepared.payload, ...])           # ≤ target.batch_size
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tools.bulk.columns import CONTACTS, BulkVendor
from tools.bulk.readers import FileFormat
from tools.errors import InputError, Problem
from tools.i18n import marked, tr
from tools.models import RecordOutcome
from tools.services import Services
from tools.vendors.socialepoch.client import SocialEpochClient
from tools.vendors.socialepoch.models import SocialEpochCustomer
from tools.vendors.socialepoch.models import validate_customers as validate_socialepoch
from tools.vendors.xiaolanben.client import XiaolanbenClient
from tools.vendors.xiaolanben.models import ImportFlags, validate_customer

UNCONFIGURED = "unconfigured"


@dataclass(frozen=True)
class PreparedRow:
    """A valid record: `payload` exactly as it will be sent, `identity` the vendor's key."""

    identity: str
    payload: dict[str, Any]
    conflict: str
    """Rows with the same `conflict` never go in one call (Xiaolanben answers by name)."""


class ImportTarget(Protocol):
    """One vendor's import, as the bulk engine drives it."""

    vendor: BulkVendor
    batch_size: int
    identity_field: str
    """The field that identifies a customer to the vendor (named for a duplicate row)."""
    sends_unknown_columns: bool
    """True: a column that matches no field is sent as named (SocialEpoch's tenant extended
    fields); False: `check_columns` refuses it."""

    @property
    def pace(self) -> float:
        """Requests per second the client's limiter allows (the vendor's limit x headroom)."""
        ...

    def tenant(self) -> str:
        """Whose data this is: the account and the host (sandbox ≠ production)."""
        ...

    def require(self) -> None:
        """`ConfigurationError` unless the vendor is configured for sending; else its client
        is made now (a connection pool and a TLS context: tens of ms), not at the first send."""
        ...

    def check_columns(self, unknown: Sequence[str], source_format: FileFormat) -> None:
        """`InputError` when the input's columns that match no field cannot be sent."""
        ...

    def prepare(self, record: Mapping[str, Any]) -> PreparedRow:
        """The record checked and in wire form; `InputError` listing its problems."""
        ...

    def identity_of(self, record: Mapping[str, Any]) -> str:
        """What identifies `record` to the vendor, as written (for a record `prepare` refused)."""
        ...

    async def send(self, payloads: Sequence[Mapping[str, Any]]) -> list[RecordOutcome]:
        """Import one chunk; one outcome per payload, in order."""
        ...


class SocialEpochTarget:
    """SocialEpoch customers, keyed by WhatsApp number (000: an import of a known number
    updates that customer)."""

    vendor: BulkVendor = "socialepoch"
    identity_field = "whatsApp"
    sends_unknown_columns = True

    def __init__(self, services: Services) -> None:
        self._services = services
        self._settings = services.settings.socialepoch
        self.batch_size = min(self._settings.batch_size, SocialEpochClient.MAX_BATCH)

    @property
    def pace(self) -> float:
        return self._settings.rate_limit * self._services.settings.crmops.rate_headroom

    def tenant(self) -> str:
        if not self._settings.tenant_id:
            return UNCONFIGURED
        return f"{self._settings.tenant_id}@{self._settings.url}"

    def require(self) -> None:
        self._services.socialepoch  # noqa: B018 - made now, or ConfigurationError

    def check_columns(self, unknown: Sequence[str], source_format: FileFormat) -> None:
        pass  # 000: a column that is no standard field is a tenant extended field

    def identity_of(self, record: Mapping[str, Any]) -> str:
        return str(record.get("whatsApp") or "")

    def prepare(self, record: Mapping[str, Any]) -> PreparedRow:
        try:
            customer = validate_socialepoch([record])[0]
        except InputError as exc:
            raise _without_index(exc) from None
        payload = customer.wire()
        if self._settings.import_api == "legacy":
            _refuse_batch_only_fields(customer)
        elif customer.agent_account is None:
            if self._settings.agent_account is None:
                raise InputError(
                    [
                        Problem(
                            "agentAccount",
                            tr(
                                "no agent owns this customer: fill the column or set "
                                "SOCIALEPOCH_AGENT_ACCOUNT"
                            ),
                        )
                    ]
                )
            payload["agentAccount"] = self._settings.agent_account
        return PreparedRow(customer.whatsapp, payload, customer.whatsapp)

    async def send(self, payloads: Sequence[Mapping[str, Any]]) -> list[RecordOutcome]:
        # The payloads are `prepare`'s own output, read back from the journal.
        return await self._services.socialepoch.import_prepared(payloads)


class XiaolanbenTarget:
    """Xiaolanben customers, keyed by entName else customerName (003: importing one again
    updates it; its contacts are matched by phone)."""

    vendor: BulkVendor = "xiaolanben"
    batch_size = XiaolanbenClient.MAX_BATCH
    identity_field = "customerName"
    sends_unknown_columns = False

    def __init__(self, services: Services, flags: ImportFlags | None = None) -> None:
        self._services = services
        self._settings = services.settings.xiaolanben
        self._flags = flags

    @property
    def pace(self) -> float:
        return self._settings.rate_limit * self._services.settings.crmops.rate_headroom

    def tenant(self) -> str:
        if not self._settings.company_id:
            return UNCONFIGURED
        return f"{self._settings.company_id}@{self._settings.url}"

    def require(self) -> None:
        self._services.xiaolanben  # noqa: B018 - made now, or ConfigurationError

    def check_columns(self, unknown: Sequence[str], source_format: FileFormat) -> None:
        if not unknown or source_format == "jsonl":
            return  # a JSON line's other keys are left out
        raise InputError(
            [
                Problem(
                    name,
                    tr(
                        "matches no Xiaolanben field: rename the column to a field name "
                        "(customerName, entName, contact.phone, customizeField.<id>, ...) "
                        "or map it (--map 'HEADER=FIELD')"
                    ),
                )
                for name in unknown
            ],
            summary=marked("unknown columns"),
        )

    def identity_of(self, record: Mapping[str, Any]) -> str:
        return next((str(record[k]) for k in ("entName", "customerName") if record.get(k)), "")

    def prepare(self, record: Mapping[str, Any]) -> PreparedRow:
        no_phone = _contacts_without_phone(record)
        phone_problems = [
            Problem(
                f"{CONTACTS}[{position}].phone",
                tr(
                    "a contact needs a phone: the vendor matches contacts by phone, so a "
                    "resend after a lost answer would add one without a phone twice"
                ),
            )
            for position in no_phone
        ]
        try:
            customer = validate_customer(_with_contact_ids(record))
        except InputError as exc:
            # The phone is the fix (it becomes the contact's thirdDataId), so say only that.
            hidden = {f"{CONTACTS}[{position}].thirdDataId" for position in no_phone}
            others = [p for p in exc.problems if p.field not in hidden]
            raise InputError(others + phone_problems) from None
        if phone_problems:
            raise InputError(phone_problems)
        return PreparedRow(customer.identity, customer.wire(), customer.customer_name)

    async def send(self, payloads: Sequence[Mapping[str, Any]]) -> list[RecordOutcome]:
        return await self._services.xiaolanben.import_customers(payloads, self._flags)


def import_target(
    services: Services, vendor: BulkVendor, *, xiaolanben_flags: ImportFlags | None = None
) -> ImportTarget:
    """The target for `vendor` (`socialepoch` or `xiaolanben`)."""
    if vendor == "socialepoch":
        return SocialEpochTarget(services)
    return XiaolanbenTarget(services, xiaolanben_flags)


def _contacts_without_phone(record: Mapping[str, Any]) -> list[int]:
    contacts = record.get(CONTACTS)
    if not isinstance(contacts, list):
        return []
    return [
        position
        for position, contact in enumerate(contacts)
        if isinstance(contact, Mapping) and not str(contact.get("phone") or "").strip()
    ]


def _with_contact_ids(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """Contacts without `thirdDataId` get their phone as one (003: required, ours to choose)."""
    contacts = record.get(CONTACTS)
    if not isinstance(contacts, list):
        return record
    return {**record, CONTACTS: [_with_contact_id(contact) for contact in contacts]}


def _with_contact_id(contact: object) -> object:
    if isinstance(contact, Mapping) and not contact.get("thirdDataId") and contact.get("phone"):
        return {**contact, "thirdDataId": str(contact["phone"])}
    return contact


def _refuse_batch_only_fields(customer: SocialEpochCustomer) -> None:
    problems = [
        Problem(field, tr("only the batch import takes it: set SOCIALEPOCH_IMPORT_API=batch"))
        for field, value in (
            ("agentAccount", customer.agent_account),
            ("cancelTabName", customer.cancel_tab_name),
        )
        if value is not None
    ]
    if problems:
        raise InputError(problems)


def _without_index(error: InputError) -> InputError:
    return InputError([Problem(p.field, p.message) for p in error.problems])
