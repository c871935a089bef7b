"""Turning a Bangwo8 error answer into the right `VendorAPIError` subclass.

004 (README "Bangwo8"): the REST API answers failures with HTTP 401/403/404/500 and a body
like ``{"errcode": "100047", "errmsg": "Invalid resource URI"}``; the OAuth2 token endpoint
answers ``{"error": "invalid_client"}``. The code (`errcode`, else `error`, else the HTTP
status) picks the class through the error catalog (`bangwo8` "400".."500", "100047",
"invalid_client", ...), falling back to the HTTP status. The error's `request_id` is the
`Requestid` header we sent, if any.
"""

from __future__ import annotations

from typing import Any

import httpx

from tools.catalog import CatalogEntry, catalog_entry
from tools.errors import VendorAPIError, kind_for_status
from tools.transport import Endpoint, read_json, retry_after

VENDOR = "bangwo8"
REQUEST_ID_HEADER = "Requestid"
TOKEN_OPERATION = "token"  # noqa: S105 - an operation name, not a secret


def check_answer(response: httpx.Response, endpoint: Endpoint) -> None:
    """Raise for an error answer (or one that is not JSON); return for a good one."""
    body = read_json(response, vendor=VENDOR, operation=endpoint.name)
    if not response.is_success:
        raise api_error(response, body, endpoint.name)


def api_error(response: httpx.Response, body: Any, operation: str) -> VendorAPIError:
    """The typed error for an API error answer whose JSON body is `body`."""
    code, message = _code_and_message(response, body)
    entry = catalog_entry(VENDOR, code) or catalog_entry(VENDOR, str(response.status_code))
    return _build(response, code, message, entry, operation, kind=None)


def token_error(response: httpx.Response) -> VendorAPIError:
    """The typed error for a failed `POST /api/token.php`.

    Any refusal (``invalid_client``, ``invalid_request``, ...) means no token, so it is an
    `AuthenticationError`; only a rate limit or a 5xx keeps its retryable class.
    """
    body = read_json(response, vendor=VENDOR, operation=TOKEN_OPERATION)
    code, message = _code_and_message(response, body)
    entry = catalog_entry(VENDOR, code)
    kind = kind_for_status(response.status_code)
    if kind not in {"rate_limited", "server"}:
        kind = "auth"
    return _build(response, code, message, entry, TOKEN_OPERATION, kind=kind)


def _build(
    response: httpx.Response,
    code: str,
    message: str,
    entry: CatalogEntry | None,
    operation: str,
    *,
    kind: str | None,
) -> VendorAPIError:
    if kind is None:
        kind = entry.kind if entry is not None else kind_for_status(response.status_code)
    return VendorAPIError.build(
        kind=kind,
        vendor=VENDOR,
        operation=operation,
        http_status=response.status_code,
        code=code,
        message=message,
        request_id=response.request.headers.get(REQUEST_ID_HEADER),
        body=response.text,
        entry=entry,
        retry_after=retry_after(response),
    )


def _code_and_message(response: httpx.Response, body: Any) -> tuple[str, str]:
    fields = body if isinstance(body, dict) else {}
    code = fields.get("errcode") or fields.get("error") or response.status_code
    message = fields.get("errmsg") or fields.get("error_description") or response.reason_phrase
    return str(code), str(message)
