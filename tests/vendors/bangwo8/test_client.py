"""The Bangwo8 client against the Bangwo8 simulator, over real HTTP on loopback."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr
from starlette.types import Receive, Scope, Send

from tests.vendors.bangwo8.conftest import FakeClock, MakeClient, basic_settings, oauth_settings
from tools.errors import (
    AuthenticationError,
    ConfigurationError,
    InputError,
    MalformedResponseError,
    NotFoundError,
    RateLimitedError,
    ServerError,
)
from tools.sandbox.bangwo8 import SANDBOX_CLIENT_SECRET, SANDBOX_PASSWORD, Bangwo8Simulator
from tools.sandbox.simulation import ServedApp, serve
from tools.settings import Bangwo8Settings
from tools.transport import RetryPolicy
from tools.vendors.bangwo8.client import Bangwo8Client
from tools.vendors.bangwo8.models import CHINA_TIME, TicketCreate, TicketFilters

TICKETS = "/api/v1/tickets.json"
TOKEN = "/api/token.php"
CONSULT = TicketCreate(subject="产品咨询", message="你好,我想咨询下帮我吧产品")


# --- Basic auth ---------------------------------------------------------------------------


async def test_basic_auth_creates_shows_and_lists_a_ticket(
    sim: Bangwo8Simulator, basic_client: Bangwo8Client
) -> None:
    created = await basic_client.create_ticket(
        {"subject": "发票开具申请", "message": "请开具三月发票", "priorityLevel": 2}
    )
    shown = await basic_client.get_ticket(created.id)
    page = await basic_client.list_tickets()

    assert created.subject == "发票开具申请"
    assert created.priority == 2
    assert shown.id == created.id
    assert shown.created_at is not None
    assert shown.created_at.tzinfo is not None
    assert [ticket.id for ticket in page.tickets] == [created.id]
    assert sim.counters["token_requests"] == 0


async def test_wrong_password_is_an_authentication_error_without_the_password(
    make_client: MakeClient, served: ServedApp
) -> None:
    client = make_client(basic_settings(served.url, SecretStr("not-the-password-42")))
    with pytest.raises(AuthenticationError) as caught:
        await client.list_tickets()
    assert caught.value.http_status == 401
    assert "not-the-password-42" not in f"{caught.value} {caught.value!r} {caught.value.body}"


def test_missing_credentials_name_the_variables() -> None:
    with pytest.raises(ConfigurationError, match="BANGWO8_PASSWORD"):
        Bangwo8Client(Bangwo8Settings(account="someone"))


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({}, "set BANGWO8_CLIENT_ID, BANGWO8_CLIENT_SECRET (environment or .env); or, without "
         "an OAuth client, BANGWO8_ACCOUNT and BANGWO8_PASSWORD for HTTP Basic auth"),
        ({"client_id": "c-1"}, "set BANGWO8_CLIENT_SECRET (environment or .env)"),
        ({"password": SecretStr("p-1")}, "set BANGWO8_ACCOUNT (environment or .env)"),
        # Both begun: the OAuth client is the one to finish.
        ({"account": "a-1", "client_secret": SecretStr("s-1")}, "set BANGWO8_CLIENT_ID (env"),
    ],
)  # fmt: skip
def test_the_oauth_client_is_named_first_as_the_preferred_credential(
    given: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Bangwo8Client(Bangwo8Settings(_env_file=None, **given))
    assert named in str(caught.value)
    assert caught.value.action.startswith("set the variables named")
    assert "p-1" not in str(caught.value)
    assert "s-1" not in str(caught.value)


# --- OAuth2 -------------------------------------------------------------------------------


async def test_one_token_serves_many_calls(
    sim: Bangwo8Simulator, oauth_client: Bangwo8Client
) -> None:
    for _ in range(5):
        await oauth_client.list_tickets()
    await oauth_client.create_ticket(CONSULT)
    assert sim.counters["token_requests"] == 1
    assert sim.counters["unauthorized"] == 0


async def test_token_is_refreshed_before_it_expires(
    clock: FakeClock, make_client: MakeClient, served: ServedApp, sim: Bangwo8Simulator
) -> None:
    sim.expires_in = 100  # refreshed at half its lifetime, since that is under 60 s early
    client = make_client(oauth_settings(served.url))
    await client.list_tickets()
    clock.advance(49)
    await client.list_tickets()
    assert sim.counters["token_requests"] == 1
    clock.advance(2)
    await client.list_tickets()
    assert sim.counters["token_requests"] == 2
    assert sim.counters["unauthorized"] == 0  # never sent an expired token


async def test_a_revoked_token_is_replaced_once_and_the_call_succeeds(
    sim: Bangwo8Simulator, oauth_client: Bangwo8Client
) -> None:
    await oauth_client.list_tickets()
    sim.expire_tokens()
    created = await oauth_client.create_ticket(CONSULT)
    assert created.id in sim.tickets
    assert sim.counters["unauthorized"] == 1
    assert sim.counters["token_requests"] == 2
    assert len(sim.tickets) == 1


async def test_a_second_401_after_a_fresh_token_is_an_error_not_a_loop(
    make_client: MakeClient, sim: Bangwo8Simulator
) -> None:
    async def revoke_before_each_api_call(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/v1/"):
            sim.expire_tokens()
        await sim.app(scope, receive, send)

    with serve(revoke_before_each_api_call) as served:
        client = make_client(oauth_settings(served.url))
        with pytest.raises(AuthenticationError):
            await client.list_tickets()
    assert sim.counters["token_requests"] == 2
    assert sim.counters["unauthorized"] == 2


async def test_invalid_client_secret_is_an_authentication_error_without_the_secret(
    make_client: MakeClient, served: ServedApp, sim: Bangwo8Simulator
) -> None:
    client = make_client(oauth_settings(served.url, SecretStr("wrong-secret-7f3a")))
    with pytest.raises(AuthenticationError) as caught:
        await client.list_tickets()
    error = caught.value
    assert error.code == "invalid_client"
    assert error.operation == "token"
    assert "wrong-secret-7f3a" not in f"{error} {error!r} {error.body}"
    assert sim.counters["token_requests"] == 1  # a refusal is not retried


async def test_concurrent_calls_with_a_cold_cache_share_one_token_fetch(
    sim: Bangwo8Simulator, oauth_client: Bangwo8Client
) -> None:
    pages = await asyncio.gather(*(oauth_client.list_tickets() for _ in range(20)))
    assert len(pages) == 20
    assert sim.counters["token_requests"] == 1


async def test_token_endpoint_5xx_is_retried(
    sim: Bangwo8Simulator, oauth_client: Bangwo8Client
) -> None:
    sim.faults.path = TOKEN
    sim.faults.fail_next = 1
    await oauth_client.list_tickets()
    assert sim.counters["failed"] == 1
    assert sim.counters["tokens_issued"] == 1


# --- idempotent create --------------------------------------------------------------------


async def test_a_create_whose_answer_was_lost_is_retried_without_a_second_ticket(
    sim: Bangwo8Simulator, oauth_client: Bangwo8Client
) -> None:
    sim.faults.path = TICKETS
    sim.faults.drop_next = 2
    sim.faults.drop_after_processing = True
    created = await oauth_client.create_ticket(CONSULT)
    assert list(sim.tickets) == [created.id]
    assert sim.counters["duplicates_dropped"] == 2
    sent = sim.create_request_ids
    assert len(sent) == 3
    assert sent[0]
    assert set(sent) == {sent[0]}  # one Requestid, the same on every attempt


async def test_each_logical_create_has_its_own_request_id(
    sim: Bangwo8Simulator, basic_client: Bangwo8Client
) -> None:
    await basic_client.create_ticket(CONSULT)
    await basic_client.create_ticket(CONSULT)
    assert len(set(sim.create_request_ids)) == 2
    assert len(sim.tickets) == 2


async def test_a_given_request_id_is_sent_and_reported_in_errors(
    sim: Bangwo8Simulator, basic_client: Bangwo8Client, no_wait_retry: RetryPolicy
) -> None:
    await basic_client.create_ticket(CONSULT, request_id="crm-42")
    sim.faults.fail_next = 10
    with pytest.raises(ServerError) as caught:
        await basic_client.create_ticket(CONSULT, request_id="crm-43")
    assert sim.create_request_ids == ["crm-42"]
    assert caught.value.request_id == "crm-43"
    assert sim.counters["failed"] == no_wait_retry.attempts


async def test_a_repeated_request_id_returns_the_first_ticket(
    sim: Bangwo8Simulator, basic_client: Bangwo8Client
) -> None:
    first = await basic_client.create_ticket(CONSULT, request_id="same")
    again = await basic_client.create_ticket(
        TicketCreate(subject="别的", message="x"), request_id="same"
    )
    assert again.id == first.id
    assert again.subject == "产品咨询"
    assert len(sim.tickets) == 1


# --- retries ------------------------------------------------------------------------------


async def test_5xx_then_success(sim: Bangwo8Simulator, basic_client: Bangwo8Client) -> None:
    sim.faults.fail_next = 2
    page = await basic_client.list_tickets()
    assert page.count == 0
    assert sim.counters["failed"] == 2


async def test_rate_limit_answers_are_retried(
    sim: Bangwo8Simulator, basic_client: Bangwo8Client
) -> None:
    sim.faults.rate_limit_next = 2
    await basic_client.create_ticket(CONSULT)
    assert sim.counters["rate_limited"] == 2
    assert len(sim.tickets) == 1


async def test_rate_limit_retries_are_bounded(
    sim: Bangwo8Simulator, basic_client: Bangwo8Client, no_wait_retry: RetryPolicy
) -> None:
    sim.faults.rate_limit_next = 10
    with pytest.raises(RateLimitedError) as caught:
        await basic_client.list_tickets()
    assert caught.value.retry_after == 1.0
    assert caught.value.code == "429"
    assert sim.counters["requests"] == no_wait_retry.attempts


async def test_an_html_answer_is_malformed(
    sim: Bangwo8Simulator, basic_client: Bangwo8Client
) -> None:
    sim.faults.malformed_next = 10
    with pytest.raises(MalformedResponseError, match="not JSON"):
        await basic_client.get_ticket(1)


# --- reading ------------------------------------------------------------------------------


async def test_pages_cover_every_ticket_once(
    sim: Bangwo8Simulator, basic_client: Bangwo8Client, served: ServedApp
) -> None:
    sim.seed()
    first = await basic_client.list_tickets(per_page=5)
    second = await basic_client.list_tickets(page=2, per_page=5)
    last = await basic_client.list_tickets(page=3, per_page=5)

    ids = [ticket.id for page in (first, second, last) for ticket in page.tickets]
    assert sorted(ids) == sorted(sim.tickets)
    assert [len(page.tickets) for page in (first, second, last)] == [5, 5, 2]
    assert first.count == last.count == 12
    assert first.previous_page is None
    assert last.next_page is None
    assert first.next_page is not None
    assert first.next_page.startswith(f"{served.url}/api/v1/tickets.json?")
    assert "page=2" in first.next_page
    assert "per_page=5" in first.next_page


async def test_filters_and_order(
    clock: FakeClock, sim: Bangwo8Simulator, basic_client: Bangwo8Client
) -> None:
    sim.seed()  # created 14, 12, 11, 9, 8, 6, 5, 4, 3, 2, 1 and 0.2 days ago
    now = datetime.fromtimestamp(clock(), CHINA_TIME)
    six_days_ago = (now - timedelta(days=6)).date()
    filters = TicketFilters(created_start=six_days_ago, created_end=now, updated_order="desc")
    page = await basic_client.list_tickets(filters=filters)
    assert page.count == len(page.tickets) == 7  # 6, 5, 4, 3, 2, 1 and 0.2 days ago
    assert all(
        ticket.created_at and ticket.created_at.date() >= six_days_ago for ticket in page.tickets
    )
    updated = [ticket.updated_at for ticket in page.tickets if ticket.updated_at is not None]
    assert len(updated) == 7
    assert updated == sorted(updated, reverse=True)


async def test_unknown_ticket_is_not_found(basic_client: Bangwo8Client) -> None:
    with pytest.raises(NotFoundError) as caught:
        await basic_client.get_ticket(99)
    assert caught.value.code == "100047"
    assert caught.value.http_status == 404


# --- input checked before any request -----------------------------------------------------


async def test_blank_subject_is_refused_before_any_request(
    sim: Bangwo8Simulator, basic_client: Bangwo8Client
) -> None:
    with pytest.raises(InputError) as caught:
        await basic_client.create_ticket({"subject": "   ", "message": "有问题"})
    assert [problem.field for problem in caught.value.problems] == ["subject"]
    assert "title" in str(caught.value)
    assert sim.counters["requests"] == 0


@pytest.mark.parametrize(
    ("page", "per_page", "fields"),
    [(0, 10, ["page"]), (1, 101, ["per_page"]), (0, 0, ["page", "per_page"])],
)
async def test_bad_paging_is_refused_before_any_request(
    sim: Bangwo8Simulator, basic_client: Bangwo8Client, page: int, per_page: int, fields: list[str]
) -> None:
    with pytest.raises(InputError) as caught:
        await basic_client.list_tickets(page=page, per_page=per_page)
    assert [problem.field for problem in caught.value.problems] == fields
    assert sim.counters["requests"] == 0


@pytest.mark.parametrize("ticket_id", [0, -3, True])
async def test_bad_ticket_id_is_refused_before_any_request(
    sim: Bangwo8Simulator, basic_client: Bangwo8Client, ticket_id: int
) -> None:
    with pytest.raises(InputError, match="ticket_id"):
        await basic_client.get_ticket(ticket_id)
    assert sim.counters["requests"] == 0


@pytest.mark.parametrize("request_id", ["", "  ", "x" * 65, "请求"])
async def test_bad_request_id_is_refused_before_any_request(
    sim: Bangwo8Simulator, basic_client: Bangwo8Client, request_id: str
) -> None:
    with pytest.raises(InputError, match="request_id"):
        await basic_client.create_ticket(CONSULT, request_id=request_id)
    assert sim.counters["requests"] == 0


# --- secrets ------------------------------------------------------------------------------


async def test_secrets_stay_out_of_reprs_and_errors(
    make_client: MakeClient, served: ServedApp, sim: Bangwo8Simulator
) -> None:
    secrets = [SANDBOX_PASSWORD.get_secret_value(), SANDBOX_CLIENT_SECRET.get_secret_value()]
    oauth = make_client(oauth_settings(served.url))
    basic = make_client(basic_settings(served.url))
    await oauth.list_tickets()
    token = next(iter(sim._tokens))
    texts = [repr(oauth._transport._http.auth), repr(basic._transport._http.auth)]
    texts += [repr(oauth_settings(served.url)), repr(basic_settings(served.url))]
    sim.faults.fail_next = 10
    for client in (oauth, basic):
        with pytest.raises(ServerError) as caught:
            await client.list_tickets()
        texts += [str(caught.value), repr(caught.value), caught.value.body]
    for text in texts:
        for secret in [*secrets, token]:
            assert secret not in text
