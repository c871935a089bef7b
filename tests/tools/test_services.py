"""`Services`: one client per vendor, made on first use, closed together."""

from __future__ import annotations

import httpx
import pytest

from tests.sandbox_fixtures import Sandbox, unconfigured_settings
from tools.errors import ConfigurationError
from tools.services import Services
from tools.vendors.bangwo8.client import Bangwo8Client
from tools.vendors.socialepoch.client import SocialEpochClient
from tools.vendors.xiaolanben.client import XiaolanbenClient


async def test_each_vendor_client_is_made_once_and_reused(services: Services) -> None:
    assert isinstance(services.socialepoch, SocialEpochClient)
    assert isinstance(services.xiaolanben, XiaolanbenClient)
    assert isinstance(services.bangwo8, Bangwo8Client)
    assert services.socialepoch is services.socialepoch
    assert services.bangwo8 is services.bangwo8


async def test_an_unconfigured_vendor_names_its_missing_variables() -> None:
    async with Services(unconfigured_settings()) as services:
        with pytest.raises(ConfigurationError) as raised:
            _ = services.xiaolanben
    assert raised.value.missing == ["XIAOLANBEN_COMPANY_ID", "XIAOLANBEN_SIGN_KEY"]
    assert "XIAOLANBEN_SIGN_KEY" in str(raised.value)


async def test_one_configured_vendor_is_enough_for_its_tools(sandbox: Sandbox) -> None:
    settings = unconfigured_settings()
    settings.bangwo8 = sandbox.settings().bangwo8
    async with Services(settings) as services:
        assert isinstance(services.bangwo8, Bangwo8Client)
        with pytest.raises(ConfigurationError, match="SOCIALEPOCH_TENANT_ID"):
            _ = services.socialepoch


async def test_after_aclose_a_use_makes_a_fresh_client(services: Services) -> None:
    first = services.xiaolanben
    await services.aclose()
    second = services.xiaolanben
    assert second is not first
    staff = await second.list_staff()  # the fresh client works
    assert staff == []


class CountingLimiter:
    """A rate limiter that lets everything through and counts per API path."""

    def __init__(self) -> None:
        self.acquired: list[str] = []

    async def acquire(self, api: str) -> None:
        self.acquired.append(api)


async def test_transports_and_rate_limiters_can_be_injected(sandbox: Sandbox) -> None:
    settings = sandbox.settings()
    settings.bangwo8.base_url = "https://bangwo8.in-process"
    limiter = CountingLimiter()
    transports = {"bangwo8": httpx.ASGITransport(sandbox.bangwo8.app)}
    async with Services(settings, transports=transports, rate_limiters={"bangwo8": limiter}) as s:
        page = await s.bangwo8.list_tickets()
    assert page.count == 0
    assert "/api/v1/tickets.json" in limiter.acquired
    assert sandbox.bangwo8.counters["requests"] >= 1
