"""The Bangwo8 client: create, list and show tickets (004, REST v1)::

    async with Bangwo8Client(settings.bangwo8, crmops=settings.crmops) as bangwo8:
        ticket = await bangwo8.create_ticket({"subject": "产品咨询", "message": "你好"})
        page = await bangwo8.list_tickets(per_page=50, filters=TicketFilters(updated_order="desc"))

OAuth2 client credentials are used when `BANGWO8_CLIENT_ID`/`BANGWO8_CLIENT_SECRET` are set,
else Basic `BANGWO8_ACCOUNT`/`BANGWO8_PASSWORD`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import httpx
from pydantic import ValidationError

from tools.aio import AsyncClosing
from tools.errors import InputError, MalformedResponseError, Problem
from tools.settings import Bangwo8Settings, CrmopsSettings
from tools.transport import (
    Endpoint,
    RateLimiter,
    RetryPolicy,
    VendorTransport,
    read_json,
)
from tools.vendors.bangwo8.auth import Bangwo8BasicAuth, Bangwo8OAuth, TokenCache
from tools.vendors.bangwo8.errors import REQUEST_ID_HEADER, VENDOR, check_answer
from tools.vendors.bangwo8.models import (
    PER_PAGE_MAX,
    Ticket,
    TicketCreate,
    TicketFilters,
    TicketPage,
    validate_ticket,
)

TOKEN_PATH = "/api/token.php"  # noqa: S105 - a URL path, not a secret
# README: the server drops a request whose `Requestid` it has seen, so a create that always
# carries one (made once, before the retries) is safe to retry.
CREATE_TICKET = Endpoint("create_ticket", "POST", "/api/v1/tickets.json", idempotent=True)
LIST_TICKETS = Endpoint("list_tickets", "GET", "/api/v1/tickets.json", idempotent=True)
SHOW_TICKET = Endpoint("get_ticket", "GET", "/api/v1/tickets/{ticket_id}.json", idempotent=True)

REQUEST_ID_MAX = 64

Answer = TypeVar("Answer", Ticket, TicketPage)


class Bangwo8Client(AsyncClosing):
    """Async Bangwo8 client owning one connection pool; use it as `async with`."""

    def __init__(
        self,
        settings: Bangwo8Settings,
        *,
        crmops: CrmopsSettings | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        rate_limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        token_cache: TokenCache | None = None,
    ) -> None:
        settings.require()
        self._transport = VendorTransport.configured(
            vendor=VENDOR,
            base_url=settings.url,
            rate_limit=settings.rate_limit,
            auth=_auth(settings, clock, token_cache),
            check_answer=check_answer,
            crmops=crmops,
            headers={"Accept": "application/json"},
            transport=transport,
            rate_limiter=rate_limiter,
            retry=retry,
        )

    async def create_ticket(
        self, ticket: TicketCreate | Mapping[str, Any], *, request_id: str | None = None
    ) -> Ticket:
        """Create one ticket; `InputError` before any request if it is invalid.

        `request_id` (default: a new uuid4) is sent as `Requestid` on every attempt, so a
        retry after a lost answer does not create a second ticket. Pass your own to make a
        create safe to repeat across runs.
        """
        valid = validate_ticket(ticket)
        header = _request_id(request_id)
        response = await self._transport.request(
            CREATE_TICKET, json=valid.wire(), headers={REQUEST_ID_HEADER: header}
        )
        return _ticket_of(response, CREATE_TICKET)

    async def list_tickets(
        self, *, page: int = 1, per_page: int = PER_PAGE_MAX, filters: TicketFilters | None = None
    ) -> TicketPage:
        """One page of tickets (`page` from 1, `per_page` 1-100), optionally filtered."""
        _check_page(page, per_page)
        params = {"page": str(page), "per_page": str(per_page)}
        params |= filters.params() if filters is not None else {}
        response = await self._transport.request(LIST_TICKETS, params=params)
        body = _json_of(response, LIST_TICKETS)
        return _parse(TicketPage, body, response, LIST_TICKETS)

    async def get_ticket(self, ticket_id: int) -> Ticket:
        """The ticket with this id; `NotFoundError` when there is none."""
        if isinstance(ticket_id, bool) or not isinstance(ticket_id, int) or ticket_id < 1:
            problem = Problem("ticket_id", f"{ticket_id!r} is not a ticket id: give a number >= 1")
            raise InputError([problem])
        response = await self._transport.request(
            SHOW_TICKET, path_params={"ticket_id": str(ticket_id)}
        )
        return _ticket_of(response, SHOW_TICKET)

    async def aclose(self) -> None:
        await self._transport.aclose()


def _auth(
    settings: Bangwo8Settings, clock: Callable[[], float], cache: TokenCache | None = None
) -> httpx.Auth:
    if settings.uses_oauth and settings.client_id and settings.client_secret:
        token_url = settings.url.rstrip("/") + TOKEN_PATH
        return Bangwo8OAuth(settings.client_id, settings.client_secret, token_url, clock, cache)
    if settings.account and settings.password:
        return Bangwo8BasicAuth(settings.account, settings.password)
    raise AssertionError("unreachable: settings.require() passed")  # pragma: no cover


def _request_id(given: str | None) -> str:
    if given is None:
        return str(uuid.uuid4())
    text = given.strip()
    if not text or len(text) > REQUEST_ID_MAX or not text.isascii() or not text.isprintable():
        problem = Problem(
            "request_id",
            f"must be 1-{REQUEST_ID_MAX} printable ASCII characters (e.g. a uuid4); "
            "leave it out to get one",
        )
        raise InputError([problem])
    return text


def _check_page(page: int, per_page: int) -> None:
    problems = []
    if page < 1:
        problems.append(Problem("page", f"{page} is below 1: pages count from 1"))
    if not 1 <= per_page <= PER_PAGE_MAX:
        problems.append(Problem("per_page", f"{per_page} is outside 1-{PER_PAGE_MAX}"))
    if problems:
        raise InputError(problems)


def _json_of(response: httpx.Response, endpoint: Endpoint) -> Any:
    return read_json(response, vendor=VENDOR, operation=endpoint.name)


def _ticket_of(response: httpx.Response, endpoint: Endpoint) -> Ticket:
    """The ticket of an answer: ``{"ticket": {...}}``, or ``{"ticket": [{...}]}`` (show)."""
    body = _json_of(response, endpoint)
    ticket = body.get("ticket") if isinstance(body, dict) else None
    # Public integrations read the show answer as a one-element list (`ticket.first`).
    if isinstance(ticket, list) and len(ticket) == 1:
        ticket = ticket[0]
    return _parse(Ticket, ticket, response, endpoint)


def _parse(model: type[Answer], data: Any, response: httpx.Response, endpoint: Endpoint) -> Answer:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise MalformedResponseError(
            f"{VENDOR} {endpoint.name}: the answer is not a {model.__name__} "
            f"({exc.error_count()} problem(s), first: {exc.errors()[0]['msg']})",
            vendor=VENDOR,
            operation=endpoint.name,
            http_status=response.status_code,
            body=response.text,
        ) from exc
