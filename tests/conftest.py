"""Fixtures shared by the whole suite."""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import traceback
from collections.abc import Generator, Iterator
from pathlib import Path
from urllib.parse import unquote_plus

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from tools.transport import RetryPolicy

# Property tests are deterministic (CI reruns give the same examples) and kept small: each
# example drives a real MCP session or CLI run. HYPOTHESIS_PROFILE=thorough digs deeper.
hypothesis_settings.register_profile(
    "crmops",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=12,
    print_blob=False,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
hypothesis_settings.register_profile(
    "thorough", parent=hypothesis_settings.get_profile("crmops"), max_examples=300
)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "crmops"))


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
    # Nor the developer's language: crmops speaks English unless a test chooses (tools.i18n).
    for name in ("LC_ALL", "LC_MESSAGES", "LANGUAGE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.chdir(tmp_path)
    # The default database (tools.bulk.data_dir) of a tool that writes: never the real one.
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


# --- canary secrets ----------------------------------------------------------------------

CANARY = "CANARY"
"""Every secret the suite hands to crmops contains this marker (tools/sandbox/stack.py, the Bangwo8
simulator's defaults, tests/bots/conftest.py). A test fails when it shows up in what the
test printed (stdout, stderr) or in any log record, whatever the record's level."""

_leaks_key = pytest.StashKey[list[str]]()
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{8,}={0,2}")


def shows_canary(text: str) -> bool:
    """Whether `text` carries the canary: as is, URL-encoded, or inside base64 (the form
    HTTP Basic sends `user:secret` in, where the marker itself never appears)."""
    if CANARY in text or CANARY in unquote_plus(text):
        return True
    for run in _BASE64_RUN.findall(text):
        standard = run.replace("-", "+").replace("_", "/").rstrip("=")
        try:
            decoded = base64.b64decode(standard + "=" * (-len(standard) % 4))
        except (binascii.Error, ValueError):
            continue
        if CANARY.encode() in decoded:
            return True
    return False


class _CanaryWatch(logging.Handler):
    """Sees every log record of a test; keeps those that carry the canary."""

    def __init__(self, leaks: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.leaks = leaks

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a broken format string: check the raw parts
            text = f"{record.msg} {record.args}"
        if record.exc_info:
            text += "".join(traceback.format_exception(*record.exc_info))
        if shows_canary(text):
            self.leaks.append(f"log record of {record.name!r}: {text[:300]!r}")


@pytest.fixture(autouse=True)
def _canary_watch(request: pytest.FixtureRequest) -> Iterator[None]:
    """Log records pass the canary watch during the test (crmops's at every level)."""
    leaks = request.node.stash.setdefault(_leaks_key, [])
    root, ours = logging.getLogger(), logging.getLogger("crmops")
    watch = _CanaryWatch(leaks)
    levels = root.level, ours.level
    root.addHandler(watch)
    # crmops's own records at every level; libraries' from INFO (their DEBUG is slow).
    root.setLevel(logging.INFO)
    ours.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.setLevel(levels[0])
        ours.setLevel(levels[1])
        root.removeHandler(watch)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Fails a passing test (its call, or its teardown) in which a canary showed up."""
    report = yield
    if report.when == "setup" or not report.passed:
        return report
    leaks: list[str] = item.stash.get(_leaks_key, [])
    leaks += [
        f"captured {name!r}"
        for name, text in report.sections
        if name.endswith(report.when) and shows_canary(text)
    ]
    if leaks:
        report.outcome = "failed"
        report.longrepr = "a canary secret leaked: " + "; ".join(dict.fromkeys(leaks))
        leaks.clear()  # reported once, not again at teardown
    return report
