"""`CRMOPS_LOG_FORMAT=json`: one JSON object a line, with the call's context, redacted."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.observability.calls import VendorRequest, observe_tool
from tools.observability.logs import JsonFormatter, chosen_log_format
from tools.redaction import install_log_redaction, register

SECRET = "log-secret-CANARY-7d1f0e9c"


@pytest.fixture
def json_log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger writing JSON lines to a buffer through the redaction filter."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("crmops.test.json")
    logger.propagate = False  # the canary watch would (rightly) see the raw secret
    logger.addHandler(handler)
    install_log_redaction(logger)
    try:
        yield logger, buffer
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def _lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


async def test_a_line_names_the_tool_the_vendor_and_the_request(
    json_log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, buffer = json_log

    async def tool() -> None:
        logger.info("before the vendor")
        with VendorRequest("bangwo8", "list_tickets", "GET", "/api/v1/tickets.json"):
            logger.warning("bangwo8 list_tickets: retrying after %s", "ServerError")

    logger.info("outside")
    await observe_tool("list_tickets", "cli", tool())

    outside, before, retry = _lines(buffer)
    assert outside["logger"] == "crmops.test.json"
    assert (outside["level"], outside["message"]) == ("INFO", "outside")
    assert (outside["request_id"], outside["tool"], outside["vendor"]) == (None, None, None)
    assert str(outside["time"]).endswith("+00:00")
    assert (before["tool"], before["vendor"]) == ("list_tickets", None)
    assert before["request_id"]
    assert retry["level"] == "WARNING"
    assert retry["message"] == "bangwo8 list_tickets: retrying after ServerError"
    assert (retry["tool"], retry["vendor"]) == ("list_tickets", "bangwo8")
    assert retry["request_id"] == before["request_id"]


def test_secrets_are_redacted_in_json_lines_and_tracebacks(
    json_log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, buffer = json_log
    register([SECRET])

    logger.warning("the key is %s 中文", SECRET)
    try:
        int(f"boom with {SECRET}")
    except ValueError:
        logger.exception("failed")

    text = buffer.getvalue()
    assert SECRET not in text
    assert "CANARY" not in text
    warning, failure = _lines(buffer)
    assert warning["message"] == "the key is *** 中文"  # non-ASCII kept as is
    assert "ValueError: invalid literal for int() with base 10: 'boom with ***'" in str(
        failure["exception"]
    )
    assert len(text.splitlines()) == 2  # a traceback stays inside its one line


def test_the_format_comes_from_the_environment_then_the_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("CRMOPS_LOG_FORMAT=json\n", encoding="utf-8")

    assert chosen_log_format(None, {}) == "text"
    assert chosen_log_format(env_file, {}) == "json"
    assert chosen_log_format(env_file, {"CRMOPS_LOG_FORMAT": "text"}) == "text"
    assert chosen_log_format(None, {"CRMOPS_LOG_FORMAT": " JSON "}) == "json"
    assert chosen_log_format(None, {"CRMOPS_LOG_FORMAT": "xml"}) == "text"
