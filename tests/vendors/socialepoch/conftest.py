"""A SocialEpoch simulator served on loopback, and clients pointed at it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from tools.sandbox.simulation import ServedApp, serve
from tools.sandbox.socialepoch import SocialEpochSimulator
from tools.settings import CrmopsSettings, SocialEpochSettings
from tools.transport import RetryPolicy
from tools.vendors.socialepoch.client import SocialEpochClient

TENANT_ID = "10001"
API_KEY = "sim-QOEAcPj6Tb8XRhwFvYih"
ADMIN = "admin"
AGENT = "agent01"

ClientFactory = Callable[..., SocialEpochClient]


@pytest.fixture
def sim() -> SocialEpochSimulator:
    return SocialEpochSimulator(
        tenant_id=TENANT_ID,
        api_key=API_KEY,
        user_name=ADMIN,
        agent_accounts=[AGENT, "agent02"],
        extended_fields=["company", "customerLevel"],
    )


@pytest.fixture
def served(sim: SocialEpochSimulator) -> Iterator[ServedApp]:
    with serve(sim.app) as served:
        yield served


@pytest.fixture
def settings(served: ServedApp) -> SocialEpochSettings:
    return SocialEpochSettings(
        base_url=served.url,
        tenant_id=TENANT_ID,
        api_key=SecretStr(API_KEY),
        user_name=ADMIN,
        agent_account=AGENT,
    )


@pytest.fixture
async def make_client(
    settings: SocialEpochSettings, no_wait_retry: RetryPolicy
) -> AsyncIterator[ClientFactory]:
    """Builds clients (closed after the test); keywords override settings or the client's."""
    made: list[SocialEpochClient] = []

    def build(clock: Callable[[], float] = time.time, **overrides: Any) -> SocialEpochClient:
        transport = overrides.pop("transport", None)
        client = SocialEpochClient(
            settings.model_copy(update=overrides),
            crmops=CrmopsSettings(),
            retry=no_wait_retry,
            clock=clock,
            transport=transport,
        )
        made.append(client)
        return client

    yield build
    for client in made:
        await client.aclose()


@pytest.fixture
def client(make_client: ClientFactory) -> SocialEpochClient:
    return make_client()
