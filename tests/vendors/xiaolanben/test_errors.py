"""Vendor answers → the right error class (003 错误响应)."""

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
from tools.vendors.xiaolanben.client import LIST_STAFF
from tools.vendors.xiaolanben.errors import check_answer

TRACKING = "12b505a5-ff57-43ac-9571-5a1993a49c9e"


def answer(status: int, body: Any = None, **headers: str) -> httpx.Response:
    request = httpx.Request("GET", "https://api.xiaolanben.com/x")
    if isinstance(body, str):
        return httpx.Response(status, text=body, headers=headers, request=request)
    return httpx.Response(status, json=body, headers=headers, request=request)


def vendor_body(code: int, message: str) -> dict[str, Any]:
    return {"trackingId": TRACKING, "errors": [{"code": code, "message": message}]}


@pytest.mark.parametrize(
    ("status", "message", "error_class"),
    [
        (400, "请求参数错误", InvalidRequestError),
        (401, "请求未经过认证", AuthenticationError),
        (403, "请求不允许重复执行", RequestRejectedError),
        (429, "请求过于频繁", RateLimitedError),
        (500, "服务端异常错误", ServerError),
        (503, "server error", ServerError),
    ],
)
def test_documented_errors_get_their_class(
    status: int, message: str, error_class: type[VendorAPIError]
) -> None:
    with pytest.raises(error_class) as caught:
        check_answer(answer(status, vendor_body(status, message)), LIST_STAFF)
    error = caught.value
    assert (error.http_status, error.code, error.vendor_message) == (status, str(status), message)
    assert error.request_id == TRACKING
    assert TRACKING in str(error)


def test_retry_after_is_read() -> None:
    with pytest.raises(RateLimitedError) as caught:
        check_answer(
            answer(429, vendor_body(429, "请求过于频繁"), **{"Retry-After": "2"}), LIST_STAFF
        )
    assert caught.value.retry_after == 2.0


def test_several_messages_are_kept() -> None:
    body = {"trackingId": TRACKING, "errors": [{"code": 400, "message": "a"}, {"message": "b"}]}
    with pytest.raises(InvalidRequestError) as caught:
        check_answer(answer(400, body), LIST_STAFF)
    assert caught.value.vendor_message == "a; b"


@pytest.mark.parametrize(
    "response",
    [
        answer(502, "<html>502 Bad Gateway</html>"),
        answer(200, "<html>portal</html>"),
        answer(500, {"error": "not the vendor's shape"}),
        answer(400, {"trackingId": TRACKING, "errors": []}),
    ],
)
def test_answers_not_in_the_vendor_format_are_malformed(response: httpx.Response) -> None:
    with pytest.raises(MalformedResponseError):
        check_answer(response, LIST_STAFF)


def test_a_success_passes() -> None:
    check_answer(answer(200, []), LIST_STAFF)
