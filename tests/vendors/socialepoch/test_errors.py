"""Turning SocialEpoch answers into the error tree (no network: the answer is the input)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tools.errors import (
    AuthenticationError,
    InvalidRequestError,
    MalformedResponseError,
    RateLimitedError,
    RequestRejectedError,
    ServerError,
    VendorAPIError,
)
from tools.vendors.socialepoch.client import BATCH_IMPORT
from tools.vendors.socialepoch.errors import check_answer, envelope_data


def answer(
    status: int, body: Any = None, *, text: str | None = None, **headers: str
) -> httpx.Response:
    request = httpx.Request("POST", "https://api.socialepoch.com" + BATCH_IMPORT.path)
    if text is not None:
        return httpx.Response(status, text=text, headers=headers, request=request)
    return httpx.Response(status, json=body, headers=headers, request=request)


def test_success_passes_and_data_is_read() -> None:
    response = answer(200, {"code": 200, "message": "Success", "data": ""})
    check_answer(response, BATCH_IMPORT)
    assert envelope_data(response, BATCH_IMPORT) == ""


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (522, AuthenticationError),
        (501, AuthenticationError),
        (502, RequestRejectedError),
        (525, RequestRejectedError),
        (517, ServerError),
    ],
)
def test_business_errors_under_http_200_are_typed(code: int, kind: type[VendorAPIError]) -> None:
    response = answer(200, {"code": code, "message": "m", "data": ""})
    with pytest.raises(kind) as caught:
        check_answer(response, BATCH_IMPORT)
    error = caught.value
    assert (error.vendor, error.code, error.http_status) == ("socialepoch", str(code), 200)
    assert error.vendor_message == "m"
    assert error.operation == "batchImport"


def test_admin_cannot_import_is_a_plain_vendor_error_with_its_catalog_entry() -> None:
    response = answer(200, {"code": -1, "message": "Admin Cannot import data", "data": ""})
    with pytest.raises(VendorAPIError) as caught:
        check_answer(response, BATCH_IMPORT)
    assert type(caught.value) is VendorAPIError
    assert caught.value.code == "-1"
    assert caught.value.entry is not None
    assert "SOCIALEPOCH_USER_NAME" in str(caught.value)


def test_an_unknown_code_is_a_plain_vendor_error() -> None:
    with pytest.raises(VendorAPIError) as caught:
        check_answer(answer(200, {"code": 999, "message": "new"}), BATCH_IMPORT)
    assert type(caught.value) is VendorAPIError
    assert caught.value.entry is None


def test_a_data_error_is_an_invalid_request() -> None:
    with pytest.raises(InvalidRequestError):
        check_answer(
            answer(200, {"code": 533, "message": "extended field format error"}), BATCH_IMPORT
        )


def test_a_gateway_503_is_a_server_error_not_the_business_503() -> None:
    # 002: business code 503 is "name is empty"; an HTTP 503 is a failing server.
    with pytest.raises(ServerError) as caught:
        check_answer(answer(503, {"code": 503, "message": "server error"}), BATCH_IMPORT)
    assert caught.value.http_status == 503


def test_rate_limit_answer_carries_retry_after_and_request_id() -> None:
    response = answer(
        429,
        {"code": 429, "message": "Too Many Requests", "data": ""},
        **{"Retry-After": "2", "X-Request-Id": "req-42"},
    )
    with pytest.raises(RateLimitedError) as caught:
        check_answer(response, BATCH_IMPORT)
    assert caught.value.retry_after == 2.0
    assert caught.value.request_id == "req-42"
    assert "request id req-42" in str(caught.value)


@pytest.mark.parametrize(
    "response",
    [
        answer(200, text="<html><body>502 Bad Gateway</body></html>"),
        answer(200, {"status": "ok"}),
        answer(200, ["not", "an", "envelope"]),
    ],
)
def test_anything_but_the_envelope_is_malformed(response: httpx.Response) -> None:
    with pytest.raises(MalformedResponseError):
        check_answer(response, BATCH_IMPORT)
