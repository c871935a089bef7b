"""Sending one vendor request: rate limit, retries, and turning failures into `VendorError`.

Every vendor client owns one `VendorTransport` (one `httpx.AsyncClient`, so connections are
reused) and describes each API call as an `Endpoint`::

    IMPORT = Endpoint("batchImport", "POST", "/wscrm-bus-api/customer/api/batchImport",
                      idempotent=True)
    response = await transport.request(IMPORT, json=payload)

What is retried, with bounded exponential backoff and jitter (`retry_decision`):
- a request that never reached the vendor (connection refused, connect timeout): always;
- a rate-limit answer: always (the vendor did not act), after its Retry-After if given;
- a 5xx, a malformed answer, a reset or a read timeout: only for an idempotent endpoint,
  because the vendor may already have acted. A create becomes idempotent by carrying an
  idempotency key made once per logical call (Bangwo8 `Requestid`).

Nothing else is retried. A `StorageError` (Redis behind a shared rate limiter or token
cache is down) is never retried as a vendor failure: no vendor was asked, Redis's own
client has already reconnected once, and the caller stops cleanly instead (`tools.errors`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from tools.aio import AsyncClosing
from tools.errors import (
    MalformedResponseError,
    RateLimitedError,
    ServerError,
    VendorError,
    VendorUnavailableError,
)
from tools.observability.calls import VendorRequest
from tools.redaction import shown_url
from tools.settings import CrmopsSettings

log = logging.getLogger("crmops.http")


@cache
def _stamina() -> ModuleType:
    """stamina, configured, imported at the first request: with tenacity it costs ~10 ms
    that a process which has not called a vendor yet (`crmops mcp` at start) need not pay."""
    import stamina  # noqa: PLC0415 - start-up cost

    # stamina's default hook logs a bare "stamina.retry_scheduled" warning for every retry;
    # the transport's own hook logs the same retry with the vendor, the API and the reason.
    stamina.instrumentation.set_on_retry_hooks([])
    return stamina


Params = Mapping[str, str | list[str]]


@dataclass(frozen=True)
class Endpoint:
    """One vendor API: `name` appears in errors; `path` is also its rate-limit bucket."""

    name: str
    method: str
    path: str
    idempotent: bool


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds on retrying one call: at most `attempts` tries within `timeout` seconds."""

    attempts: int = 5
    wait_initial: float = 0.2
    wait_max: float = 5.0
    wait_jitter: float = 0.2
    timeout: float = 60.0


class RateLimiter(Protocol):
    """Waits until one more request to `api` fits the vendor's limit."""

    async def acquire(self, api: str) -> None: ...


@dataclass
class PaceStats:
    """What one API's limiter has granted: how many slots, the first and the last."""

    granted: int = 0
    first: float = 0.0
    last: float = 0.0

    @property
    def rate(self) -> float:
        """Starts per second between the first and the last slot (0 below two)."""
        span = self.last - self.first
        return (self.granted - 1) / span if self.granted > 1 and span > 0 else 0.0


