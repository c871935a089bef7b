"""The SocialEpoch (WhatsApp SCRM) client: import and query customers.

    async with SocialEpochClient(settings.socialepoch) as client:
        outcomes = await client.import_customers(validate_customers(rows))
        found = await client.query_customers(["8618221733141"])

Input is checked before any request (`InputError`); vendor errors arrive as the
`VendorAPIError` subclass the catalog names (`errors.check_answer`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any, ClassVar

import httpx
from pydantic import SecretStr, ValidationError

from tools.aio import AsyncClosing
from tools.errors import ConfigurationError, InputError, MalformedResponseError, Problem
from tools.models import OutcomeStatus, RecordOutcome
from tools.settings import CrmopsSettings, SocialEpochSettings
from tools.transport import (
    Endpoint,
    RateLimiter,
    RetryPolicy,
    VendorTransport,
)
from tools.vendors.socialepoch.auth import SocialEpochHeaderAuth, SocialEpochLegacyAuth
from tools.vendors.socialepoch.errors import VENDOR, check_answer, envelope_data
from tools.vendors.socialepoch.models import (
    CustomerRecord,
    SocialEpochCustomer,
    duplicate_problems,
    normalize_whatsapp,
)

# The vendor dedupes customers by whatsApp (re-sending one updates it), so imports are
# idempotent and safe to retry after an unknown outcome.
BATCH_IMPORT = Endpoint(
    "batchImport", "POST", "/wscrm-bus-api/customer/api/batchImport", idempotent=True
)
# 000: the legacy import, token in the body. Public docs mark it as no longer maintained.
LEGACY_IMPORT = Endpoint("import", "PUT", "/wscrm-bus-api/customer/api/import", idempotent=True)
QUERY = Endpoint("query", "POST", "/wscrm-bus-api/customer/query", idempotent=True)

_OUTCOME_STATUSES: dict[str, OutcomeStatus] = {
    "created": "created",
    "updated": "updated",
    "failed": "failed",
}


class SocialEpochClient(AsyncClosing):
    """One SocialEpoch tenant (one region's tenant id, API key and accounts).

    `settings.import_api` picks the import: "batch" (`batchImport`, header token; each
    customer's `agentAccount` defaults to `settings.agent_account`) or "legacy" (`import`,
    body token signed as the admin `settings.user_name`).
    """

    # 001/002 give no batch size, only code 507 "data size big"; 100 per call is our choice
    # (the simulator answers 507 above it). The bulk import sends SOCIALEPOCH_BATCH_SIZE.
    MAX_BATCH: ClassVar[int] = 100

    def __init__(
        self,
        settings: SocialEpochSettings,
        *,
        crmops: CrmopsSettings | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        rate_limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        settings.require()
        self.settings = settings
        self._tenant_id, api_key = _credentials(settings)
        header_auth = SocialEpochHeaderAuth(tenant_id=self._tenant_id, api_key=api_key, clock=clock)
        legacy_auth = SocialEpochLegacyAuth(api_key=api_key, tz=settings.tz, clock=clock)
        self._transport = VendorTransport.configured(
            vendor=VENDOR,
            base_url=settings.url,
            rate_limit=settings.rate_limit,
            auth=_AuthByPath(header_auth, {LEGACY_IMPORT.path: legacy_auth}),
            check_answer=check_answer,
            crmops=crmops,
            transport=transport,
            rate_limiter=rate_limiter,
            retry=retry,
        )

    async def import_customers(
        self, customers: Sequence[SocialEpochCustomer]
    ) -> list[RecordOutcome]:
        """Create or update up to `MAX_BATCH` customers in one call; one outcome per customer.

        Outcomes are `created`/`updated`/`failed` when the vendor reports per record, else
        `accepted`. Raises `InputError` (nothing sent) for an empty or oversized batch, a
        number given twice, or a customer without an owning agent.
        """
        if self.settings.import_api == "legacy":
            records = self._legacy_records(customers)
        else:
            records = self._batch_records(customers)
        return await self._send_import(records)

    async def import_prepared(self, records: Sequence[Mapping[str, Any]]) -> list[RecordOutcome]:
        """Send records already checked and in wire form, without checking them again.

        A record is `SocialEpochCustomer.wire()` output, with `agentAccount` set for the batch
        API: what the bulk import journals and reads back. Checking a hundred records again
        (a phone-number parse each) would cost more CPU than the call. Only the batch size is
        checked; the outcomes are as for `import_customers`.
        """
        _raise_if_any(_size_problems(len(records), self.MAX_BATCH, "customer"))
        return await self._send_import(records)

    async def _send_import(self, records: Sequence[Mapping[str, Any]]) -> list[RecordOutcome]:
        data = list(records)
        if self.settings.import_api == "legacy":
            endpoint = LEGACY_IMPORT
            payload = {"tenantId": self._tenant_id, "userName": self.settings.user_name}
        else:
            endpoint = BATCH_IMPORT
            payload = {"tenantId": self._tenant_id}
        response = await self._transport.request(endpoint, json={**payload, "data": data})
        numbers = [str(record["whatsApp"]) for record in data]
        return _outcomes(numbers, envelope_data(response, endpoint))

    async def query_customers(self, whatsapps: Sequence[str]) -> list[CustomerRecord]:
        """The stored customers with these numbers (numbers the vendor does not know are absent).

        Numbers may be written `+86 182-2173-3141`; they are sent as digits.
        """
        numbers = self._query_numbers(whatsapps)
        response = await self._transport.request(QUERY, json=[{"whatsApp": n} for n in numbers])
        return _customer_records(envelope_data(response, QUERY), response)

    # --- input checks: all problems at once, before any request --------------------------
    def _batch_records(self, customers: Sequence[SocialEpochCustomer]) -> list[dict[str, Any]]:
        problems = self._batch_problems(customers)
        default_agent = self.settings.agent_account
        for index, customer in enumerate(customers):
            if customer.agent_account is None and default_agent is None:
                problems.append(
                    Problem(
                        "agentAccount",
                        "no agent owns this customer: give agentAccount or set "
                        "SOCIALEPOCH_AGENT_ACCOUNT",
                        index,
                    )
                )
        _raise_if_any(problems)
        records = [customer.wire() for customer in customers]
        for record in records:
            record.setdefault("agentAccount", default_agent)
        return records

    def _legacy_records(self, customers: Sequence[SocialEpochCustomer]) -> list[dict[str, Any]]:
        problems = self._batch_problems(customers)
        for index, customer in enumerate(customers):
            for field, value in (
                ("agentAccount", customer.agent_account),
                ("cancelTabName", customer.cancel_tab_name),
            ):
                if value is not None:
                    problems.append(
                        Problem(
                            field,
                            "only the batch import takes it: set SOCIALEPOCH_IMPORT_API=batch "
                            "or leave it out",
                            index,
                        )
                    )
        _raise_if_any(problems)
        return [customer.wire() for customer in customers]

    def _batch_problems(self, items: Sequence[SocialEpochCustomer]) -> list[Problem]:
        problems = _size_problems(len(items), self.MAX_BATCH, "customer")
        return problems + duplicate_problems(list(enumerate(items)))

    def _query_numbers(self, whatsapps: Sequence[str]) -> list[str]:
        problems = _size_problems(len(whatsapps), self.MAX_BATCH, "number")
        numbers: list[str] = []
        for index, raw in enumerate(whatsapps):
            try:
                numbers.append(normalize_whatsapp(str(raw)))
            except ValueError as exc:
                problems.append(Problem("whatsApp", str(exc), index))
        _raise_if_any(problems)
        return numbers

    # --- lifecycle ---------------------------------------------------------------------
    async def aclose(self) -> None:
        await self._transport.aclose()

    def __repr__(self) -> str:
        return (
            f"SocialEpochClient(url={self.settings.url!r}, tenant_id={self._tenant_id!r}, "
            f"import_api={self.settings.import_api!r})"
        )


class _AuthByPath(httpx.Auth):
    """Signs each request with the scheme its path needs (the legacy import signs the body)."""

    requires_request_body = True

    def __init__(self, default: httpx.Auth, by_path_suffix: Mapping[str, httpx.Auth]) -> None:
        self._default = default
        self._by_path_suffix = dict(by_path_suffix)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        path = request.url.path
        chosen = next(
            (auth for suffix, auth in self._by_path_suffix.items() if path.endswith(suffix)),
            self._default,
        )
        yield from chosen.auth_flow(request)


def _credentials(settings: SocialEpochSettings) -> tuple[str, SecretStr]:
    if settings.tenant_id is None or settings.api_key is None:  # require() has said which
        raise ConfigurationError(vendor=VENDOR, missing=settings.missing())
    return settings.tenant_id, settings.api_key


def _size_problems(count: int, limit: int, noun: str) -> list[Problem]:
    if count == 0:
        return [Problem("data", f"no {noun}s given: give at least one")]
    if count > limit:
        return [
            Problem("data", f"{count} {noun}s in one call; send at most {limit} (split the list)")
        ]
    return []


def _raise_if_any(problems: list[Problem]) -> None:
    if problems:
        raise InputError(problems, summary="SocialEpoch request refused before sending")


def _outcomes(numbers: Sequence[str], data: object) -> list[RecordOutcome]:
    # The vendor's success `data` is undocumented (the samples show ""): use per-record
    # results when it sends a list of them, else every record was accepted.
    reported: dict[str, Mapping[str, Any]] = {}
    if isinstance(data, list):
        for item in data:
            if isinstance(item, Mapping) and item.get("whatsApp") is not None:
                reported[str(item["whatsApp"])] = item
    outcomes = []
    for number in numbers:
        item = reported.get(number, {})
        status = _OUTCOME_STATUSES.get(str(item.get("status", "")), "accepted")
        reason = item.get("reason") or None
        outcomes.append(
            RecordOutcome(
                key=number,
                status=status,
                reason=None if reason is None else str(reason),
            )
        )
    return outcomes


def _customer_records(data: object, response: httpx.Response) -> list[CustomerRecord]:
    if data is None or data == "":
        return []
    if isinstance(data, list):
        with contextlib.suppress(ValidationError):
            return [CustomerRecord.model_validate(item) for item in data]
    raise MalformedResponseError(
        f"{VENDOR} {QUERY.name}: `data` is not a list of customers with a whatsApp each",
        vendor=VENDOR,
        operation=QUERY.name,
        http_status=response.status_code,
        body=response.text,
    )
