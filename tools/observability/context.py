"""What the log lines of the current task are about: set by `tools.observability.calls`,
read by the JSON log format (`tools.observability.logs`). Only bounded names and ids: a tool
name, a vendor name, a request id crmops made; never arguments or answers."""

from __future__ import annotations

from contextvars import ContextVar

REQUEST_ID: ContextVar[str | None] = ContextVar("crmops_request_id", default=None)
"""The id of the tool call under way (one per call, made by crmops)."""
TOOL: ContextVar[str | None] = ContextVar("crmops_tool", default=None)
"""The tool being called (its name in the tool table)."""
VENDOR: ContextVar[str | None] = ContextVar("crmops_vendor", default=None)
"""The vendor being asked."""
