"""Fixtures: a seeded Xiaolanben simulator on loopback and clients pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tools.sandbox.simulation import ServedApp, serve
from tools.sandbox.xiaolanben import XiaolanbenSimulator
from tools.settings import XiaolanbenSettings
from tools.transport import LocalRateLimiter, RetryPolicy
from tools.vendors.xiaolanben.client import XiaolanbenClient

COMPANY_ID = "20240101"
SIGN_KEY = "xlb-test-key-7f3a9c"

MakeClient = Callable[..., XiaolanbenClient]


@pytest.fixture
def sim() -> XiaolanbenSimulator:
    """A seeded simulator (25 staff, 3 customers) without a rate limit."""
    simulator = XiaolanbenSimulator(company_id=COMPANY_ID, sign_key=SIGN_KEY, rate_limit=None)
    simulator.seed()
    return simulator


@pytest.fixture
def served(sim: XiaolanbenSimulator) -> Iterator[ServedApp]:
    with serve(sim.app) as served:
        yield served


@pytest.fixture
def settings(served: ServedApp) -> XiaolanbenSettings:
    return XiaolanbenSettings(
        base_url=served.url, company_id=COMPANY_ID, sign_key=SecretStr(SIGN_KEY)
    )


@pytest.fixture
async def make_client(
    settings: XiaolanbenSettings, no_wait_retry: RetryPolicy
) -> AsyncIterator[MakeClient]:
    """Builds clients for the served simulator (closed after the test); kwargs override."""
    made: list[XiaolanbenClient] = []

    def make(**overrides: Any) -> XiaolanbenClient:
        client_settings = overrides.pop("settings", settings)
        options: dict[str, Any] = {
            "rate_limiter": LocalRateLimiter(1000),
            "retry": no_wait_retry,
        }
        options.update(overrides)
        client = XiaolanbenClient(client_settings, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


@pytest.fixture
async def client(make_client: MakeClient) -> XiaolanbenClient:
    return make_client()


class Recorder:
    """An `httpx.MockTransport` handler: keeps every request, answers 200 with JSON.

    The answer is a list for GET (the staff list) and an empty object for POST (an import).
    """

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json=[] if request.method == "GET" else {})
