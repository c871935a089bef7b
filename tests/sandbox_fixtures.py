"""Fixtures: the three vendor simulators on loopback (unseeded), and settings/services for them.

Conftests import the fixtures they need from here (`from tests.sandbox_fixtures import sandbox`).
The sandbox itself is product code: `tools.sandbox`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tools.sandbox.stack import SANDBOX_SECRETS, SE_AGENT, Sandbox, start_sandbox
from tools.services import Services
from tools.settings import Settings
from tools.transport import RetryPolicy

SECRETS = SANDBOX_SECRETS
"""Values that must never appear in any answer, error or log line."""

__all__ = ["SECRETS", "SE_AGENT", "Sandbox", "sandbox", "services", "settings"]


def unconfigured_settings() -> Settings:
    """Settings with no vendor configured (the test environment is empty)."""
    return Settings.load(env_file=None)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with start_sandbox(seed=False) as running:
        yield running


@pytest.fixture
def settings(sandbox: Sandbox) -> Settings:
    return sandbox.settings()


@pytest.fixture
async def services(settings: Settings, no_wait_retry: RetryPolicy) -> AsyncIterator[Services]:
    async with Services(settings, retry=no_wait_retry) as services:
        yield services
