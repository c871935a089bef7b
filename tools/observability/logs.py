"""How crmops's servers log: to stderr, as text (the default) or one JSON object a line::

    configure_logging(env_file=Path(".env"))          # CRMOPS_LOG_FORMAT=json for log shippers
    configure_logging(level=logging.WARNING, log_format="text")

A JSON line has `time` (UTC, ISO 8601), `level`, `logger`, `message`, `request_id`, `vendor`
and `tool` (null outside a tool call or vendor request; from `tools.observability.context`),
`trace_id` and `span_id` while a recorded span is current, and `exception` for a traceback.
Either format passes the redaction filter (`tools.redaction`) first, so no secret in any of
its forms reaches a line.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from tools.observability.context import REQUEST_ID, TOOL, VENDOR
from tools.redaction import install_log_redaction

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
SETTING = "CRMOPS_LOG_FORMAT"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (non-ASCII text kept as is)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": REQUEST_ID.get(),
            "vendor": VENDOR.get(),
            "tool": TOOL.get(),
        }
        line.update(_trace_ids())
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False, default=str)


def _trace_ids() -> dict[str, str]:
    # Only when OpenTelemetry is loaded already (by a vendor client or MCP): never for this.
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return {}
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


def chosen_log_format(env_file: Path | None = None, environ: dict[str, str] | None = None) -> str:
    """`CRMOPS_LOG_FORMAT` from the environment, else from `env_file`: `text` or `json`
    (`text` for anything else; the settings refuse such a value with a clear error)."""
    value = (environ if environ is not None else os.environ).get(SETTING)
    if value is None and env_file is not None and env_file.is_file():
        from dotenv import dotenv_values  # noqa: PLC0415 - only with a settings file

        value = dotenv_values(env_file).get(SETTING)
    chosen = (value or "text").strip().lower()
    return chosen if chosen in LOG_FORMATS else "text"


def configure_logging(
    *,
    level: int = logging.INFO,
    log_format: str | None = None,
    env_file: Path | None = None,
    stream: TextIO | None = None,
) -> None:
    """Log records at `level` and above to `stream` (stderr) in `log_format` (default: what
    `CRMOPS_LOG_FORMAT` says, see `chosen_log_format`), redacted. As `logging.basicConfig`, it does
    nothing to a root logger that has handlers already."""
    chosen = log_format or chosen_log_format(env_file)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if chosen == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
    install_log_redaction()  # no secret in any form in a log line (tools.redaction)
