"""The Bangwo8 simulator is as strict as 004: spoken to with a plain HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.vendors.bangwo8 import conftest as bangwo8
from tools.sandbox.bangwo8 import (
    SANDBOX_ACCOUNT,
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_PASSWORD,
    Bangwo8Simulator,
)
from tools.sandbox.simulation import ServedApp, serve
from tools.vendors.bangwo8.auth import basic_header

CLIENT_AUTH = {
    "Authorization": basic_header(SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET).get_secret_value()
}
ACCOUNT_AUTH = {"Authorization": basic_header(SANDBOX_ACCOUNT, SANDBOX_PASSWORD).get_secret_value()}

# The simulator the client tests use too (tests/vendors/bangwo8/conftest.py), not a copy.
clock, sim, served = bangwo8.clock, bangwo8.sim, bangwo8.served


@pytest.fixture
async def http(served: ServedApp) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=served.url) as client:
        yield client


@pytest.mark.parametrize(
    ("headers", "form", "status", "error"),
    [
        (CLIENT_AUTH, {"grant_type": "client_credentials"}, 200, None),
        ({}, {"grant_type": "client_credentials"}, 401, "invalid_client"),
        (ACCOUNT_AUTH, {"grant_type": "client_credentials"}, 401, "invalid_client"),
        (CLIENT_AUTH, {"grant_type": "password"}, 400, "unsupported_grant_type"),
        (CLIENT_AUTH, {}, 400, "invalid_request"),
    ],
)
async def test_token_endpoint(
    http: httpx.AsyncClient,
    headers: dict[str, str],
    form: dict[str, str],
    status: int,
    error: str | None,
) -> None:
    answer = await http.post("/api/token.php", headers=headers, data=form)
    assert answer.status_code == status
    body = answer.json()
    if error is None:
        assert body["token_type"] == "Bearer"
        assert body["expires_in"] == 3600
        bearer = {"Authorization": f"Bearer {body['access_token']}"}
        assert (await http.get("/api/v1/tickets.json", headers=bearer)).status_code == 200
    else:
        assert body["error"] == error


async def test_a_json_token_request_is_invalid(http: httpx.AsyncClient) -> None:
    answer = await http.post(
        "/api/token.php", headers=CLIENT_AUTH, json={"grant_type": "client_credentials"}
    )
    assert answer.json()["error"] == "invalid_request"


async def test_api_refuses_unknown_bearer_tokens(http: httpx.AsyncClient) -> None:
    answer = await http.get("/api/v1/tickets.json", headers={"Authorization": "Bearer nope"})
    assert answer.status_code == 401
    assert answer.json() == {"errcode": "401", "errmsg": "Unauthorized"}


@pytest.mark.parametrize(
    ("body", "errmsg"),
    [
        ({"subject": "x"}, 'the body must be {"ticket": {...}}'),
        (
            {"ticket": {"subject": " ", "ticketReply": {"replyMsg": "m"}}},
            "ticket.subject is required",
        ),
        ({"ticket": {"subject": "s"}}, "ticket.ticketReply.replyMsg is required"),
        (
            {"ticket": {"subject": "s", "ticketReply": {"replyMsg": "m"}, "custom_fields": [1]}},
            "ticket.custom_fields must be a list of {key, value}",
        ),
    ],
)
async def test_create_requires_subject_and_reply(
    http: httpx.AsyncClient, sim: Bangwo8Simulator, body: object, errmsg: str
) -> None:
    answer = await http.post("/api/v1/tickets.json", headers=ACCOUNT_AUTH, json=body)
    assert answer.status_code == 400
    assert answer.json() == {"errcode": "400", "errmsg": errmsg}
    assert sim.tickets == {}


async def test_the_first_reply_is_kept_and_shown_when_the_ticket_is_read(
    http: httpx.AsyncClient,
) -> None:
    # 004's own sample body.
    body = {
        "ticket": {"subject": "产品咨询", "ticketReply": {"replyMsg": "你好,我想咨询下帮我吧产品"}}
    }
    created = await http.post("/api/v1/tickets.json", headers=ACCOUNT_AUTH, json=body)
    ticket_id = created.json()["ticket"]["ticketId"]
    shown = await http.get(f"/api/v1/tickets/{ticket_id}.json", headers=ACCOUNT_AUTH)
    listed = await http.get("/api/v1/tickets.json", headers=ACCOUNT_AUTH)
    [ticket] = shown.json()["ticket"]
    assert ticket["ticketReply"] == {"replyMsg": "你好,我想咨询下帮我吧产品"}
    assert listed.json()["tickets"] == [ticket]


@pytest.mark.parametrize(
    "query",
    [
        {"page": "0"},
        {"per_page": "ten"},
        {"created_start": "2024-04-01"},
        {"updated_end": "2024/04/01 00:00:00"},
        {"created_order": "newest"},
    ],
)
async def test_list_refuses_bad_parameters(http: httpx.AsyncClient, query: dict[str, str]) -> None:
    answer = await http.get("/api/v1/tickets.json", headers=ACCOUNT_AUTH, params=query)
    assert answer.status_code == 400
    assert answer.json()["errcode"] == "400"


async def test_per_page_is_capped_at_100(http: httpx.AsyncClient, sim: Bangwo8Simulator) -> None:
    for _ in range(11):
        sim.seed()
    answer = await http.get(
        "/api/v1/tickets.json", headers=ACCOUNT_AUTH, params={"per_page": "500"}
    )
    body = answer.json()
    assert len(body["tickets"]) == 100
    assert body["count"] == 132
    assert "page=2" in body["next_page"]


async def test_unknown_paths_answer_the_vendors_404(http: httpx.AsyncClient) -> None:
    answer = await http.get("/api/v1/customers.json", headers=ACCOUNT_AUTH)
    assert answer.status_code == 404
    assert answer.json() == {"errcode": "100047", "errmsg": "Invalid resource URI"}


async def test_rate_limit_answer() -> None:
    sim = Bangwo8Simulator(rate_limit=2)
    with serve(sim.app) as limited:
        async with httpx.AsyncClient(base_url=limited.url, headers=ACCOUNT_AUTH) as client:
            answers = [await client.get("/api/v1/tickets.json") for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert answers[2].json() == {"errcode": "429", "errmsg": "Too Many Requests"}
    assert answers[2].headers["retry-after"] == "1"


def test_seed_is_realistic() -> None:
    sim = Bangwo8Simulator()
    sim.seed()
    tickets = list(sim.tickets.values())
    assert len(tickets) == 12
    assert all(any("\u4e00" <= char <= "\u9fff" for char in t["subject"]) for t in tickets)
    assert all(t["created_at"] <= t["updated_at"] for t in tickets)
    assert all(t["ticketReply"]["replyMsg"] for t in tickets)
