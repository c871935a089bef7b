"""SocialEpoch's two md5 token schemes, as `httpx.Auth` signers.

Both tokens are md5 over UTF-8, 32 lowercase hex digits (000, 001)::

    auth = SocialEpochHeaderAuth(tenant_id="1", api_key=SecretStr("..."))     # current
    auth = SocialEpochLegacyAuth(api_key=SecretStr("..."), tz=settings.tz)    # PUT import

Each send, every retry included, is signed afresh with the time of that send.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Generator
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

import httpx
from pydantic import SecretStr

from tools.transport import encode_json

Clock = Callable[[], float]

CREATE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
"""000 writes `yyyy-mm-dd HH:mm:ss`; the sample `2023-06-01 12:12:12` shows minutes are meant."""

CHINA_TIME = timezone(timedelta(hours=8))


def _md5_hex(text: str) -> str:
    # 000: the Java sample uses the platform charset and left-pads BigInteger hex to 32;
    # UTF-8 and hexdigest() (always 32 digits) are what the Go samples and the server agree on.
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def legacy_token(tenant_id: str, user_name: str, create_time: str, api_key: str) -> str:
    """000: `md5(tenantId + userName + createTime + ApiKey)`, for the body of `PUT .../import`."""
    return _md5_hex(tenant_id + user_name + create_time + api_key)


def header_token(tenant_id: str, timestamp_ms: str, api_key: str) -> str:
    """001: `md5(tenant_id + timestamp + ApiKey)`, sent in the `token` header."""
    return _md5_hex(tenant_id + timestamp_ms + api_key)


def format_create_time(epoch_seconds: float, tz: tzinfo = CHINA_TIME) -> str:
    """`createTime` for the legacy body: wall-clock time in `tz`, `yyyy-MM-dd HH:mm:ss`."""
    return datetime.fromtimestamp(epoch_seconds, tz).strftime(CREATE_TIME_FORMAT)


class SocialEpochHeaderAuth(httpx.Auth):
    """Sets the headers `tenant_id`, `timestamp` (epoch ms, from `clock`) and `token`."""

    def __init__(self, *, tenant_id: str, api_key: SecretStr, clock: Clock = time.time) -> None:
        self._tenant_id = tenant_id
        self._api_key = api_key
        self._clock = clock

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        timestamp = str(int(self._clock() * 1000))
        token = header_token(self._tenant_id, timestamp, self._api_key.get_secret_value())
        # 001: header names carry underscores; some proxies drop such headers.
        request.headers["tenant_id"] = self._tenant_id
        request.headers["timestamp"] = timestamp
        request.headers["token"] = token
        yield request

    def __repr__(self) -> str:
        return f"SocialEpochHeaderAuth(tenant_id={self._tenant_id!r})"


class SocialEpochLegacyAuth(httpx.Auth):
    """Adds `token` and `createTime` to a JSON body `{"tenantId", "userName", "data"}`.

    The body is re-serialised with `encode_json`, so the token signs exactly what is sent;
    keys go on the wire in the vendor sample's order: tenantId, userName, data, token,
    createTime (000).
    """

    requires_request_body = True

    def __init__(
        self, *, api_key: SecretStr, tz: tzinfo = CHINA_TIME, clock: Clock = time.time
    ) -> None:
        self._api_key = api_key
        self._tz = tz
        self._clock = clock

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        body: dict[str, Any] = json.loads(request.content)
        tenant_id, user_name = str(body["tenantId"]), str(body["userName"])
        create_time = format_create_time(self._clock(), self._tz)
        token = legacy_token(tenant_id, user_name, create_time, self._api_key.get_secret_value())
        signed = {
            "tenantId": tenant_id,
            "userName": user_name,
            "data": body.get("data"),
            "token": token,
            "createTime": create_time,
        }
        yield _with_content(request, encode_json(signed))

    def __repr__(self) -> str:
        return f"SocialEpochLegacyAuth(tz={self._tz!r})"


def _with_content(request: httpx.Request, content: bytes) -> httpx.Request:
    """`request` with a new body; Content-Length is recomputed from it."""
    headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() != "content-length"]
    return httpx.Request(
        request.method,
        request.url,
        headers=headers,
        content=content,
        extensions=request.extensions,
    )
