"""Xiaolanben with a server clock off by seconds; Bangwo8 tokens revoked in the middle of work."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl

import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.sandbox_fixtures import Sandbox
from tools.errors import RequestRejectedError
from tools.sandbox.simulation import serve
from tools.sandbox.xiaolanben import XiaolanbenSimulator
from tools.settings import CrmopsSettings, Settings
from tools.transport import LocalRateLimiter, RetryPolicy
from tools.vendors.bangwo8.client import Bangwo8Client
from tools.vendors.xiaolanben.auth import EXPIRED, SKEW_TOLERANCE
from tools.vendors.xiaolanben.client import XiaolanbenClient

BOUND = 20.0
NO_WAIT = RetryPolicy(attempts=4, wait_initial=0, wait_max=0, wait_jitter=0, timeout=BOUND)


@pytest.fixture
async def xiaolanben(settings: Settings) -> AsyncIterator[XiaolanbenClient]:
    async with XiaolanbenClient(
        settings.xiaolanben, retry=NO_WAIT, rate_limiter=LocalRateLimiter(1000)
    ) as client:
        yield client


def _customer(n: int) -> dict[str, object]:
    return {
        "customerName": f"时钟{n}",
        "contacts": [{"thirdDataId": f"c{n}", "name": "联系人", "phone": f"1390000{n:04d}"}],
    }


class HtRecorder:
    """ASGI middleware in front of the simulator: `lags` = server clock minus `h_t` (s)."""

    def __init__(self, sim: XiaolanbenSimulator) -> None:
        self.sim = sim
        self.lags: list[float] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = dict(parse_qsl(scope.get("query_string", b"").decode()))
        if "h_t" in query:
            self.lags.append(self.sim.server_time() - int(query["h_t"]) / 1000)
        await self.sim.app(scope, receive, send)


class WithoutDate:
    """ASGI middleware removing the `Date` header, as some proxies do."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def strip(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message["headers"] if k.lower() != b"date"]
                message = {**message, "headers": kept}
            await send(message)

        await self.app(scope, receive, strip)


@pytest.mark.parametrize("skew", [8.0, -8.0])
async def test_a_server_clock_8_s_off_is_learnt_from_date_and_signed_against(
    skew: float, settings: Settings, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """±8 s is inside the 10 s window, so the first call passes with only 2 s to spare; from
    its `Date` the client learns the vendor's clock, and every later `h_t` is within about a
    second of it, leaving the whole window for network delay."""
    sim = sandbox.xiaolanben
    sim.faults.clock_skew = skew
    recorder = HtRecorder(sim)
    with serve(recorder) as served:
        config = settings.xiaolanben.model_copy(update={"base_url": served.url})
        async with XiaolanbenClient(config, retry=NO_WAIT) as client:
            async with asyncio.timeout(BOUND):
                outcomes = [await client.import_customer(_customer(n)) for n in range(4)]
    assert [o.status for o in outcomes] == ["created"] * 4
    assert sim.counters["refused_403"] == 0
    first, *later = recorder.lags
    assert abs(first - skew) < 1.5  # signed with this machine's clock
    assert all(abs(lag) < 1.5 for lag in later)  # signed with the vendor's
    # "this machine's clock is 8 s behind the vendor's" (7 or 9 when Date's rounding says so)
    assert ("s behind the vendor's" if skew > 0 else "s ahead of the vendor's") in caplog.text


@pytest.mark.parametrize("skew", [15.0, -15.0, 3600.0])
async def test_a_server_clock_outside_the_window_costs_one_refusal_then_works(
    skew: float, sandbox: Sandbox, xiaolanben: XiaolanbenClient
) -> None:
    sim = sandbox.xiaolanben
    sim.faults.clock_skew = skew
    async with asyncio.timeout(BOUND):
        outcomes = [await xiaolanben.import_customer(_customer(n)) for n in range(3)]
    assert [o.status for o in outcomes] == ["created"] * 3
    assert len(sim.customers) == 3
    assert sim.counters["refused_403"] == 1  # only the very first call, before any Date
    assert sim.counters["requests"] == 4


async def test_without_a_date_header_a_stale_clock_fails_with_a_clear_error(
    settings: Settings, sandbox: Sandbox
) -> None:
    """No `Date` to learn from (a proxy stripped it): refused once, named, not retried."""

    sandbox.xiaolanben.faults.clock_skew = 30
    with serve(WithoutDate(sandbox.xiaolanben.app)) as served:
        config = settings.xiaolanben.model_copy(update={"base_url": served.url})
        async with XiaolanbenClient(config, retry=NO_WAIT) as client:
            with pytest.raises(RequestRejectedError) as caught:
                async with asyncio.timeout(BOUND):
                    await client.import_customer(_customer(1))
    text = str(caught.value)
    assert EXPIRED in text
    assert "within 10 s of the vendor's clock" in text
    assert "NTP" in text
    assert sandbox.xiaolanben.customers == {}


def test_the_tolerance_is_below_the_window() -> None:
    assert SKEW_TOLERANCE < 10 / 2


# --- Bangwo8: a token revoked in the middle of an import ---------------------------------


@pytest.fixture
async def bangwo8(settings: Settings) -> AsyncIterator[Bangwo8Client]:
    # the default limiter: the simulator allows Bangwo8's 10 requests per second
    async with Bangwo8Client(
        settings.bangwo8, crmops=CrmopsSettings(http_timeout=5), retry=NO_WAIT
    ) as client:
        yield client


@pytest.mark.parametrize("revoked_after", [1, 4])
async def test_a_token_revoked_mid_import_is_refreshed_once_and_nothing_is_lost_or_doubled(
    revoked_after: int, sandbox: Sandbox, bangwo8: Bangwo8Client
) -> None:
    sim = sandbox.bangwo8
    sim.expire_tokens_after(revoked_after)
    async with asyncio.timeout(BOUND):
        tickets = [
            await bangwo8.create_ticket({"subject": f"导入{n}", "message": "内容"})
            for n in range(6)
        ]
    assert len({t.id for t in tickets}) == 6
    assert len(sim.tickets) == 6
    assert sim.counters["tokens_issued"] == 2  # the first, and one after the revocation
    assert sim.counters["unauthorized"] == 1  # one 401, answered by a refresh and a resend


async def test_concurrent_calls_share_one_refresh_after_a_revocation(
    sandbox: Sandbox, bangwo8: Bangwo8Client
) -> None:
    sim = sandbox.bangwo8
    await bangwo8.create_ticket({"subject": "预热", "message": "内容"})
    sim.expire_tokens()
    async with asyncio.timeout(BOUND):
        await asyncio.gather(
            *(bangwo8.create_ticket({"subject": f"并发{n}", "message": "内容"}) for n in range(6))
        )
    assert len(sim.tickets) == 7
    assert sim.counters["tokens_issued"] <= 3


async def test_warning_names_the_skew_but_no_secret(
    sandbox: Sandbox, xiaolanben: XiaolanbenClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    sandbox.xiaolanben.faults.clock_skew = -20
    await xiaolanben.import_customer(_customer(7))
    assert "ahead of the vendor's" in caplog.text
