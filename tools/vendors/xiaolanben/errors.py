"""Turning a Xiaolanben error answer into the right `VendorAPIError` subclass.

003 "错误响应": any failure is a non-2xx status with the body::

    {"trackingId": "12b505a5-...", "errors": [{"code": 403, "message": "请求不允许重复执行"}]}

The tracking id becomes the error's `request_id`; the code picks the class through the error
catalog (`xiaolanben` "400", "401", "403", "429", "500"), falling back to the HTTP status.
"""

from __future__ import annotations

from typing import Any

import httpx

from tools.catalog import catalog_entry
from tools.errors import MalformedResponseError, VendorAPIError, kind_for_status
from tools.transport import Endpoint, read_json, retry_after

VENDOR = "xiaolanben"


def check_answer(response: httpx.Response, endpoint: Endpoint) -> None:
    """Raise for an error answer (or one that is not JSON); return for a good one."""
    body = read_json(response, vendor=VENDOR, operation=endpoint.name)
    if response.is_success:
        return
    code, message = _first_error(response, body, endpoint)
    entry = catalog_entry(VENDOR, code) or catalog_entry(VENDOR, str(response.status_code))
    raise VendorAPIError.build(
        kind=entry.kind if entry is not None else kind_for_status(response.status_code),
        vendor=VENDOR,
        operation=endpoint.name,
        http_status=response.status_code,
        code=code,
        message=message,
        request_id=_text_or_none(body.get("trackingId")),
        body=response.text,
        entry=entry,
        retry_after=retry_after(response),
    )


def _first_error(response: httpx.Response, body: Any, endpoint: Endpoint) -> tuple[str, str]:
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        raise MalformedResponseError(
            f"{VENDOR} {endpoint.name}: HTTP {response.status_code} without the vendor's "
            '{"trackingId", "errors": [...]} body',
            vendor=VENDOR,
            operation=endpoint.name,
            http_status=response.status_code,
            body=response.text,
        )
    messages = [str(item.get("message", "")) for item in errors if isinstance(item, dict)]
    code = errors[0].get("code", response.status_code)
    return str(code), "; ".join(message for message in messages if message)


def _text_or_none(value: object) -> str | None:
    return str(value) if value not in (None, "") else None
