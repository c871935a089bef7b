"""The three vendor simulators served on loopback, with the settings that point at them.

The sandbox lets a new user (and the test suite) run every tool with no vendor account::

    with start_sandbox() as sandbox:           # seeded demo data, free ports
        settings = sandbox.settings()           # every vendor configured for it
        env = sandbox.env()                     # the same, as environment variables

A sandbox that serves tools to people (`crmops sandbox`, its tour) keeps to itself: its
`CRMOPS_*` settings come from `self_contained_crmops`, never the user's environment or
`.env` (their database, Redis, PostgreSQL), and its journal and audit log are a
`throwaway_database`, gone when it stops.

The credentials below are the sandbox's own demo values, valid nowhere else.

`crmops sandbox` also runs the Slack bot against a fake Slack, in a child process (`server/`
never imports `bots/`): `crmops slack --sandbox` announces where it listens with one line
on stdout, `SlackSandboxUrls.line()`, which the parent reads with `SlackSandboxUrls.parse`.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource
from starlette.types import ASGIApp

from tools.errors import CrmopsError
from tools.sandbox.bangwo8 import SANDBOX_ACCOUNT, SANDBOX_PASSWORD, Bangwo8Simulator
from tools.sandbox.simulation import ServedApp, start_server
from tools.sandbox.socialepoch import SocialEpochSimulator
from tools.sandbox.xiaolanben import XiaolanbenSimulator
from tools.settings import (
    Bangwo8Settings,
    CrmopsSettings,
    Settings,
    SocialEpochSettings,
    XiaolanbenSettings,
)
from tools.vendors.registry import REGISTRY

SE_TENANT = "10001"
SE_API_KEY = "sim-se-CANARY-QOEAcPj6Tb8XRhwFvYih"
SE_ADMIN = "admin"
SE_AGENT = "agent01"
XLB_COMPANY = "company-42"
XLB_SIGN_KEY = "sim-xlb-CANARY-9f3c1d2e7a"
BW8_CLIENT_ID = "sandbox-client"
BW8_CLIENT_SECRET = "sim-bw8-CANARY-client-secret-7f1e"  # noqa: S105 - the sandbox demo value
SANDBOX_SECRETS = (SE_API_KEY, XLB_SIGN_KEY, BW8_CLIENT_SECRET)
"""The sandbox's secret values: none may appear in any answer, error or log line."""
SLACK_READY_MARK = "crmops-sandbox-slack-ready "


class _SelfContainedCrmopsSettings(CrmopsSettings):
    """`CrmopsSettings` from the values given and the defaults, nothing else."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def self_contained_crmops(**values: Any) -> CrmopsSettings:
    """`CRMOPS_*` settings for a sandbox: `values` (e.g. `db=`, `mcp_token=`) over the
    defaults, ignoring the environment and `.env`, so the user's `CRMOPS_DB`,
    `CRMOPS_DATABASE_URL` or `CRMOPS_REDIS_URL` never receive sandbox data."""
    return _SelfContainedCrmopsSettings(**values)


@contextlib.contextmanager
def throwaway_database(prefix: str = "crmops-sandbox-") -> Iterator[Path]:
    """`with throwaway_database() as db:` — a SQLite path (not yet created) in a fresh
    temporary folder, removed with everything in it when the block ends. Close the stores
    opened on it first."""
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        yield Path(folder) / "crmops.db"


class SandboxPortError(CrmopsError):
    """A port the sandbox wants is taken: another sandbox, or another server."""

    def __init__(self, what: str, error: OSError) -> None:
        super().__init__(
            f"cannot serve the sandbox's {what}: {error.strerror or error}. Is another "
            "`crmops sandbox` running? Stop it, or choose other ports with --mcp-port, "
            "--simulator-ports and --slack-ports (0: any free port)"
        )


@dataclass(frozen=True)
class SlackSandboxUrls:
    """Where the sandbox's Slack side listens: the bot's endpoint and the fake Slack."""

    events_url: str
    fake_slack_url: str

    @property
    def fake_api_url(self) -> str:
        """The fake Slack Web API (what `SLACK_API_URL` points at)."""
        return f"{self.fake_slack_url}/api/"

    def hook_url(self, name: str) -> str:
        """A `response_url` on the fake Slack; `GET` it to read what the bot posted there."""
        return f"{self.fake_slack_url}/hooks/{name}"

    def line(self) -> str:
        """The one stdout line `crmops slack --sandbox` prints once it serves."""
        return SLACK_READY_MARK + json.dumps(asdict(self))

    @classmethod
    def parse(cls, line: str) -> SlackSandboxUrls | None:
        """The URLs announced by `line`, or None for any other line."""
        if not line.startswith(SLACK_READY_MARK):
            return None
        data = json.loads(line.removeprefix(SLACK_READY_MARK))
        return cls(events_url=str(data["events_url"]), fake_slack_url=str(data["fake_slack_url"]))


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
        """The environment a `crmops` process needs to use the sandbox: every vendor setting
        that `settings()` sets, under its variable name (`tools.vendors.registry`)."""
        settings = self.settings()
        env: dict[str, str] = {}
        for row in REGISTRY:
            own = row.settings_of(settings)
            for name in type(own).model_fields:  # in declaration order: printed by --env
                if name in own.model_fields_set:
                    env[f"{row.env_prefix}{name.upper()}"] = _as_text(getattr(own, name))
        return env

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
                # 004's own sample signs in with Basic auth: --env prints these too. With a
                # client id set, crmops itself keeps using OAuth (Bangwo8Settings.uses_oauth).
                account=SANDBOX_ACCOUNT,
                password=SANDBOX_PASSWORD,
            ),
        )

    def stop(self) -> None:
        """Stop serving (all told first, so they wind down together)."""
        for each in self.served:
            each.server.should_exit = True
        for each in self.served:
            each.stop()


def _as_text(value: object) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else str(value)


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
            served.append(_start(sim.app, host=host, port=port, what=type(sim).__name__))
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


def _start(app: ASGIApp, *, host: str, port: int, what: str) -> ServedApp:
    try:
        return start_server(app, host=host, port=port)
    except OSError as exc:
        raise SandboxPortError(f"{what} on {host}:{port}", exc) from exc


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
