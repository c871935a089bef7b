"""The real client against the real simulator over HTTP on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from tests.vendors.xiaolanben.conftest import COMPANY_ID, SIGN_KEY, MakeClient, Recorder
from tools.errors import (
    AuthenticationError,
    ConfigurationError,
    CrmopsError,
    InputError,
    MalformedResponseError,
    RateLimitedError,
)
from tools.sandbox.simulation import ServedApp, serve
from tools.sandbox.xiaolanben import REPLAYED, UNAUTHENTICATED, XiaolanbenSimulator
from tools.settings import XiaolanbenSettings
from tools.vendors.xiaolanben.auth import XiaolanbenAuth
from tools.vendors.xiaolanben.client import XiaolanbenClient
from tools.vendors.xiaolanben.models import DuplicateControl, ImportFlags

CUSTOMER = {
    "customerName": "蓝海科技",
    "entName": "深圳蓝海科技有限公司",
    "tag": "展会线索",
    "customizeField.text_13": "VIP",
    "contacts": [
        {"thirdDataId": "u1", "name": "王芳", "phone": "13900000001", "gender": "女"},
        {"thirdDataId": "u2", "name": "李雷", "phone": "13900000002"},
    ],
}


def customer(name: str, **fields: Any) -> dict[str, Any]:
    return {"customerName": name, **fields}


async def test_import_then_reimport_is_created_then_updated_once_stored(
    sim: XiaolanbenSimulator, client: XiaolanbenClient
) -> None:
    before = len(sim.customers)
    first = await client.import_customer(CUSTOMER)
    again = await client.import_customer({**CUSTOMER, "tag": "已跟进"})
    assert (first.status, again.status) == ("created", "updated")
    assert first.key == "蓝海科技"
    assert first.vendor_id == again.vendor_id
    assert len(sim.customers) == before + 1
    stored = sim.customers["深圳蓝海科技有限公司"]
    assert stored.fields["tag"] == "已跟进"
    assert stored.fields["customizeField.text_13"] == "VIP"
    assert len(stored.contacts) == 2  # contacts matched by phone, not added again


async def test_batch_import_reports_each_record(
    sim: XiaolanbenSimulator, client: XiaolanbenClient
) -> None:
    owner, other = 10001, 10002
    await client.import_customer(customer("独占客户", staffId=owner))
    outcomes = await client.import_customers(
        [
            customer("新客户甲"),
            customer("独占客户", staffId=other),  # owned by someone else: refused
            customer("新客户乙", staffId=999),  # no such staff member
            CUSTOMER,
        ]
    )
    assert [(o.key, o.status) for o in outcomes] == [
        ("新客户甲", "created"),
        ("独占客户", "failed"),
        ("新客户乙", "failed"),
        ("蓝海科技", "created"),
    ]
    assert outcomes[1].reason is not None
    assert "归属其他员工" in outcomes[1].reason
    assert outcomes[0].vendor_id is not None
    assert sim.customers["独占客户"].staff_id == owner


async def test_a_refused_single_import_is_a_failed_outcome(client: XiaolanbenClient) -> None:
    await client.import_customer(customer("独占客户", staffId=10001))
    outcome = await client.import_customer(customer("独占客户", staffId=10002))
    assert outcome.status == "failed"
    assert outcome.reason is not None
    assert "归属其他员工" in outcome.reason
    assert "trackingId" in outcome.reason


async def test_owner_conflict_update_flag_is_sent_and_honoured(
    sim: XiaolanbenSimulator, client: XiaolanbenClient
) -> None:
    await client.import_customer(customer("独占客户", staffId=10001, tag="a"))
    flags = ImportFlags(owner_conflict_update=True)
    outcome = await client.import_customer(customer("独占客户", staffId=10002, tag="b"), flags)
    assert outcome.status == "updated"
    assert sim.customers["独占客户"].staff_id == 10001
    assert sim.customers["独占客户"].fields["tag"] == "b"


async def test_duplicate_control_ignore_skips_a_contact_owned_elsewhere(
    sim: XiaolanbenSimulator, client: XiaolanbenClient
) -> None:
    taken = {"thirdDataId": "x", "phone": "13800138001"}  # seeded, owned by staff 10001
    free = {"thirdDataId": "y", "phone": "13900000009"}
    row = customer("新客户", staffId=10003, contacts=[taken, free])
    refused = await client.import_customers([row])
    assert refused[0].status == "failed"
    ignore = ImportFlags(duplicate_control=DuplicateControl.CUSTOMER_PHONE_DUPLICATE_IGNORE)
    [outcome] = await client.import_customers([row], ignore)
    assert outcome.status == "created"
    assert [c.phone for c in sim.customers["新客户"].contacts] == ["13900000009"]


async def test_a_batch_of_eleven_is_refused_before_any_request(
    sim: XiaolanbenSimulator, client: XiaolanbenClient
) -> None:
    with pytest.raises(InputError) as caught:
        await client.import_customers([customer(f"客户{n}") for n in range(11)])
    assert [p.field for p in caught.value.problems] == ["customers"]
    assert sim.counters["requests"] == 0


async def test_invalid_records_are_refused_before_any_request(
    sim: XiaolanbenSimulator, client: XiaolanbenClient
) -> None:
    with pytest.raises(InputError) as caught:
        await client.import_customers([customer("a"), customer("a"), customer("")])
    assert {(p.index, p.field) for p in caught.value.problems} == {
        (1, "customerName"),
        (2, "customerName"),
    }
    with pytest.raises(InputError):
        await client.import_customer({"customerName": "c", "contacts": [{"name": "无ID"}]})
    assert sim.counters["requests"] == 0


async def test_an_empty_batch_sends_nothing(
    sim: XiaolanbenSimulator, client: XiaolanbenClient
) -> None:
    assert await client.import_customers([]) == []
    assert sim.counters["requests"] == 0


# --- signing, end to end -----------------------------------------------------------------


async def test_wrong_key_is_an_authentication_error_with_the_tracking_id(
    settings: XiaolanbenSettings, make_client: MakeClient
) -> None:
    wrong = settings.model_copy(update={"sign_key": SecretStr("wrong-key-31337")})
    with pytest.raises(AuthenticationError) as caught:
        await make_client(settings=wrong).list_staff()
    error = caught.value
    assert (error.http_status, error.code, error.vendor_message) == (401, "401", UNAUTHENTICATED)
    assert error.request_id
    assert json.loads(error.body)["trackingId"] == error.request_id
    assert error.request_id in str(error)


async def test_a_client_clock_15_s_behind_is_corrected_from_the_date_header(
    sim: XiaolanbenSimulator, make_client: MakeClient
) -> None:
    client = make_client(clock=lambda: time.time() - 15)
    assert len(await client.list_staff()) == 25
    # refused as expired once, then signed with the vendor's time (tests/reliability)
    assert (sim.counters["requests"], sim.counters["refused_403"]) == (2, 1)


async def test_a_replayed_request_is_refused(sim: XiaolanbenSimulator, served: ServedApp) -> None:
    headers = {"companyId": COMPANY_ID}
    body = b'{"customerName":"\xe9\x87\x8d\xe6\x94\xbe"}'
    path = "/blue-crm/api/v1/open/customer/import/customerWithContact"
    async with httpx.AsyncClient(base_url=served.url, headers=headers) as http:
        signed = await http.post(path, content=body, auth=XiaolanbenAuth(SecretStr(SIGN_KEY)))
        assert signed.status_code == 200
        replay = await http.post(signed.request.url, content=body)
    assert replay.status_code == 403
    assert replay.json()["errors"] == [{"code": 403, "message": REPLAYED}]
    assert len(sim.customers) == 4


async def test_fifty_identical_concurrent_requests_all_succeed(
    sim: XiaolanbenSimulator, make_client: MakeClient
) -> None:
    class NoLimit:
        async def acquire(self, api: str) -> None:
            return None

    frozen = time.time()  # every request signed in the same millisecond
    client = make_client(clock=lambda: frozen, rate_limiter=NoLimit())
    pages = await asyncio.gather(*(client.list_staff(1, 10) for _ in range(50)))
    assert [len(page) for page in pages] == [10] * 50
    assert sim.counters["requests"] == 50
    assert not any(name.startswith("refused") for name in sim.counters)


async def test_company_id_is_a_header_and_not_signed(settings: XiaolanbenSettings) -> None:
    recorder = Recorder()
    client = XiaolanbenClient(settings, transport=httpx.MockTransport(recorder))
    await client.import_customers([customer("甲")], ImportFlags(auto_draw=True))
    await client.aclose()
    [request] = recorder.requests
    assert request.headers["companyId"] == COMPANY_ID
    query = dict(parse_qsl(urlsplit(str(request.url)).query))
    body = request.content.decode()
    preimage = f"autoDraw=true{body}{query['h_t']}{SIGN_KEY}"
    assert query["h_sign"] == hashlib.md5(preimage.encode()).hexdigest()
    assert COMPANY_ID not in preimage


async def test_empty_query_params_are_never_sent(settings: XiaolanbenSettings) -> None:
    recorder = Recorder()
    client = XiaolanbenClient(settings, transport=httpx.MockTransport(recorder))
    await client.list_staff(search="")
    await client.import_customer(customer("甲"), ImportFlags())
    await client.aclose()
    sent = [
        parse_qsl(urlsplit(str(r.url)).query, keep_blank_values=True) for r in recorder.requests
    ]
    assert [[name for name, _ in pairs] for pairs in sent] == [
        ["pageIndex", "pageSize", "h_t", "h_sign"],
        ["h_t", "h_sign"],
    ]
    assert all(value for pairs in sent for _, value in pairs)


# --- retries -----------------------------------------------------------------------------


async def test_an_answer_lost_in_flight_is_retried_into_one_customer(
    sim: XiaolanbenSimulator, client: XiaolanbenClient
) -> None:
    before = len(sim.customers)
    sim.faults.drop_next = 1
    sim.faults.drop_after_processing = True
    outcome = await client.import_customer(CUSTOMER)
    assert outcome.status == "updated"  # the first attempt created it
    assert len(sim.customers) == before + 1
    assert sim.counters["dropped"] == 1


async def test_rate_limit_answers_are_retried(
    sim: XiaolanbenSimulator, client: XiaolanbenClient
) -> None:
    sim.faults.rate_limit_next = 2
    [outcome] = await client.import_customers([CUSTOMER])
    assert outcome.status == "created"
    assert sim.counters["rate_limited"] == 2


async def test_rate_limit_retries_are_bounded(
    sim: XiaolanbenSimulator, client: XiaolanbenClient
) -> None:
    sim.faults.rate_limit_next = 10
    with pytest.raises(RateLimitedError) as caught:
        await client.list_staff()
    assert caught.value.retry_after == 1.0
    assert caught.value.vendor_message == "请求过于频繁"
    assert sim.counters["requests"] == 4  # no_wait_retry.attempts


async def test_simulator_rate_limit_is_honoured_by_the_default_client_limiter(
    make_client: MakeClient, settings: XiaolanbenSettings
) -> None:
    sim = XiaolanbenSimulator(company_id=COMPANY_ID, sign_key=SIGN_KEY, rate_limit=20)
    sim.seed()
    with serve(sim.app) as served:
        fast = settings.model_copy(update={"base_url": served.url, "rate_limit": 20.0})
        client = make_client(settings=fast, rate_limiter=None)
        pages = await asyncio.gather(*(client.list_staff(1, 2) for _ in range(25)))
    assert len(pages) == 25
    assert sim.counters["rate_limited"] == 0


async def test_server_errors_then_success(
    sim: XiaolanbenSimulator, client: XiaolanbenClient
) -> None:
    sim.faults.fail_next = 2
    outcome = await client.import_customer(CUSTOMER)
    assert outcome.status == "created"
    assert sim.counters["failed"] == 2


# --- staff -------------------------------------------------------------------------------


async def test_staff_paging_walks_all_25_staff(
    sim: XiaolanbenSimulator, client: XiaolanbenClient
) -> None:
    staff = [person async for person in client.iter_staff(page_size=10)]
    assert len(staff) == 25
    assert len({person.staff_id for person in staff}) == 25
    assert sim.counters["requests"] == 3  # 10 + 10 + 5: the short page is the last
    assert {person.department for person in staff} >= {"销售部", "客服部"}


async def test_staff_paging_stops_at_the_limit(
    sim: XiaolanbenSimulator, client: XiaolanbenClient
) -> None:
    staff = [person async for person in client.iter_staff(limit=12, page_size=10)]
    assert len(staff) == 12
    assert sim.counters["requests"] == 2


async def test_a_full_last_page_ends_on_an_empty_one(
    sim: XiaolanbenSimulator, client: XiaolanbenClient
) -> None:
    staff = [person async for person in client.iter_staff(page_size=5)]
    assert len(staff) == 25
    assert sim.counters["requests"] == 6


async def test_staff_search_by_name_and_by_mobile(client: XiaolanbenClient) -> None:
    by_name = await client.list_staff(search="磊")
    assert sorted(p.real_name or "" for p in by_name) == ["徐磊", "杨磊", "王磊"]
    mobile = by_name[0].mobile
    assert mobile is not None
    by_mobile = await client.list_staff(search=mobile)
    assert [p.staff_id for p in by_mobile] == [by_name[0].staff_id]
    assert await client.list_staff(search=mobile[:-1]) == []  # mobile must match exactly


@pytest.mark.parametrize(("page_index", "page_size"), [(0, 10), (1, 1), (1, 101)])
async def test_staff_page_bounds_are_checked_before_sending(
    sim: XiaolanbenSimulator, client: XiaolanbenClient, page_index: int, page_size: int
) -> None:
    with pytest.raises(InputError):
        await client.list_staff(page_index, page_size)
    assert sim.counters["requests"] == 0


# --- configuration and secrets -------------------------------------------------------------


def test_missing_settings_name_the_variables() -> None:
    with pytest.raises(ConfigurationError, match=r"XIAOLANBEN_COMPANY_ID.*XIAOLANBEN_SIGN_KEY"):
        XiaolanbenClient(XiaolanbenSettings())


async def test_the_sign_key_never_appears_in_errors_or_reprs(
    sim: XiaolanbenSimulator, settings: XiaolanbenSettings, make_client: MakeClient
) -> None:
    wrong_key = "wrong-key-31337"
    texts = [repr(sim), repr(settings), str(settings)]
    wrong = settings.model_copy(update={"sign_key": SecretStr(wrong_key)})
    failures: list[CrmopsError] = []
    for client, call in [
        (make_client(settings=wrong), "list"),
        # (a clock 60 s off is corrected from the Date header now; nothing listens on port 9)
        (
            make_client(settings=settings.model_copy(update={"base_url": "http://127.0.0.1:9"})),
            "list",
        ),
        (make_client(), "bad"),
    ]:
        texts.append(repr(client))
        try:
            if call == "list":
                await client.list_staff()
            else:
                await client.import_customer({"customerName": ""})
        except CrmopsError as exc:
            failures.append(exc)
    assert len(failures) == 3
    for error in failures:
        texts += [str(error), repr(error), str(vars(error))]
    for text in texts:
        assert SIGN_KEY not in text
        assert wrong_key not in text


async def test_a_malformed_answer_is_retried_then_reported(
    sim: XiaolanbenSimulator, client: XiaolanbenClient
) -> None:
    sim.faults.malformed_next = 1
    assert len(await client.list_staff(1, 10)) == 10
    sim.faults.malformed_next = 10
    with pytest.raises(MalformedResponseError):
        await client.list_staff(1, 10)
