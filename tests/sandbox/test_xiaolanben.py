"""The Xiaolanben simulator is as strict as 003: raw HTTP, signed by hand where it matters."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tests.vendors.xiaolanben import conftest as xiaolanben
from tests.vendors.xiaolanben.conftest import COMPANY_ID, SIGN_KEY
from tools.sandbox.simulation import ServedApp, serve
from tools.sandbox.xiaolanben import (
    IMPORT_MANY_PATH,
    IMPORT_ONE_PATH,
    NO_SIGNATURE,
    REPLAYED,
    STAFF_PATH,
    UNAUTHENTICATED,
    XiaolanbenSimulator,
)
from tools.vendors.xiaolanben.auth import EXPIRED, XiaolanbenAuth, sign

# The seeded simulator the client tests use too (tests/vendors/xiaolanben/conftest.py).
sim, served = xiaolanben.sim, xiaolanben.served


@pytest.fixture
async def http(served: ServedApp) -> AsyncIterator[httpx.AsyncClient]:
    """A plain client with the companyId header and no signer."""
    async with httpx.AsyncClient(base_url=served.url, headers={"companyId": COMPANY_ID}) as http:
        yield http


def signed_query(pairs: list[tuple[str, str]], body: str | None, t: int | None = None) -> str:
    """A query string signed by hand: the pairs as given (blanks kept), then h_t and h_sign."""
    t = t if t is not None else int(time.time() * 1000)
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    signature = sign(SIGN_KEY, grouped, body, t)
    return str(httpx.QueryParams([*pairs, ("h_t", str(t)), ("h_sign", signature)]))


def error_of(response: httpx.Response) -> tuple[int, Any, str]:
    body = response.json()
    assert set(body) == {"trackingId", "errors"}
    [error] = body["errors"]
    return response.status_code, error["code"], error["message"]


AUTH = XiaolanbenAuth(SecretStr(SIGN_KEY))


async def test_missing_signature_is_403(http: httpx.AsyncClient) -> None:
    answer = await http.get(STAFF_PATH, params={"pageIndex": 1, "pageSize": 10})
    assert error_of(answer) == (403, 403, NO_SIGNATURE)
    only_t = await http.get(STAFF_PATH, params={"pageIndex": 1, "h_t": "1"})
    assert error_of(only_t) == (403, 403, NO_SIGNATURE)


@pytest.mark.parametrize("offset_ms", [-10_500, 10_500])
async def test_h_t_outside_ten_seconds_is_403(http: httpx.AsyncClient, offset_ms: int) -> None:
    t = int(time.time() * 1000) + offset_ms
    query = signed_query([("pageIndex", "1"), ("pageSize", "10")], None, t)
    answer = await http.get(f"{STAFF_PATH}?{query}")
    assert error_of(answer) == (403, 403, EXPIRED)


async def test_h_t_just_inside_the_window_is_accepted(http: httpx.AsyncClient) -> None:
    t = int(time.time() * 1000) - 9_000
    query = signed_query([("pageIndex", "1"), ("pageSize", "10")], None, t)
    assert (await http.get(f"{STAFF_PATH}?{query}")).status_code == 200


async def test_wrong_or_missing_company_is_401(served: ServedApp) -> None:
    params = {"pageIndex": 1, "pageSize": 10}
    for headers in ({}, {"companyId": "999"}):
        async with httpx.AsyncClient(base_url=served.url, headers=headers, auth=AUTH) as http:
            answer = await http.get(STAFF_PATH, params=params)
        assert error_of(answer) == (401, 401, UNAUTHENTICATED)


async def test_wrong_signature_is_401(http: httpx.AsyncClient) -> None:
    query = signed_query([("pageIndex", "1"), ("pageSize", "10")], None)
    tampered = query.replace("pageSize=10", "pageSize=11")
    assert error_of(await http.get(f"{STAFF_PATH}?{tampered}")) == (401, 401, UNAUTHENTICATED)


async def test_a_tampered_body_is_401(http: httpx.AsyncClient) -> None:
    body = '{"customerName":"甲"}'
    query = signed_query([], body)
    answer = await http.post(f"{IMPORT_ONE_PATH}?{query}", content='{"customerName":"乙"}')
    assert error_of(answer) == (401, 401, UNAUTHENTICATED)


async def test_replay_is_refused_only_after_a_valid_signature(http: httpx.AsyncClient) -> None:
    query = signed_query([("pageIndex", "1"), ("pageSize", "10")], None)
    assert (await http.get(f"{STAFF_PATH}?{query}")).status_code == 200
    assert error_of(await http.get(f"{STAFF_PATH}?{query}")) == (403, 403, REPLAYED)


async def test_replay_window_expires() -> None:
    now = [time.time()]
    sim = XiaolanbenSimulator(company_id="1", sign_key="k", clock=lambda: now[0])
    with serve(sim.app) as served:
        t = int(now[0] * 1000)
        signature = sign("k", {"pageIndex": "1", "pageSize": "2"}, None, t)
        url = f"{served.url}{STAFF_PATH}?pageIndex=1&pageSize=2&h_t={t}&h_sign={signature}"
        async with httpx.AsyncClient(headers={"companyId": "1"}) as http:
            assert (await http.get(url)).status_code == 200
            now[0] += 5
            assert (await http.get(url)).status_code == 403
            now[0] += 5.5  # h_t is now too old, and the replay guard has forgotten it
            assert error_of(await http.get(url))[2] == EXPIRED


async def test_signature_is_checked_on_the_raw_query_with_repeated_keys(
    http: httpx.AsyncClient,
) -> None:
    pairs = [("pageSize", "10"), ("search", "磊"), ("pageIndex", "1"), ("x", "b"), ("x", "a")]
    query = signed_query(pairs, None)
    assert "x=b&x=a" in query
    answer = await http.get(f"{STAFF_PATH}?{query}")
    assert answer.status_code == 200
    assert len(answer.json()) == 3


async def test_an_empty_parameter_is_verified_the_signutil_way(http: httpx.AsyncClient) -> None:
    # 003's SignUtil signs `search=`; a signer that left it out would be refused.
    query = signed_query([("pageIndex", "1"), ("pageSize", "10"), ("search", "")], None)
    assert (await http.get(f"{STAFF_PATH}?{query}")).status_code == 200
    t = int(time.time() * 1000) + 1
    left_out = sign(SIGN_KEY, {"pageIndex": "1", "pageSize": "10"}, None, t)
    url = f"{STAFF_PATH}?pageIndex=1&pageSize=10&search=&h_t={t}&h_sign={left_out}"
    assert error_of(await http.get(url)) == (401, 401, UNAUTHENTICATED)


async def post_json(
    http: httpx.AsyncClient, path: str, payload: Any, **params: str
) -> httpx.Response:
    body = json.dumps(payload, ensure_ascii=False)
    return await http.post(path, params=params, content=body.encode(), auth=AUTH)


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"entName": "e"}, "customerName 不能为空"),
        ({"customerName": "c" * 201}, "customerName 长度不能超过200"),
        ({"customerName": "c", "contacts": [{"name": "无ID"}]}, "thirdDataId 不能为空"),
        ({"customerName": "c", "contacts": [{"thirdDataId": "u", "qq": "1" * 31}]}, "qq 长度"),
        ({"customerName": "c", "contacts": [{"thirdDataId": "u", "name": "😀" * 16}]}, "name 长度"),
        ({"customerName": "c", "contacts": [{"thirdDataId": "u", "gender": "M"}]}, "gender"),
        ({"customerName": "c", "customer_name": "c"}, "customer_name 不是可识别的字段"),
        ({"customerName": "c", "staffId": "abc"}, "staffId 应为数字"),
        (
            {"customerName": "c", "contacts": [{"thirdDataId": f"u{n}"} for n in range(11)]},
            "contacts 应为不超过10个的列表",
        ),
    ],
)
async def test_bad_customers_are_400_with_the_vendor_body(
    http: httpx.AsyncClient, payload: dict[str, Any], fragment: str
) -> None:
    status, code, message = error_of(await post_json(http, IMPORT_ONE_PATH, payload))
    assert (status, code) == (400, 400)
    assert fragment in message


async def test_more_than_ten_customers_is_400(http: httpx.AsyncClient) -> None:
    eleven = [{"customerName": f"c{n}"} for n in range(11)]
    status, _, message = error_of(await post_json(http, IMPORT_MANY_PATH, eleven))
    assert status == 400
    assert "最多导入10个客户" in message
    ten = await post_json(http, IMPORT_MANY_PATH, eleven[:10])
    assert ten.status_code == 200
    assert len(ten.json()) == 10


@pytest.mark.parametrize(
    "params",
    [{"checkKeepLimit": "True"}, {"autoDraw": "1"}, {"duplicateControl": "NEVER"}],
)
async def test_bad_flags_are_400(http: httpx.AsyncClient, params: dict[str, str]) -> None:
    answer = await post_json(http, IMPORT_ONE_PATH, {"customerName": "c"}, **params)
    assert error_of(answer)[0] == 400


@pytest.mark.parametrize(
    "params",
    [{"pageIndex": "1"}, {"pageSize": "10"}, {"pageIndex": "0", "pageSize": "10"},
     {"pageIndex": "1", "pageSize": "1"}, {"pageIndex": "1", "pageSize": "101"},
     {"pageIndex": "x", "pageSize": "10"}],
)  # fmt: skip
async def test_bad_staff_pages_are_400(http: httpx.AsyncClient, params: dict[str, str]) -> None:
    answer = await http.get(STAFF_PATH, params=params, auth=AUTH)
    assert error_of(answer)[0] == 400


# Digits outside Unicode's decimal digits ("²" passes str.isdigit) are a parse error for the
# vendor's Java (Long.parseLong), answered as a refusal, never as a 500 from the simulator.
async def test_a_number_that_is_not_decimal_is_refused_not_a_crash(
    http: httpx.AsyncClient,
) -> None:
    page = await http.get(STAFF_PATH, params={"pageIndex": "²", "pageSize": "10"}, auth=AUTH)
    assert error_of(page)[0] == 400
    staff = await post_json(http, IMPORT_ONE_PATH, {"customerName": "c", "staffId": "²"})
    assert error_of(staff)[:2] == (400, 400)
    query = signed_query([("pageIndex", "1"), ("pageSize", "10")], None)
    unsigned_time = query.replace("h_t=", "h_t=%C2%B2")
    assert error_of(await http.get(f"{STAFF_PATH}?{unsigned_time}"))[:2] == (403, 403)


async def test_single_import_answers_the_documented_fields(
    http: httpx.AsyncClient, sim: XiaolanbenSimulator
) -> None:
    payload = {"customerName": "甲", "contacts": [{"thirdDataId": "u1", "phone": "1"}]}
    answer = (await post_json(http, IMPORT_ONE_PATH, payload)).json()
    assert set(answer) == {"customerId", "staffId", "publicSeaId", "isNew", "contactIdMap"}
    assert answer["isNew"] is True
    assert answer["staffId"] is None  # no owner: a public-sea customer
    assert set(answer["contactIdMap"]) == {"u1"}
    again = (await post_json(http, IMPORT_ONE_PATH, payload)).json()
    assert (again["isNew"], again["contactIdMap"]) == (False, answer["contactIdMap"])


async def test_batch_answer_is_keyed_by_customer_name(http: httpx.AsyncClient) -> None:
    answer = (
        await post_json(
            http,
            IMPORT_MANY_PATH,
            [{"customerName": "甲", "entName": "甲公司"}, {"customerName": "乙"}],
        )
    ).json()
    assert set(answer) == {"甲", "乙"}
    assert set(answer["甲"]) == {
        "success", "customerId", "staffId", "publicSeaId", "isNew", "contactIdMap", "failedReason"
    }  # fmt: skip


async def test_a_phone_owner_takes_a_new_customer(
    http: httpx.AsyncClient, sim: XiaolanbenSimulator
) -> None:
    payload = {"customerName": "新", "contacts": [{"thirdDataId": "u", "phone": "13800138002"}]}
    answer = (await post_json(http, IMPORT_ONE_PATH, payload)).json()
    assert answer["staffId"] == sim.customers["杭州华东物流有限公司"].staff_id


async def test_auto_draw_claims_a_public_sea_customer(
    http: httpx.AsyncClient, sim: XiaolanbenSimulator
) -> None:
    payload = {"customerName": "星河贸易", "staffId": 10005}
    kept = (await post_json(http, IMPORT_ONE_PATH, payload)).json()
    assert kept["staffId"] is None
    drawn = (await post_json(http, IMPORT_ONE_PATH, payload, autoDraw="true")).json()
    assert drawn["staffId"] == 10005


async def test_seed_has_25_staff_in_chinese_departments(sim: XiaolanbenSimulator) -> None:
    assert len(sim.staff) == 25
    departments = {person["department"] for person in sim.staff.values()}
    assert {"销售部", "客服部", "市场部"} <= departments
    assert len(sim.customers) == 3


async def test_rate_limit_answer_is_429_with_the_vendor_body() -> None:
    sim = XiaolanbenSimulator(company_id=COMPANY_ID, sign_key=SIGN_KEY, rate_limit=3)
    with serve(sim.app) as limited:
        async with httpx.AsyncClient(
            base_url=limited.url, headers={"companyId": COMPANY_ID}, auth=AUTH
        ) as http:
            answers = [
                await http.get(STAFF_PATH, params={"pageIndex": 1, "pageSize": 2}) for _ in range(4)
            ]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert error_of(answers[3]) == (429, 429, "请求过于频繁")
    assert answers[3].headers["Retry-After"] == "1"
