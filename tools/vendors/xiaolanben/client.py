"""The Xiaolanben (小蓝本 blue-crm open API) client::

    async with XiaolanbenClient(settings.xiaolanben, crmops=settings.crmops) as client:
        outcome = await client.import_customer({"customerName": "上海蓝本科技"})
        outcomes = await client.import_customers(rows[:10], ImportFlags(auto_draw=True))
        async for staff in client.iter_staff(search="王"):
            ...

Bad input raises `InputError` before any request; vendor failures raise a `VendorAPIError`
subclass (`tools.errors`), except a customer the vendor refused, which is a `failed` outcome.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, TypeVar

import httpx
from pydantic import TypeAdapter, ValidationError

from tools.aio import AsyncClosing
from tools.errors import (
    ConfigurationError,
    InputError,
    InvalidRequestError,
    MalformedResponseError,
    Problem,
)
from tools.models import RecordOutcome
from tools.settings import CrmopsSettings, XiaolanbenSettings
from tools.transport import Endpoint, RateLimiter, RetryPolicy, VendorTransport
from tools.vendors.xiaolanben.auth import XiaolanbenAuth
from tools.vendors.xiaolanben.errors import VENDOR, check_answer
from tools.vendors.xiaolanben.models import (
    MAX_CONTACTS,
    MAX_PAGE_SIZE,
    MIN_PAGE_SIZE,
    ImportFlags,
    ImportResult,
    Staff,
    XiaolanbenCustomer,
    validate_customer,
    validate_customers,
)

CustomerInput = XiaolanbenCustomer | Mapping[str, Any]
T = TypeVar("T")

_OPEN = "/blue-crm/api/v1/open"
# 003: the vendor dedupes customers by entName/customerName and contacts by phone, so
# sending an import again updates what the first one created: safe to retry.
IMPORT_CUSTOMER = Endpoint(
    "import customer", "POST", f"{_OPEN}/customer/import/customerWithContact", idempotent=True
)
IMPORT_CUSTOMERS = Endpoint(
    "import customers", "POST", f"{_OPEN}/customer/import/customersWithContact", idempotent=True
)
LIST_STAFF = Endpoint("list staff", "GET", f"{_OPEN}/companycenter/staffs", idempotent=True)

_BATCH_ANSWER = TypeAdapter(dict[str, ImportResult])
_STAFF_PAGE = TypeAdapter(list[Staff])


class XiaolanbenClient(AsyncClosing):
    """Signed async client for one Xiaolanben company; use as `async with`."""

    MAX_BATCH = 10
    MAX_CONTACTS = MAX_CONTACTS
    MIN_PAGE_SIZE = MIN_PAGE_SIZE
    MAX_PAGE_SIZE = MAX_PAGE_SIZE

    def __init__(
        self,
        settings: XiaolanbenSettings,
        *,
        crmops: CrmopsSettings | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        rate_limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        settings.require()
        if settings.sign_key is None:  # pragma: no cover - require() has refused this
            raise ConfigurationError(vendor=VENDOR, missing=["XIAOLANBEN_SIGN_KEY"])
        self._base_url = settings.url
        self._transport = VendorTransport.configured(
            vendor=VENDOR,
            base_url=settings.url,
            rate_limit=settings.rate_limit,
            auth=XiaolanbenAuth(settings.sign_key, clock),
            check_answer=check_answer,
            crmops=crmops,
            # 003: companyId goes in a header on every call and is not signed.
            headers={"companyId": str(settings.company_id)},
            transport=transport,
            rate_limiter=rate_limiter,
            retry=retry,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._base_url!r})"

    async def aclose(self) -> None:
        await self._transport.aclose()

    # --- customers ----------------------------------------------------------------------
    async def import_customer(
        self, customer: CustomerInput, flags: ImportFlags | None = None
    ) -> RecordOutcome:
        """Create or update one customer with its contacts; `created`, `updated` or `failed`.

        A refusal of this customer by the vendor (HTTP 400, e.g. owned by another staff
        member) is a `failed` outcome carrying the vendor's message.
        """
        model = validate_customer(customer)
        try:
            response = await self._transport.request(
                IMPORT_CUSTOMER, params=_flag_params(flags), json=model.wire()
            )
        except InvalidRequestError as exc:
            # 003: the single import answers no success flag; a refused customer is a 400.
            reason = exc.vendor_message or "refused without a message"
            if exc.request_id:
                reason += f" (trackingId {exc.request_id})"
            return _failed(model.customer_name, reason)
        result = _parse(ImportResult, response, IMPORT_CUSTOMER)
        return _outcome(model.customer_name, result)

    async def import_customers(
        self, customers: Sequence[CustomerInput], flags: ImportFlags | None = None
    ) -> list[RecordOutcome]:
        """Create or update up to `MAX_BATCH` customers in one call; one outcome each, in order.

        Raises `InputError` (before any request) for more than `MAX_BATCH` customers, an
        invalid record, or two records for the same customer.
        """
        if len(customers) > self.MAX_BATCH:
            raise InputError(
                [
                    Problem(
                        "customers",
                        f"{len(customers)} customers in one call; at most {self.MAX_BATCH} "
                        "(003 recommends it; split the list)",
                    )
                ],
                summary="too many Xiaolanben customers for one call",
            )
        models = validate_customers(customers)
        if not models:
            return []
        response = await self._transport.request(
            IMPORT_CUSTOMERS, params=_flag_params(flags), json=[m.wire() for m in models]
        )
        answer = _parse(_BATCH_ANSWER, response, IMPORT_CUSTOMERS)
        return [_batch_outcome(model.customer_name, answer) for model in models]

    # --- staff --------------------------------------------------------------------------
    async def list_staff(
        self, page_index: int = 1, page_size: int = 100, search: str | None = None
    ) -> list[Staff]:
        """One page of staff (`page_index` from 1, `page_size` 2–100); a short page is the last.

        `search` matches names containing it or a mobile number exactly.
        """
        self._check_page(page_index, page_size)
        params = {"pageIndex": str(page_index), "pageSize": str(page_size)}
        if search:
            params["search"] = search
        response = await self._transport.request(LIST_STAFF, params=params)
        return _parse(_STAFF_PAGE, response, LIST_STAFF)

    async def iter_staff(
        self, search: str | None = None, limit: int | None = None, *, page_size: int = 100
    ) -> AsyncIterator[Staff]:
        """Every staff member (or the first `limit`), fetching pages until a short one."""
        self._check_page(1, page_size)
        given = 0
        page_index = 1
        while limit is None or given < limit:
            page = await self.list_staff(page_index, page_size, search)
            for staff in page[: None if limit is None else limit - given]:
                given += 1
                yield staff
            if len(page) < page_size:
                return
            page_index += 1

    def _check_page(self, page_index: int, page_size: int) -> None:
        problems = []
        if page_index < 1:
            problems.append(Problem("page_index", f"pages count from 1 (got {page_index})"))
        if not self.MIN_PAGE_SIZE <= page_size <= self.MAX_PAGE_SIZE:
            problems.append(
                Problem(
                    "page_size",
                    f"must be {self.MIN_PAGE_SIZE}–{self.MAX_PAGE_SIZE} (got {page_size})",
                )
            )
        if problems:
            raise InputError(problems, summary="invalid Xiaolanben staff page")


def _flag_params(flags: ImportFlags | None) -> dict[str, str]:
    return flags.as_params() if flags is not None else {}


def _parse(model: type[T] | TypeAdapter[T], response: httpx.Response, endpoint: Endpoint) -> T:
    adapter = model if isinstance(model, TypeAdapter) else TypeAdapter(model)
    try:
        return adapter.validate_json(response.content)
    except ValidationError as exc:
        raise MalformedResponseError(
            f"{VENDOR} {endpoint.name}: the answer is not in 003's format "
            f"({exc.error_count()} problem(s), first: {exc.errors()[0]['msg']})",
            vendor=VENDOR,
            operation=endpoint.name,
            http_status=response.status_code,
            body=response.text,
        ) from exc


def _outcome(key: str, result: ImportResult) -> RecordOutcome:
    if not result.success:
        return _failed(key, result.failed_reason or "the vendor gave no reason")
    vendor_id = str(result.customer_id) if result.customer_id is not None else None
    status = "created" if result.is_new else "updated"
    return RecordOutcome(key=key, status=status, vendor_id=vendor_id)


def _batch_outcome(key: str, answer: Mapping[str, ImportResult]) -> RecordOutcome:
    result = answer.get(key)
    if result is None:
        return _failed(key, "the vendor's answer has no result for this customer name")
    return _outcome(key, result)


def _failed(key: str, reason: str) -> RecordOutcome:
    return RecordOutcome(key=key, status="failed", reason=reason)
