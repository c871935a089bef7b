"""The SocialEpoch simulator refuses what the vendor would, with the documented codes."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest

from tests.vendors.socialepoch import conftest as socialepoch
from tests.vendors.socialepoch.conftest import ADMIN, AGENT, API_KEY, TENANT_ID
from tools.sandbox.simulation import ServedApp, serve
from tools.sandbox.socialepoch import SocialEpochSimulator
from tools.vendors.socialepoch.auth import format_create_time, header_token, legacy_token
from tools.vendors.socialepoch.client import BATCH_IMPORT, LEGACY_IMPORT, QUERY

NUMBER = "8618221733141"

# The simulator the client tests use too (tests/vendors/socialepoch/conftest.py), not a copy.
sim, served = socialepoch.sim, socialepoch.served


def signed_headers(
    *, tenant: str = TENANT_ID, key: str = API_KEY, offset: float = 0.0
) -> dict[str, str]:
    timestamp = str(int((time.time() + offset) * 1000))
    return {
        "tenant_id": tenant,
        "timestamp": timestamp,
        "token": header_token(tenant, timestamp, key),
    }


def legacy_body(
    data: Any, *, user: str = ADMIN, key: str = API_KEY, offset: float = 0.0
) -> dict[str, Any]:
    create_time = format_create_time(time.time() + offset)
    return {
        "tenantId": TENANT_ID,
        "userName": user,
        "data": data,
        "token": legacy_token(TENANT_ID, user, create_time, key),
        "createTime": create_time,
    }


async def post(served: ServedApp, path: str, body: Any, headers: dict[str, str]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=served.url) as http:
        response = await http.post(path, json=body, headers=headers)
    assert response.status_code == 200
    answer: dict[str, Any] = response.json()
    return answer


async def put(served: ServedApp, path: str, body: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=served.url) as http:
        response = await http.put(path, json=body)
    assert response.status_code == 200
    answer: dict[str, Any] = response.json()
    return answer


def batch(*records: dict[str, Any]) -> dict[str, Any]:
    return {"tenantId": TENANT_ID, "data": list(records)}


def without(headers: dict[str, str], name: str) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k != name}


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        (lambda h: without(h, "tenant_id"), 523, "tenantId is null"),
        (lambda h: without(h, "timestamp"), 518, "timestamp is null"),
        (lambda h: {**h, "timestamp": "yesterday"}, 519, "timestamp is error"),
        (lambda h: signed_headers(offset=-301), 502, "timestamp timeout"),
        (lambda h: signed_headers(offset=+301), 502, "timestamp timeout"),
        (lambda h: without(h, "token"), 525, "token is null"),
        (lambda h: signed_headers(tenant="99999"), 501, "appSecret error"),
        (lambda h: signed_headers(key="wrong"), 522, "accessToken is error"),
        (lambda h: {**h, "token": h["token"].upper()}, 522, "accessToken is error"),
    ],
)
async def test_header_token_refusals(
    served: ServedApp, change: Any, code: int, message: str
) -> None:
    headers = change(signed_headers())
    answer = await post(served, QUERY.path, [{"whatsApp": NUMBER}], headers)
    assert answer == {"code": code, "message": message, "data": ""}


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        (lambda b: without(b, "tenantId"), 523, "tenantId is null"),
        (lambda b: without(b, "userName"), 524, "userName is null"),
        (lambda b: without(b, "token"), 525, "token is null"),
        (lambda b: without(b, "createTime"), 526, "createTime is null"),
        (lambda b: {**b, "createTime": "2023/06/01 12:12:12"}, 519, "timestamp is error"),
        (lambda b: legacy_body(b["data"], offset=-301), 502, "timestamp timeout"),
        (lambda b: legacy_body(b["data"], key="wrong"), 522, "accessToken is error"),
        (lambda b: legacy_body(b["data"], user="nobody"), 530, "action username error"),
        (lambda b: legacy_body(b["data"], user=AGENT), -1, "Admin Cannot import data"),
        (lambda b: legacy_body([]), 506, "data is empty"),
        (
            lambda b: legacy_body([{"whatsApp": NUMBER, "agentAccount": AGENT}]),
            533,
            "extended field format error",
        ),
    ],
)
async def test_legacy_body_refusals(
    sim: SocialEpochSimulator, served: ServedApp, change: Any, code: int, message: str
) -> None:
    body = change(legacy_body([{"whatsApp": NUMBER}]))
    answer = await put(served, LEGACY_IMPORT.path, body)
    assert answer == {"code": code, "message": message, "data": ""}
    assert sim.customers == {}


@pytest.mark.parametrize("skew", [400.0, -400.0])
async def test_clock_skew_moves_the_timestamp_window_with_the_date_header(
    sim: SocialEpochSimulator, served: ServedApp, skew: float
) -> None:
    sim.faults.clock_skew = skew  # beyond the 300 s window either way
    query = [{"whatsApp": NUMBER}]
    refused = await post(served, QUERY.path, query, signed_headers())
    assert refused == {"code": 502, "message": "timestamp timeout", "data": ""}
    legacy = await put(served, LEGACY_IMPORT.path, legacy_body(query))
    assert legacy["code"] == 502
    async with httpx.AsyncClient(base_url=served.url) as http:
        on_server_time = await http.post(
            QUERY.path, json=query, headers=signed_headers(offset=skew)
        )
    assert on_server_time.json()["code"] == 200
    server_date = parsedate_to_datetime(on_server_time.headers["date"]).timestamp()
    assert abs(server_date - (time.time() + skew)) < 5
    legacy = await put(served, LEGACY_IMPORT.path, legacy_body(query, offset=skew))
    assert legacy["data"][0]["status"] == "created"


async def test_legacy_import_in_the_documented_shape(
    sim: SocialEpochSimulator, served: ServedApp
) -> None:
    record = {
        "whatsApp": "15266667779",
        "friendName": "lee",
        "sex": "male",
        "birthday": "2020/03/08",
    }
    answer = await put(served, LEGACY_IMPORT.path, legacy_body([record]))
    assert answer["code"] == 200
    assert answer["data"] == [{"whatsApp": "15266667779", "status": "created", "reason": ""}]
    assert sim.customers["15266667779"]["friendName"] == "lee"


@pytest.mark.parametrize(
    ("records", "code", "message"),
    [
        ([], 506, "data is empty"),
        (
            [{"whatsApp": f"86138001{n:05d}", "agentAccount": AGENT} for n in range(101)],
            507,
            "data size big",
        ),
        ([{"whatsApp": NUMBER}], 505, "executor is empty"),
        ([{"whatsApp": NUMBER, "agentAccount": "ghost"}], 508, "no exist userName"),
        (
            [{"whatsApp": NUMBER, "agentAccount": AGENT, "vipLevel": "A"}],
            533,
            "extended field format error",
        ),
        (
            [{"whatsApp": NUMBER, "agentAccount": AGENT, "company": {"name": "x"}}],
            533,
            "extended field format error",
        ),
    ],
)
async def test_batch_data_refusals(
    served: ServedApp, records: list[dict[str, Any]], code: int, message: str
) -> None:
    answer = await post(served, BATCH_IMPORT.path, batch(*records), signed_headers())
    assert answer == {"code": code, "message": message, "data": ""}


async def test_batch_body_tenant_must_match(served: ServedApp) -> None:
    body: dict[str, Any] = {"data": [{"whatsApp": NUMBER, "agentAccount": AGENT}]}
    assert (await post(served, BATCH_IMPORT.path, body, signed_headers()))["code"] == 523
    body["tenantId"] = "99999"
    assert (await post(served, BATCH_IMPORT.path, body, signed_headers()))["code"] == 501


async def test_a_bad_record_fails_alone_and_tags_accumulate(
    sim: SocialEpochSimulator, served: ServedApp
) -> None:
    first = batch(
        {"whatsApp": NUMBER, "agentAccount": AGENT, "tabName": "VIP,展会"},
        {"whatsApp": "12345", "agentAccount": AGENT},
        {"whatsApp": "8613800138000", "agentAccount": AGENT, "sex": "other"},
    )
    answer = await post(served, BATCH_IMPORT.path, first, signed_headers())
    assert [r["status"] for r in answer["data"]] == ["created", "failed", "failed"]
    assert "country code" in answer["data"][1]["reason"]
    again = batch(
        {"whatsApp": NUMBER, "agentAccount": AGENT, "tabName": "复购", "cancelTabName": "展会"}
    )
    answer = await post(served, BATCH_IMPORT.path, again, signed_headers())
    assert answer["data"][0]["status"] == "updated"
    assert list(sim.customers) == [NUMBER]
    assert sim.customers[NUMBER]["tabName"] == "VIP,复购"


async def test_query_returns_stored_customers_only(
    sim: SocialEpochSimulator, served: ServedApp
) -> None:
    sim.seed()
    body = [{"whatsApp": "8613800138000"}, {"whatsApp": "8613900000000"}]
    answer = await post(served, QUERY.path, body, signed_headers())
    assert [c["friendName"] for c in answer["data"]] == ["王芳"]
    assert (await post(served, QUERY.path, [], signed_headers()))["code"] == 506


async def test_seed_fills_realistic_customers_owned_by_an_agent(sim: SocialEpochSimulator) -> None:
    sim.seed()
    assert len(sim.customers) >= 5
    assert {c["agentAccount"] for c in sim.customers.values()} == {AGENT}
    assert sim.customers["8613800138000"]["company"] == "上海云启贸易有限公司"


async def test_rate_limit_answer_is_429_with_retry_after(
    sim: SocialEpochSimulator, served: ServedApp
) -> None:
    sim.faults.rate_limit_next = 1
    async with httpx.AsyncClient(base_url=served.url) as http:
        response = await http.post(
            QUERY.path, json=[{"whatsApp": NUMBER}], headers=signed_headers()
        )
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert response.json() == {"code": 429, "message": "Too Many Requests", "data": ""}


async def test_a_body_that_is_not_json_is_a_bad_request(served: ServedApp) -> None:
    async with httpx.AsyncClient(base_url=served.url) as http:
        response = await http.put(LEGACY_IMPORT.path, content=b"tenantId=1")
    assert response.status_code == 400
    assert response.json()["code"] == 400


def test_the_simulator_does_not_show_its_key(sim: SocialEpochSimulator) -> None:
    assert API_KEY not in repr(sim)


async def test_the_rate_limit_is_per_api() -> None:
    sim = SocialEpochSimulator(tenant_id=TENANT_ID, api_key=API_KEY, rate_limit=3)
    with serve(sim.app) as served:
        async with httpx.AsyncClient(base_url=served.url) as http:
            codes = [
                (
                    await http.post(
                        QUERY.path, json=[{"whatsApp": NUMBER}], headers=signed_headers()
                    )
                ).status_code
                for _ in range(5)
            ]
            other = await http.put(LEGACY_IMPORT.path, json=legacy_body([{"whatsApp": NUMBER}]))
    assert codes == [200, 200, 200, 429, 429]
    assert other.status_code == 200
