"""Xiaolanben request signing (003 "签名方式", the vendor's Java `SignUtil`).

Every request carries two query parameters::

    h_t    = epoch milliseconds, valid for 10 s on the server
    h_sign = md5(A + B + h_t + key), lowercase hex over UTF-8

A is the query string (without `h_t`/`h_sign`) in Java `TreeMap` key order, raw values; B is
the body text of a POST/PUT. `sign()` is the vendor's `SignUtil.sign` line for line;
`XiaolanbenAuth` applies it to the request httpx is about to send::

    client = httpx.AsyncClient(auth=XiaolanbenAuth(SecretStr(key)))
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
import unicodedata
from collections.abc import Callable, Generator, Mapping, Sequence

import httpx
from pydantic import SecretStr

SIGN_PARAM = "h_sign"
TIME_PARAM = "h_t"
_IGNORED = frozenset({SIGN_PARAM, TIME_PARAM})
# Java Character.isWhitespace: Zs/Zl/Zp except the no-break spaces, plus these controls.
_JAVA_NO_BREAK = frozenset("\u00a0\u2007\u202f")
_JAVA_CONTROL_SPACE = frozenset("\t\n\u000b\f\r\u001c\u001d\u001e\u001f")

SignParams = Mapping[str, str | Sequence[str]]


def java_order(text: str) -> bytes:
    """Sort key equal to Java `String.compareTo`: UTF-16 code units, not code points."""
    return text.encode("utf-16-be", "surrogatepass")


def is_java_blank(text: str | None) -> bool:
    """commons-lang `StringUtils.isBlank`: None, empty, or only Java whitespace."""
    return not text or all(_is_java_whitespace(char) for char in text)


def _is_java_whitespace(char: str) -> bool:
    if char in _JAVA_CONTROL_SPACE:
        return True
    return unicodedata.category(char) in {"Zs", "Zl", "Zp"} and char not in _JAVA_NO_BREAK


def param_string(params: SignParams) -> str:
    """String A: `key=value` pairs in `TreeMap` order joined by `&` (`SignUtil.getParamStr`)."""
    pairs = []
    for key in sorted(params, key=java_order):
        raw = params[key]
        values = [raw] if isinstance(raw, str) else list(raw)
        if key in _IGNORED or not values:
            continue
        # 003 SignUtil: empty values dropped, the rest sorted and comma-joined; a parameter
        # whose values are all empty still signs as `key=` (see XiaolanbenAuth).
        joined = ",".join(sorted((v for v in values if v), key=java_order))
        pairs.append(f"{key}={joined}")
    return "&".join(pairs)


def sign(key: str, params: SignParams, body: str | None, t: int) -> str:
    """`SignUtil.sign(key, paramMap, body, time)`: the `h_sign` value for one request."""
    text = ""
    params_text = param_string(params)
    if not is_java_blank(params_text):
        text += params_text
    if not is_java_blank(body):
        text += str(body)
    text += f"{t}{key}"
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def signature_matches(
    key: SecretStr, params: SignParams, body: str | None, t: int, got: str
) -> bool:
    """Server side (the simulator): whether `got` is the signature of this request."""
    expected = sign(key.get_secret_value(), params, body, t)
    return hmac.compare_digest(expected, got.lower())


class MillisecondTicker:
    """Hands out strictly increasing epoch milliseconds: `max(now_ms, last + 1)`.

    003: the server refuses one signature twice within 10 s, so two identical requests
    signed in the same millisecond must still get different `h_t`. Thread safe (and so
    safe for any number of asyncio tasks).
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            self._last = max(int(self._clock() * 1000), self._last + 1)
            return self._last


class XiaolanbenAuth(httpx.Auth):
    """Adds `h_t` and `h_sign` to each request, signing its query and body as sent.

    Query parameters with an empty value are removed before signing: 003's prose says
    they take no part, its `SignUtil` signs them as `key=` (README "Xiaolanben"), so a
    request that never carries one is verified the same either way.
    """

    requires_request_body = True

    def __init__(self, sign_key: SecretStr, clock: Callable[[], float] = time.time) -> None:
        self._key = sign_key
        self._ticker = MillisecondTicker(clock)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sign_key={self._key!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        pairs = [
            (name, value)
            for name, value in request.url.params.multi_items()
            if value and name not in _IGNORED
        ]
        t = self._ticker.next()
        body = request.content.decode("utf-8") if request.content else None
        signature = sign(self._key.get_secret_value(), _grouped(pairs), body, t)
        signed = (*pairs, (TIME_PARAM, str(t)), (SIGN_PARAM, signature))
        request.url = request.url.copy_with(params=httpx.QueryParams(signed))
        yield request


def _grouped(pairs: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    return grouped
