"""SocialEpoch answers → `VendorAPIError` subclasses, through the error catalog.

Every answer is the envelope `{"code": 200, "message": "Success", "data": ...}`. Business
errors come with HTTP 200 and another `code` (002: 501–538, or -1 "Admin Cannot import
data"); a gateway or crmops' rate-limit assumption answers with an HTTP error status::

    VendorTransport(..., check_answer=check_answer)
    data = envelope_data(response, endpoint)     # after a successful request
"""

from __future__ import annotations

from typing import Any

import httpx

from tools.catalog import CatalogEntry, catalog_entry
from tools.errors import MalformedResponseError, VendorAPIError, kind_for_status
from tools.transport import Endpoint, read_json, retry_after

VENDOR = "socialepoch"
SUCCESS_CODE = "200"
REQUEST_ID_HEADER = "X-Request-Id"  # the envelope has no request id; a gateway may add one


def check_answer(response: httpx.Response, endpoint: Endpoint) -> None:
    """Return for `code` 200 under HTTP 200; raise the matching `VendorAPIError` otherwise."""
    body = _envelope(response, endpoint)
    code = str(body["code"]).strip()
    if response.status_code == 200 and code == SUCCESS_CODE:
        return
    kind, entry = classify(response.status_code, code)
    raise VendorAPIError.build(
        kind=kind,
        vendor=VENDOR,
        operation=endpoint.name,
        http_status=response.status_code,
        code=code,
        message=str(body.get("message") or ""),
        request_id=response.headers.get(REQUEST_ID_HEADER),
        body=response.text,
        entry=entry,
        retry_after=retry_after(response),
    )


def envelope_data(response: httpx.Response, endpoint: Endpoint) -> Any:
    """The `data` of a successful answer (`check_answer` has passed)."""
    return _envelope(response, endpoint).get("data")


def classify(http_status: int, code: str) -> tuple[str, CatalogEntry | None]:
    """The error kind and catalog entry for `code` answered with `http_status`.

    A code means the documented business error only under HTTP 200: the vendor's 503 is
    "name is empty", an HTTP 503 from a gateway is a server failure.
    """
    entry = catalog_entry(VENDOR, code)
    if http_status == 200:
        return (entry.kind if entry else "other"), entry
    if entry is not None and entry.http_status != http_status:
        entry = None
    return (entry.kind if entry else kind_for_status(http_status)), entry


def _envelope(response: httpx.Response, endpoint: Endpoint) -> dict[str, Any]:
    body = read_json(response, vendor=VENDOR, operation=endpoint.name)
    if not isinstance(body, dict) or "code" not in body:
        raise MalformedResponseError(
            f"{VENDOR} {endpoint.name}: the answer is JSON but not the vendor's "
            f'{{"code", "message", "data"}} envelope (HTTP {response.status_code})',
            vendor=VENDOR,
            operation=endpoint.name,
            http_status=response.status_code,
            body=response.text,
        )
    return body
