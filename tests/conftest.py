"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tools.transport import RetryPolicy


@pytest.fixture
def no_wait_retry() -> RetryPolicy:
    """Retries without sleeping, so retry paths run at full speed."""
    return RetryPolicy(attempts=4, wait_initial=0, wait_max=0, wait_jitter=0, timeout=20)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's real vendor settings or .env."""
    for name in list(os.environ):
        if name.startswith(("SOCIALEPOCH_", "XIAOLANBEN_", "BANGWO8_", "CRMOPS_", "SLACK_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
