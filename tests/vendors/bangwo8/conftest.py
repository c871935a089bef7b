"""A Bangwo8 simulator on loopback with a clock the test controls, and clients for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from pydantic import SecretStr

from tools.sandbox.bangwo8 import (
    SANDBOX_ACCOUNT,
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_PASSWORD,
    Bangwo8Simulator,
)
from tools.sandbox.simulation import ServedApp, serve
from tools.settings import Bangwo8Settings
from tools.transport import LocalRateLimiter, RetryPolicy
from tools.vendors.bangwo8.client import Bangwo8Client


class FakeClock:
    """Epoch seconds that move only when the test says so."""

    def __init__(self, now: float = 1_714_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> Bangwo8Simulator:
    return Bangwo8Simulator(clock=clock, rate_limit=None)


@pytest.fixture
def served(sim: Bangwo8Simulator) -> Iterator[ServedApp]:
    with serve(sim.app) as served:
        yield served


def basic_settings(url: str, password: SecretStr = SANDBOX_PASSWORD) -> Bangwo8Settings:
    return Bangwo8Settings(base_url=url, account=SANDBOX_ACCOUNT, password=password)


def oauth_settings(url: str, secret: SecretStr = SANDBOX_CLIENT_SECRET) -> Bangwo8Settings:
    return Bangwo8Settings(base_url=url, client_id=SANDBOX_CLIENT_ID, client_secret=secret)


MakeClient = Callable[[Bangwo8Settings], Bangwo8Client]


@pytest.fixture
async def make_client(clock: FakeClock, no_wait_retry: RetryPolicy) -> AsyncIterator[MakeClient]:
    """Builds clients (no rate-limit waits, no retry sleeps) and closes them afterwards."""
    clients: list[Bangwo8Client] = []

    def make(settings: Bangwo8Settings) -> Bangwo8Client:
        client = Bangwo8Client(
            settings, rate_limiter=LocalRateLimiter(1000), retry=no_wait_retry, clock=clock
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
def basic_client(make_client: MakeClient, served: ServedApp) -> Bangwo8Client:
    return make_client(basic_settings(served.url))


@pytest.fixture
def oauth_client(make_client: MakeClient, served: ServedApp) -> Bangwo8Client:
    return make_client(oauth_settings(served.url))
