"""The real client over real HTTP against the simulator."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from pydantic import SecretStr

from tests.vendors.socialepoch.conftest import API_KEY, ClientFactory
from tools.errors import (
    AuthenticationError,
    ConfigurationError,
    InputError,
    MalformedResponseError,
    RateLimitedError,
    RequestRejectedError,
    VendorAPIError,
)
from tools.sandbox.socialepoch import SocialEpochSimulator
from tools.settings import SocialEpochSettings
from tools.vendors.socialepoch.client import BATCH_IMPORT, LEGACY_IMPORT, QUERY, SocialEpochClient
from tools.vendors.socialepoch.models import SocialEpochCustomer, validate_customers

NUMBER = "8618221733141"


class RecordingTransport(httpx.AsyncBaseTransport):
    """Real HTTP, remembering every request that went out (headers and body)."""

    def __init__(self) -> None:
        self.sent: list[httpx.Request] = []
        self._http = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        return await self._http.handle_async_request(request)

    async def aclose(self) -> None:
        await self._http.aclose()


def customers(*numbers: str, **fields: object) -> list[SocialEpochCustomer]:
    return validate_customers([{"whatsApp": n, **fields} for n in numbers])


class SteppingClock:
    """Real time plus one second more on every reading, so no two signatures share a time."""

    def __init__(self) -> None:
        self.readings = 0

    def __call__(self) -> float:
        self.readings += 1
        return time.time() + self.readings


# --- import ----------------------------------------------------------------------------


async def test_batch_import_creates_then_updates_one_customer(
    sim: SocialEpochSimulator, client: SocialEpochClient
) -> None:
    first = await client.import_customers(customers(NUMBER, friendName="李雷"))
    second = await client.import_customers(customers(NUMBER, friendName="李雷", stage="成交客户"))
    assert [(o.key, o.status) for o in first] == [(NUMBER, "created")]
    assert [(o.key, o.status) for o in second] == [(NUMBER, "updated")]
    assert list(sim.customers) == [NUMBER]
    assert sim.customers[NUMBER]["agentAccount"] == "agent01"  # settings.agent_account
    assert sim.customers[NUMBER]["stage"] == "成交客户"


async def test_a_record_own_agent_wins_over_the_default(
    sim: SocialEpochSimulator, client: SocialEpochClient
) -> None:
    await client.import_customers(customers(NUMBER, agentAccount="agent02"))
    assert sim.customers[NUMBER]["agentAccount"] == "agent02"


async def test_a_record_the_vendor_refuses_fails_alone(
    sim: SocialEpochSimulator, client: SocialEpochClient
) -> None:
    good = SocialEpochCustomer(whatsapp=NUMBER)
    # Bypassing validation on purpose: what the vendor does with a number we would refuse.
    bad = SocialEpochCustomer.model_construct(whatsapp="12345")
    outcomes = await client.import_customers([good, bad])
    assert [o.status for o in outcomes] == ["created", "failed"]
    assert outcomes[1].reason is not None
    assert "country code" in outcomes[1].reason
    assert list(sim.customers) == [NUMBER]


async def test_legacy_import_signs_the_body(
    sim: SocialEpochSimulator, make_client: ClientFactory
) -> None:
    client = make_client(import_api="legacy")
    outcomes = await client.import_customers(customers(NUMBER, friendName="lee", sex="male"))
    assert [o.status for o in outcomes] == ["created"]
    assert sim.customers[NUMBER]["friendName"] == "lee"
    assert sim.counters["requests"] == 1


async def test_legacy_import_as_an_agent_is_refused(make_client: ClientFactory) -> None:
    client = make_client(import_api="legacy", user_name="agent01")
    with pytest.raises(VendorAPIError) as caught:
        await client.import_customers(customers(NUMBER))
    assert caught.value.code == "-1"
    assert caught.value.vendor_message == "Admin Cannot import data"


async def test_legacy_import_refuses_batch_only_fields_before_sending(
    sim: SocialEpochSimulator, make_client: ClientFactory
) -> None:
    client = make_client(import_api="legacy")
    with pytest.raises(InputError) as caught:
        await client.import_customers(customers(NUMBER, agentAccount="agent01"))
    assert [(p.index, p.field) for p in caught.value.problems] == [(0, "agentAccount")]
    assert sim.counters["requests"] == 0


async def test_legacy_wire_order_matches_the_sample(make_client: ClientFactory) -> None:
    recorder = RecordingTransport()
    client = make_client(import_api="legacy", transport=recorder)
    await client.import_customers(customers(NUMBER))
    body = recorder.sent[0].content.decode()
    keys = ['"tenantId":', '"userName":', '"data":', '"token":', '"createTime":']
    positions = [body.index(key) for key in keys]
    assert positions == sorted(positions)
    assert recorder.sent[0].headers.get("token") is None  # the body carries the token


async def test_over_max_batch_is_refused_without_a_request(
    sim: SocialEpochSimulator, client: SocialEpochClient
) -> None:
    many = [SocialEpochCustomer(whatsapp=f"86138001{n:05d}") for n in range(client.MAX_BATCH + 1)]
    with pytest.raises(InputError) as caught:
        await client.import_customers(many)
    assert caught.value.problems[0].field == "data"
    assert "at most 100" in str(caught.value)
    assert sim.counters["requests"] == 0


async def test_max_batch_is_accepted(sim: SocialEpochSimulator, client: SocialEpochClient) -> None:
    many = [SocialEpochCustomer(whatsapp=f"86138001{n:05d}") for n in range(client.MAX_BATCH)]
    outcomes = await client.import_customers(many)
    assert {o.status for o in outcomes} == {"created"}
    assert len(sim.customers) == client.MAX_BATCH


async def test_empty_and_duplicate_batches_are_refused_before_sending(
    sim: SocialEpochSimulator, client: SocialEpochClient
) -> None:
    with pytest.raises(InputError):
        await client.import_customers([])
    twice = [
        SocialEpochCustomer(whatsapp=NUMBER),
        SocialEpochCustomer(whatsapp="+86 182 2173 3141"),
    ]
    with pytest.raises(InputError) as caught:
        await client.import_customers(twice)
    assert [(p.index, p.field) for p in caught.value.problems] == [(1, "whatsApp")]
    assert sim.counters["requests"] == 0


async def test_no_agent_anywhere_is_refused_before_sending(
    sim: SocialEpochSimulator, make_client: ClientFactory
) -> None:
    client = make_client(agent_account=None)
    with pytest.raises(InputError, match="SOCIALEPOCH_AGENT_ACCOUNT"):
        await client.import_customers(customers(NUMBER))
    assert sim.counters["requests"] == 0


def test_invalid_phone_numbers_are_refused_with_index_and_field() -> None:
    rows = [{"whatsApp": NUMBER}, {"whatsApp": "182-2173-3141"}, {"whatsApp": "call me"}]
    with pytest.raises(InputError) as caught:
        validate_customers(rows)
    assert [(p.index, p.field) for p in caught.value.problems] == [(1, "whatsApp"), (2, "whatsApp")]


# --- signing, time, credentials -------------------------------------------------------


async def test_each_retry_is_signed_afresh(
    sim: SocialEpochSimulator, make_client: ClientFactory
) -> None:
    sim.faults.fail_next = 1
    recorder = RecordingTransport()
    client = make_client(clock=SteppingClock(), transport=recorder)
    outcomes = await client.import_customers(customers(NUMBER))
    assert [o.status for o in outcomes] == ["created"]
    assert sim.counters["failed"] == 1
    first, second = (request.headers for request in recorder.sent)
    assert first["timestamp"] != second["timestamp"]
    assert first["token"] != second["token"]


async def test_legacy_retry_gets_a_new_create_time(
    sim: SocialEpochSimulator, make_client: ClientFactory
) -> None:
    sim.faults.fail_next = 1
    recorder = RecordingTransport()
    client = make_client(import_api="legacy", clock=SteppingClock(), transport=recorder)
    await client.import_customers(customers(NUMBER))
    first, second = (json.loads(request.content) for request in recorder.sent)
    assert first["createTime"] != second["createTime"]
    assert first["token"] != second["token"]
    assert list(sim.customers) == [NUMBER]


async def test_a_wrong_key_is_an_authentication_error(make_client: ClientFactory) -> None:
    client = make_client(api_key=SecretStr("not-the-key"))
    with pytest.raises(AuthenticationError) as caught:
        await client.query_customers([NUMBER])
    assert caught.value.code == "522"
    assert caught.value.http_status == 200
    assert caught.value.entry is not None


async def test_a_stale_clock_is_refused_as_timestamp_timeout(
    sim: SocialEpochSimulator, make_client: ClientFactory
) -> None:
    client = make_client(clock=lambda: time.time() - 600)
    with pytest.raises(RequestRejectedError) as caught:
        await client.import_customers(customers(NUMBER))
    assert caught.value.code == "502"
    assert caught.value.entry is not None
    assert caught.value.entry.message == "timestamp timeout"
    assert sim.counters["requests"] == 1  # a refusal is not retried


async def test_a_stale_clock_fails_the_legacy_import_too(make_client: ClientFactory) -> None:
    client = make_client(import_api="legacy", clock=lambda: time.time() - 600)
    with pytest.raises(RequestRejectedError, match="502"):
        await client.import_customers(customers(NUMBER))


def test_missing_settings_name_the_variables() -> None:
    with pytest.raises(ConfigurationError) as caught:
        SocialEpochClient(SocialEpochSettings())
    assert caught.value.missing == ["SOCIALEPOCH_TENANT_ID", "SOCIALEPOCH_API_KEY"]


async def test_the_key_never_shows(make_client: ClientFactory) -> None:
    client = make_client(api_key=SecretStr(API_KEY + "-wrong"))
    with pytest.raises(AuthenticationError) as caught:
        await client.query_customers([NUMBER])
    for text in (str(caught.value), repr(caught.value), repr(client), str(client.settings)):
        assert API_KEY not in text
    with pytest.raises(InputError) as bad_input:
        await client.import_customers([])
    assert API_KEY not in str(bad_input.value)


# --- failures and retries ------------------------------------------------------------


async def test_an_answer_lost_in_flight_is_retried_into_one_customer(
    sim: SocialEpochSimulator, client: SocialEpochClient
) -> None:
    sim.faults.drop_next = 1
    sim.faults.drop_after_processing = True
    outcomes = await client.import_customers(customers(NUMBER))
    assert sim.counters["dropped"] == 1
    assert sim.counters["requests"] == 2
    assert [o.status for o in outcomes] == ["updated"]  # the lost answer said "created"
    assert list(sim.customers) == [NUMBER]


async def test_rate_limit_answers_are_retried(
    sim: SocialEpochSimulator, client: SocialEpochClient
) -> None:
    sim.faults.rate_limit_next = 2
    outcomes = await client.import_customers(customers(NUMBER))
    assert [o.status for o in outcomes] == ["created"]
    assert sim.counters["rate_limited"] == 2


async def test_rate_limit_retries_are_bounded(
    sim: SocialEpochSimulator, client: SocialEpochClient
) -> None:
    sim.faults.rate_limit_next = 10
    with pytest.raises(RateLimitedError) as caught:
        await client.query_customers([NUMBER])
    assert caught.value.retry_after == 1.0
    assert sim.counters["requests"] == 4  # no_wait_retry.attempts


async def test_a_5xx_then_success(sim: SocialEpochSimulator, client: SocialEpochClient) -> None:
    sim.faults.fail_next = 2
    sim.faults.path = QUERY.path
    sim.seed()
    found = await client.query_customers(["+86 138 0013 8000"])
    assert [c.friend_name for c in found] == ["王芳"]
    assert sim.counters["failed"] == 2


async def test_an_html_answer_is_malformed(
    sim: SocialEpochSimulator, make_client: ClientFactory, no_wait_retry: object
) -> None:
    sim.faults.malformed_next = 10
    client = make_client()
    with pytest.raises(MalformedResponseError, match="not JSON"):
        await client.import_customers(customers(NUMBER))
    assert sim.counters["malformed"] == 4  # idempotent: retried, then given up


# --- query -----------------------------------------------------------------------------


async def test_query_returns_the_stored_customers(
    sim: SocialEpochSimulator, client: SocialEpochClient
) -> None:
    sim.seed()
    found = await client.query_customers(["8613800138000", "85291234567", "8613912340000"])
    by_number = {c.whatsapp: c for c in found}
    assert set(by_number) == {"8613800138000", "85291234567"}
    wang = by_number["8613800138000"]
    assert (wang.friend_name, wang.sex, wang.tab_name) == ("王芳", "female", "VIP,复购")
    assert wang.extended_fields["company"] == "上海云启贸易有限公司"


async def test_query_of_what_was_imported(client: SocialEpochClient) -> None:
    await client.import_customers(customers(NUMBER, friendName="Li Lei", tabName=["a", "b"]))
    [found] = await client.query_customers([NUMBER])
    assert (found.whatsapp, found.friend_name, found.tab_name) == (NUMBER, "Li Lei", "a,b")
    assert found.agent_account == "agent01"


async def test_query_refuses_bad_numbers_before_sending(
    sim: SocialEpochSimulator, client: SocialEpochClient
) -> None:
    with pytest.raises(InputError) as caught:
        await client.query_customers([NUMBER, "nope"])
    assert [(p.index, p.field) for p in caught.value.problems] == [(1, "whatsApp")]
    with pytest.raises(InputError):
        await client.query_customers([])
    assert sim.counters["requests"] == 0


async def test_the_client_is_an_async_context_manager(
    settings: SocialEpochSettings, sim: SocialEpochSimulator
) -> None:
    async with SocialEpochClient(settings) as client:
        assert await client.query_customers([NUMBER]) == []
    assert sim.counters["requests"] == 1


def test_endpoints_are_idempotent_upserts() -> None:
    assert all(e.idempotent for e in (BATCH_IMPORT, LEGACY_IMPORT, QUERY))


async def test_create_time_is_written_in_the_configured_zone(make_client: ClientFactory) -> None:
    # The simulator runs on China time (UTC+8), like the vendor; a UTC createTime is 8 h off.
    client = make_client(import_api="legacy", timezone="+00:00")
    with pytest.raises(RequestRejectedError, match="timestamp timeout"):
        await client.import_customers(customers(NUMBER))
