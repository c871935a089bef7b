"""The three vendor simulators served on loopback, with settings and services pointed at them.

Conftests import the fixtures they need from here (`from tests.sandbox import sandbox`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from pydantic import SecretStr

from tools.services import Services
from tools.settings import (
    Bangwo8Settings,
    CrmopsSettings,
    Settings,
    SocialEpochSettings,
    XiaolanbenSettings,
)
from tools.simulation import start_server
from tools.transport import RetryPolicy
from tools.vendors.bangwo8 import Bangwo8Simulator
from tools.vendors.socialepoch import SocialEpochSimulator
from tools.vendors.xiaolanben import XiaolanbenSimulator

SE_TENANT = "10001"
SE_API_KEY = "sim-se-QOEAcPj6Tb8XRhwFvYih"
SE_AGENT = "agent01"
XLB_COMPANY = "company-42"
XLB_SIGN_KEY = "sim-xlb-9f3c1d2e7a"
BW8_CLIENT_ID = "sandbox-client"
BW8_CLIENT_SECRET = "sim-bw8-client-secret-7f1e"
SECRETS = (SE_API_KEY, XLB_SIGN_KEY, BW8_CLIENT_SECRET)
"""Values that must never appear in any answer, error or log line."""


@dataclass
class Sandbox:
    """The simulators and the loopback URL each is served at."""

    socialepoch: SocialEpochSimulator
    xiaolanben: XiaolanbenSimulator
    bangwo8: Bangwo8Simulator
    socialepoch_url: str
    xiaolanben_url: str
    bangwo8_url: str

    def env(self) -> dict[str, str]:
        """The environment a `crmops` process needs to use the sandbox."""
        return {
            "SOCIALEPOCH_BASE_URL": self.socialepoch_url,
            "SOCIALEPOCH_TENANT_ID": SE_TENANT,
            "SOCIALEPOCH_API_KEY": SE_API_KEY,
            "SOCIALEPOCH_AGENT_ACCOUNT": SE_AGENT,
            "XIAOLANBEN_BASE_URL": self.xiaolanben_url,
            "XIAOLANBEN_COMPANY_ID": XLB_COMPANY,
            "XIAOLANBEN_SIGN_KEY": XLB_SIGN_KEY,
            "BANGWO8_BASE_URL": self.bangwo8_url,
            "BANGWO8_CLIENT_ID": BW8_CLIENT_ID,
            "BANGWO8_CLIENT_SECRET": BW8_CLIENT_SECRET,
        }

    def settings(self) -> Settings:
        """Settings with every vendor configured for the sandbox."""
        return Settings(
            crmops=CrmopsSettings(),
            socialepoch=SocialEpochSettings(
                base_url=self.socialepoch_url,
                tenant_id=SE_TENANT,
                api_key=SecretStr(SE_API_KEY),
                agent_account=SE_AGENT,
            ),
            xiaolanben=XiaolanbenSettings(
                base_url=self.xiaolanben_url,
                company_id=XLB_COMPANY,
                sign_key=SecretStr(XLB_SIGN_KEY),
            ),
            bangwo8=Bangwo8Settings(
                base_url=self.bangwo8_url,
                client_id=BW8_CLIENT_ID,
                client_secret=SecretStr(BW8_CLIENT_SECRET),
            ),
        )


def unconfigured_settings() -> Settings:
    """Settings with no vendor configured (the test environment is empty)."""
    return Settings.load(env_file=None)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    socialepoch = SocialEpochSimulator(
        tenant_id=SE_TENANT, api_key=SE_API_KEY, agent_accounts=[SE_AGENT]
    )
    xiaolanben = XiaolanbenSimulator(company_id=XLB_COMPANY, sign_key=XLB_SIGN_KEY)
    bangwo8 = Bangwo8Simulator(client_id=BW8_CLIENT_ID, client_secret=SecretStr(BW8_CLIENT_SECRET))
    served = [start_server(sim.app) for sim in (socialepoch, xiaolanben, bangwo8)]
    try:
        yield Sandbox(socialepoch, xiaolanben, bangwo8, *(each.url for each in served))
    finally:
        for each in served:  # all told first, so they wind down together
            each.server.should_exit = True
        for each in served:
            each.stop()


@pytest.fixture
def settings(sandbox: Sandbox) -> Settings:
    return sandbox.settings()


@pytest.fixture
async def services(settings: Settings, no_wait_retry: RetryPolicy) -> AsyncIterator[Services]:
    async with Services(settings, retry=no_wait_retry) as services:
        yield services
