"""Xiaolanben request signing (003 "签名方式", the vendor's Java `SignUtil`).

Every request carries two query parameters::

    h_t    = epoch milliseconds, valid for 10 s on the server
    h_sign = md5(A + B + h_t + key), lowercase hex over UTF-8

A is the query string (without `h_t`/`h_sign`) in Java `TreeMap` key order, raw values; B is
the body text of a POST/PUT. `sign()` is the vendor's `SignUtil.sign` line for line;
`XiaolanbenAuth` applies it to the request httpx is about to send::

    client = httpx.AsyncClient(auth=XiaolanbenAuth(SecretStr(key)))

Because `h_t` must be within 10 s of the *vendor's* clock, `XiaolanbenAuth` reads the `Date`
header of every answer and signs with the vendor's time when this machine's clock is off by
more than `SKEW_TOLERANCE`; a request refused as expired (403 请求签名已过期) is signed again
with the corrected time and sent once more.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import json
import logging
import threading
import time
import unicodedata
from collections.abc import Callable, Generator, Mapping, Sequence

import httpx
from pydantic import SecretStr

log = logging.getLogger("crmops.http")

SIGN_PARAM = "h_sign"
TIME_PARAM = "h_t"
_IGNORED = frozenset({SIGN_PARAM, TIME_PARAM})
# Java Character.isWhitespace: Zs/Zl/Zp except the no-break spaces, plus these controls.
_JAVA_NO_BREAK = frozenset("\u00a0\u2007\u202f")
_JAVA_CONTROL_SPACE = frozenset("\t\n\u000b\f\r\u001c\u001d\u001e\u001f")

SignParams = Mapping[str, str | Sequence[str]]

EXPIRED = "请求签名已过期"
"""The 403 message of an `h_t` outside the vendor's 10 s window (003 names none; ours)."""
SKEW_TOLERANCE = 2.0
"""Seconds of clock difference left alone: `Date` has whole seconds, and 10 s is the window."""


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

    `h_t` is this machine's clock plus `offset`, the vendor's clock lead learnt from the
    answers' `Date` headers (see the module docstring).
    """

    requires_request_body = True
    requires_response_body = True  # to recognise a 403 "expired" answer

    def __init__(self, sign_key: SecretStr, clock: Callable[[], float] = time.time) -> None:
        self._key = sign_key
        self._clock = clock
        self.offset = 0.0
        self._ticker = MillisecondTicker(self._vendor_time)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sign_key={self._key!r})"

    def _vendor_time(self) -> float:
        return self._clock() + self.offset

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        pairs = [
            (name, value)
            for name, value in request.url.params.multi_items()
            if value and name not in _IGNORED
        ]
        body = request.content.decode("utf-8") if request.content else None
        for _ in range(2):
            t = self._ticker.next()
            signature = sign(self._key.get_secret_value(), _grouped(pairs), body, t)
            signed = (*pairs, (TIME_PARAM, str(t)), (SIGN_PARAM, signature))
            request.url = request.url.copy_with(params=httpx.QueryParams(signed))
            response = yield request
            corrected = self._learn_offset(response)
            # 003: an expired h_t was refused before the vendor acted: safe to send again.
            if not (corrected and _is_expired(response)):
                return

    def _learn_offset(self, response: httpx.Response) -> bool:
        """Adopt the vendor's clock from `Date` if it differs; True when `offset` changed."""
        vendor_now = _date_of(response)
        if vendor_now is None:
            return False
        # Date is whole seconds, rounded down: the vendor's time is half a second on average.
        measured = vendor_now + 0.5 - self._clock()
        if abs(measured - self.offset) <= SKEW_TOLERANCE:
            return False
        if abs(measured) <= SKEW_TOLERANCE:
            measured = 0.0
        log.warning(
            "xiaolanben: this machine's clock is %.0f s %s the vendor's (its Date header); "
            "signing h_t with the vendor's time. Sync this clock (NTP).",
            abs(measured),
            "behind" if measured > 0 else "ahead of",
        )
        self.offset = measured
        # A new ticker: the old one would never hand out a time earlier than its last.
        self._ticker = MillisecondTicker(self._vendor_time)
        return True


def _date_of(response: httpx.Response) -> float | None:
    """The answer's `Date` as epoch seconds, or None if it has none or it is unreadable."""
    text = response.headers.get("date")
    if not text:
        return None
    try:
        return email.utils.parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _is_expired(response: httpx.Response) -> bool:
    if response.status_code != 403:
        return False
    try:
        errors = json.loads(response.content).get("errors") or []
    except (ValueError, AttributeError):
        return False
    return any(isinstance(e, dict) and e.get("message") == EXPIRED for e in errors)


def _grouped(pairs: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    return grouped