class LocalRateLimiter:
    """In-process limit of `rate` request starts per second for each API, evenly spaced.

    Each `acquire` reserves the next free slot on a timeline (`slot = max(now, last +
    1/rate)`, the GCRA of a bucket of one) and sleeps until it. Slots are absolute, so a late
    wake-up never pushes later requests back, and an idle API banks nothing. Waiters woken
    late by a busy event loop are held back so that any one-second window holds at most
    ceil(`rate`) actual starts: no burst ever forms.

    Why not `aiolimiter` (which crmops used first): its bucket of one measures each wait from
    the moment the previous waiter woke, so timer overshoot accumulates and it reaches only
    about 0.96 of its rate (bench/bulk_import.py), below the 0.95-of-ceiling target once
    headroom is taken. `stats` records the pace for benchmarks and tests.
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = rate
        self._clock = clock
        self._next: dict[str, float] = {}
        self._per_window = math.ceil(rate)
        self._granted: dict[str, deque[float]] = {}
        self.stats: dict[str, PaceStats] = {}

    async def acquire(self, api: str) -> None:
        now = self._clock()
        slot = max(now, self._next.get(api, now))
        self._next[api] = slot + 1 / self.rate
        if slot > now:
            await asyncio.sleep(slot - now)
        started = await self._within_one_second_window(api)
        self._count(api, max(slot, started))

    async def _within_one_second_window(self, api: str) -> float:
        # Slots are absolute, so waiters that a busy event loop wakes late (a slow journal
        # write, the machine's other load) would go out together. This keeps the actual
        # grant times at most ceil(rate) in any one second, whatever the wake-ups did:
        # bunched starts are what a vendor's strict sliding window refuses.
        granted = self._granted.setdefault(api, deque(maxlen=self._per_window))
        while len(granted) == self._per_window:
            wait = granted[0] + 1.0 - self._clock()
            if wait <= 0:
                break
            await asyncio.sleep(wait)
        now = self._clock()
        granted.append(now)
        return now

    def _count(self, api: str, granted: float) -> None:
        stats = self.stats.setdefault(api, PaceStats(first=granted))
        stats.granted += 1
        stats.last = granted


AnswerCheck = Callable[[httpx.Response, Endpoint], None]
"""Raises the vendor's `VendorAPIError`/`MalformedResponseError` for an error answer."""


def retry_decision(error: BaseException, *, idempotent: bool, wait_max: float) -> bool | float:
    """Whether to retry after `error`; a float is the backoff the vendor asked for.

    Only vendor failures are retried: a `StorageError` (our own backend) or any other
    error is not.
    """
    if isinstance(error, RateLimitedError):
        return min(error.retry_after, wait_max) if error.retry_after else True
    if isinstance(error, VendorUnavailableError):
        return idempotent or not error.request_sent
    if isinstance(error, ServerError | MalformedResponseError):
        return idempotent
    return False


