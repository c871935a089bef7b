"""The simulators, for the CLI's languages against them; `configured`: the environment of a
CLI run against them (vendor settings, a SQLite file of the test, no retries)."""

from pathlib import Path

import pytest

from tests.sandbox_fixtures import Sandbox, sandbox

__all__ = ["configured", "sandbox"]


@pytest.fixture
def configured(sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    for name, value in sandbox.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CRMOPS_DB", str(tmp_path / "crmops.db"))
    monkeypatch.setenv("CRMOPS_MAX_ATTEMPTS", "1")
    return sandbox
