"""The three vendor simulators served on loopback, with the settings that point at them.

The sandbox lets a new user (and the test suite) run every tool with no vendor account::

    with start_sandbox() as sandbox:           # seeded demo data, free ports
        settings = sandbox.settings()           # every vendor configured for it
        env = sandbox.env()                     # the same, as environment variables

The credentials below are the sandbox's own demo values, valid nowhere else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from pydantic import SecretStr

from tools.settings import (
    Bangwo8Settings,
    CrmopsSettings,
    Settings,
    SocialEpochSettings,
    XiaolanbenSettings,
)
from tools.simulation import ServedApp, start_server
from tools.vendors.bangwo8 import Bangwo8Simulator
from tools.vendors.socialepoch import SocialEpochSimulator
from tools.vendors.xiaolanben import XiaolanbenSimulator

SE_TENANT = "10001"
SE_API_KEY = "sim-se-QOEAcPj6Tb8XRhwFvYih"
SE_ADMIN = "admin"
SE_AGENT = "agent01"
XLB_COMPANY = "company-42"
XLB_SIGN_KEY = "sim-xlb-9f3c1d2e7a"
BW8_CLIENT_ID = "sandbox-client"
BW8_CLIENT_SECRET = "sim-bw8-client-secret-7f1e"  # noqa: S105 - the sandbox demo value
SANDBOX_SECRETS = (SE_API_KEY, XLB_SIGN_KEY, BW8_CLIENT_SECRET)
"""The sandbox's secret values: none may appear in any answer, error or log line."""


@dataclass
class Sandbox:
    """The simulators and the loopback URL each is served at."""

    socialepoch: SocialEpochSimulator
    xiaolanben: XiaolanbenSimulator
    bangwo8: Bangwo8Simulator
    socialepoch_url: str
    xiaolanben_url: str
    bangwo8_url: str
    served: list[ServedApp] = field(default_factory=list, repr=False)

    def env(self) -> dict[str, str]:
        """The environment a `crmops` process needs to use the sandbox."""
        return {
            "SOCIALEPOCH_BASE_URL": self.socialepoch_url,
            "SOCIALEPOCH_TENANT_ID": SE_TENANT,
            "SOCIALEPOCH_API_KEY": SE_API_KEY,
            "SOCIALEPOCH_USER_NAME": SE_ADMIN,
            "SOCIALEPOCH_AGENT_ACCOUNT": SE_AGENT,
            "XIAOLANBEN_BASE_URL": self.xiaolanben_url,
            "XIAOLANBEN_COMPANY_ID": XLB_COMPANY,
            "XIAOLANBEN_SIGN_KEY": XLB_SIGN_KEY,
            "BANGWO8_BASE_URL": self.bangwo8_url,
            "BANGWO8_CLIENT_ID": BW8_CLIENT_ID,
            "BANGWO8_CLIENT_SECRET": BW8_CLIENT_SECRET,
        }

    def settings(self, crmops: CrmopsSettings | None = None) -> Settings:
        """Settings with every vendor configured for the sandbox."""
        return Settings(
            crmops=crmops or CrmopsSettings(),
            socialepoch=SocialEpochSettings(
                base_url=self.socialepoch_url,
                tenant_id=SE_TENANT,
                api_key=SecretStr(SE_API_KEY),
                user_name=SE_ADMIN,
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

    def stop(self) -> None:
        """Stop serving (all told first, so they wind down together)."""
        for each in self.served:
            each.server.should_exit = True
        for each in self.served:
            each.stop()


def build_simulators(
    *, seed: bool = True
) -> tuple[SocialEpochSimulator, XiaolanbenSimulator, Bangwo8Simulator]:
    """The three simulators with the sandbox credentials, seeded with demo data if asked."""
    socialepoch = SocialEpochSimulator(
        tenant_id=SE_TENANT, api_key=SE_API_KEY, user_name=SE_ADMIN, agent_accounts=[SE_AGENT]
    )
    xiaolanben = XiaolanbenSimulator(company_id=XLB_COMPANY, sign_key=XLB_SIGN_KEY)
    bangwo8 = Bangwo8Simulator(client_id=BW8_CLIENT_ID, client_secret=SecretStr(BW8_CLIENT_SECRET))
    if seed:
        socialepoch.seed()
        xiaolanben.seed()
        bangwo8.seed()
    return socialepoch, xiaolanben, bangwo8


def serve_sandbox(
    *, seed: bool = True, host: str = "127.0.0.1", ports: tuple[int, int, int] = (0, 0, 0)
) -> Sandbox:
    """Start the simulators on `host` (port 0: any free port). Call `stop()` when done."""
    simulators = build_simulators(seed=seed)
    served: list[ServedApp] = []
    try:
        for sim, port in zip(simulators, ports, strict=True):
            served.append(start_server(sim.app, host=host, port=port))
    except BaseException:
        for each in served:
            each.stop()
        raise
    socialepoch, xiaolanben, bangwo8 = simulators
    return Sandbox(
        socialepoch=socialepoch,
        xiaolanben=xiaolanben,
        bangwo8=bangwo8,
        socialepoch_url=served[0].url,
        xiaolanben_url=served[1].url,
        bangwo8_url=served[2].url,
        served=served,
    )


@contextlib.contextmanager
def start_sandbox(
    *, seed: bool = True, host: str = "127.0.0.1", ports: tuple[int, int, int] = (0, 0, 0)
) -> Iterator[Sandbox]:
    """`with start_sandbox() as sandbox:` — the simulators served for the block's duration."""
    sandbox = serve_sandbox(seed=seed, host=host, ports=ports)
    try:
        yield sandbox
    finally:
        sandbox.stop()