def encode_json(payload: Any) -> bytes:
    """The exact bytes sent for a JSON body: compact, UTF-8, non-ASCII kept as is."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class VendorTransport(AsyncClosing):
    """One vendor's HTTP connection pool, signer, rate limiter and retry policy.

    Vendor clients build theirs with `VendorTransport.configured(...)`, which fills in
    crmops's defaults for what the caller (a test, the bulk engine) did not inject.
    """

    def __init__(
        self,
        *,
        vendor: str,
        base_url: str,
        auth: httpx.Auth | None,
        check_answer: AnswerCheck,
        rate_limiter: RateLimiter,
        retry: RetryPolicy,
        timeout: float,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.vendor = vendor
        self._check_answer = check_answer
        self._rate_limiter = rate_limiter
        self._retry = retry
        self._http = httpx.AsyncClient(
            base_url=base_url,
            auth=auth,
            timeout=timeout,
            headers=headers,
            transport=transport,
            follow_redirects=False,
        )

    @classmethod
    def configured(
        cls,
        *,
        vendor: str,
        base_url: str,
        rate_limit: float,
        auth: httpx.Auth | None,
        check_answer: AnswerCheck,
        crmops: CrmopsSettings | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        rate_limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
    ) -> VendorTransport:
        """A transport with `crmops` settings' timeout, attempts and rate headroom.

        `rate_limit` is the vendor's requests per second per API; the default limiter
        runs at `crmops.rate_headroom` of it.
        """
        crmops = crmops or CrmopsSettings()
        return cls(
            vendor=vendor,
            base_url=base_url,
            auth=auth,
            check_answer=check_answer,
            rate_limiter=rate_limiter or LocalRateLimiter(rate_limit * crmops.rate_headroom),
            retry=retry or RetryPolicy(attempts=crmops.max_attempts),
            timeout=crmops.http_timeout,
            headers=headers,
            transport=transport,
        )

    async def request(
        self,
        endpoint: Endpoint,
        *,
        params: Params | None = None,
        json: Any = None,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        path_params: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send `endpoint` (retrying what is safe to retry) and return a successful answer.

        `path_params` fill `{name}` placeholders of `endpoint.path` (URL-quoted); the
        template, not the filled path, stays the rate-limit bucket.
        """
        url = _fill_path(endpoint.path, path_params)
        content, content_headers = _body(json, form)
        all_headers = {**content_headers, **(headers or {})}
        policy = self._retry
        # Metrics, a span per attempt and the log context (tools.observability.calls).
        observed = VendorRequest(self.vendor, endpoint.name, endpoint.method, endpoint.path)

        def hook(error: Exception) -> bool | float:
            decision = retry_decision(
                error, idempotent=endpoint.idempotent, wait_max=policy.wait_max
            )
            if decision is not False:
                observed.retrying(error)
                log.warning("%s %s: retrying after %s", self.vendor, endpoint.name, _brief(error))
            return decision

        with observed:
            async for attempt in _stamina().retry_context(
                on=hook,
                attempts=policy.attempts,
                timeout=policy.timeout,
                wait_initial=policy.wait_initial,
                wait_max=policy.wait_max,
                wait_jitter=policy.wait_jitter,
            ):
                with attempt, observed.attempt(attempt.num) as sent:
                    await self._rate_limiter.acquire(endpoint.path)
                    sent.slot_granted()
                    response = await self._send_once(endpoint, params, content, all_headers, url)
                    sent.answered(response.status_code)
                    return response
        raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover

    async def _send_once(
        self,
        endpoint: Endpoint,
        params: Params | None,
        content: bytes | None,
        headers: Mapping[str, str],
        url: str | None = None,
    ) -> httpx.Response:
        try:
            response = await self._http.request(
                endpoint.method,
                url or endpoint.path,
                params=params,
                content=content,
                headers=headers,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise self._unavailable(endpoint, exc, request_sent=False) from exc
        except httpx.TransportError as exc:
            raise self._unavailable(endpoint, exc, request_sent=True) from exc
        self._check_answer(response, endpoint)
        return response

    def _unavailable(
        self, endpoint: Endpoint, exc: httpx.TransportError, *, request_sent: bool
    ) -> VendorUnavailableError:
        if request_sent:
            what = "the connection failed after the request was sent, so the outcome is unknown"
        else:
            what = "the request did not reach the vendor"
        setting, url = f"{self.vendor.upper()}_BASE_URL", shown_url(str(self._http.base_url))
        return VendorUnavailableError(
            f"{self.vendor} {endpoint.name}: {type(exc).__name__} ({what}). "
            f"Check the network and {setting} ({url}).",
            vendor=self.vendor,
            operation=endpoint.name,
            request_sent=request_sent,
            action=f"check {setting} and that this machine reaches it (curl {url})",
        )

    async def aclose(self) -> None:
        await self._http.aclose()


def _fill_path(path: str, path_params: Mapping[str, str] | None) -> str:
    if not path_params:
        return path
    return path.format_map({name: quote(value, safe="") for name, value in path_params.items()})


def _body(json_payload: Any, form: Mapping[str, str] | None) -> tuple[bytes | None, dict[str, str]]:
    if json_payload is not None:
        return encode_json(json_payload), {"Content-Type": "application/json; charset=utf-8"}
    if form is not None:
        encoded = httpx.QueryParams(form).__str__().encode("ascii")
        return encoded, {"Content-Type": "application/x-www-form-urlencoded"}
    return None, {}


def _brief(error: BaseException) -> str:
    if isinstance(error, VendorError):
        return f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
    return type(error).__name__


def read_json(response: httpx.Response, *, vendor: str, operation: str) -> Any:
    """The answer's JSON, or `MalformedResponseError` for an HTML page or broken JSON."""
    try:
        return response.json()
    except ValueError as exc:
        kind = response.headers.get("content-type", "no content type")
        raise MalformedResponseError(
            f"{vendor} {operation}: the answer is not JSON (HTTP {response.status_code}, "
            f"{kind}); a proxy or captive portal may be in the way of "
            f"{vendor.upper()}_BASE_URL ({response.request.url.host})",
            vendor=vendor,
            operation=operation,
            http_status=response.status_code,
            body=response.text,
        ) from exc


def retry_after(response: httpx.Response) -> float | None:
    """The seconds of a `Retry-After` header given in seconds, or None."""
    try:
        seconds = float(response.headers.get("retry-after", ""))
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
