"""Bangwo8's two schemes (004 "开发向导"), as `httpx.Auth` signers::

    auth = Bangwo8BasicAuth("osptest", SecretStr("..."))                 # account:password
    auth = Bangwo8OAuth("id", SecretStr("..."), "https://www.bangwo8.com/api/token.php")

`Bangwo8OAuth` fetches an OAuth2 client-credentials token through the same client (the token
request is yielded from the auth flow, so it shares the connection pool and timeouts), keeps
it until shortly before it expires, shares one fetch among concurrent requests, and on a 401
fetches a new token once and resends. It works with `httpx.AsyncClient` only.

Where the token is kept is a `TokenCache`: in this process by default, in Redis for
replicas (`tools.storage.redis.RedisTokenCache`) so they share one token.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import time
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass
from typing import Protocol

import httpx
from pydantic import SecretStr, ValidationError

from tools.errors import MalformedResponseError
from tools.vendors.bangwo8.errors import TOKEN_OPERATION, VENDOR, token_error
from tools.vendors.bangwo8.models import TokenAnswer

Clock = Callable[[], float]

# 004 says only "fetch before expiry": refresh a minute early, or at half the lifetime when
# that comes first, so a token never expires between our check and the vendor's.
REFRESH_MARGIN = 60.0


def basic_header(user: str, secret: SecretStr) -> SecretStr:
    """`Basic base64(user:secret)` over UTF-8 (004's C# sample), kept secret."""
    raw = f"{user}:{secret.get_secret_value()}".encode()
    return SecretStr("Basic " + base64.b64encode(raw).decode("ascii"))


def basic_header_matches(header: str | None, user: str, secret: SecretStr) -> bool:
    """Server side (the simulator): whether `header` carries exactly `user:secret`."""
    expected = basic_header(user, secret).get_secret_value().encode()
    return header is not None and hmac.compare_digest(header.encode(), expected)


def bearer_token(header: str | None) -> str | None:
    """Server side (the simulator): the token of an `Authorization: Bearer ...` header."""
    scheme, _, token = (header or "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


class Bangwo8BasicAuth(httpx.Auth):
    """HTTP Basic with the Bangwo8 account and password."""

    def __init__(self, account: str, password: SecretStr) -> None:
        self._account = account
        self._header = basic_header(account, password)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header.get_secret_value()
        yield request

    def __repr__(self) -> str:
        return f"Bangwo8BasicAuth(account={self._account!r})"


@dataclass(frozen=True)
class CachedToken:
    """A bearer token and when (the auth's clock, epoch seconds) to fetch the next one."""

    value: SecretStr
    refresh_at: float


class TokenCache(Protocol):
    """Where `Bangwo8OAuth` keeps its token; one cache per client id."""

    async def get(self) -> CachedToken | None:
        """The token, or None when there is none (or it is due for a refresh)."""
        ...

    async def put(self, token: CachedToken) -> None:
        """Keep `token` until its `refresh_at`."""
        ...


class MemoryTokenCache:
    """The default `TokenCache`: this process only."""

    def __init__(self) -> None:
        self._token: CachedToken | None = None

    async def get(self) -> CachedToken | None:
        return self._token

    async def put(self, token: CachedToken) -> None:
        self._token = token


class Bangwo8OAuth(httpx.Auth):
    """OAuth2 client credentials: a cached Bearer token, fetched from `token_url` on demand."""

    def __init__(
        self,
        client_id: str,
        client_secret: SecretStr,
        token_url: str,
        clock: Clock = time.time,
        cache: TokenCache | None = None,
    ) -> None:
        self._client_id = client_id
        self._client_header = basic_header(client_id, client_secret)
        self._token_url = token_url
        self._clock = clock
        self._cache: TokenCache = cache or MemoryTokenCache()
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"Bangwo8OAuth(client_id={self._client_id!r}, token_url={self._token_url!r})"

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("Bangwo8OAuth works with httpx.AsyncClient only")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        await request.aread()  # the body may be sent twice (after a 401)
        refused: CachedToken | None = None
        for _ in range(2):
            async with self._lock:  # one fetch at a time; the others then reuse its token
                token = await self._cache.get()
                if token is None or token == refused or self._clock() >= token.refresh_at:
                    sent_at = self._clock()
                    answer = yield self._token_request(request)
                    await answer.aread()
                    token = _read_token(answer, sent_at)
                    await self._cache.put(token)
            request.headers["Authorization"] = f"Bearer {token.value.get_secret_value()}"
            response = yield request
            # 004: no refresh token; a 401 means the token was revoked or expired early.
            if response.status_code != 401:
                return
            refused = token

    def _token_request(self, request: httpx.Request) -> httpx.Request:
        return httpx.Request(
            "POST",
            self._token_url,
            headers={
                "Authorization": self._client_header.get_secret_value(),
                "Accept": "application/json",
            },
            data={"grant_type": "client_credentials"},
            extensions=dict(request.extensions),  # the client's timeouts
        )


def _read_token(answer: httpx.Response, sent_at: float) -> CachedToken:
    if not answer.is_success:
        raise token_error(answer)
    try:
        token = TokenAnswer.model_validate_json(answer.content)
    except ValidationError as exc:
        raise MalformedResponseError(
            f"{VENDOR} {TOKEN_OPERATION}: the answer is not "
            '{"access_token", "expires_in", "token_type": "Bearer"}',
            vendor=VENDOR,
            operation=TOKEN_OPERATION,
            http_status=answer.status_code,
            body="",  # it may hold a token
        ) from exc
    margin = min(REFRESH_MARGIN, token.expires_in / 2)
    return CachedToken(value=token.access_token, refresh_at=sent_at + token.expires_in - margin)
