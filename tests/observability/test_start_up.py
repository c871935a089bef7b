"""Observability costs the commands that do not use it nothing: `crmops errors`, `--help` and
an MCP session that lists tools load neither prometheus_client nor OpenTelemetry's SDK."""

from __future__ import annotations

import json
from pathlib import Path

from tests.server.test_startup import MCP_SESSION, loaded_by, packages

EXPORTERS = {"opentelemetry.sdk", "opentelemetry.exporter"}


def test_errors_and_help_load_no_metrics_or_tracing(tmp_path: Path) -> None:
    for args in (["errors", "502"], ["--help"]):
        modules, _ = loaded_by(tmp_path, *args)
        assert "prometheus_client" not in packages(modules), args
        assert "opentelemetry" not in packages(modules), args
        assert not {m for m in modules if m.startswith("tools.observability.")}, args


def test_listing_mcp_tools_loads_no_metrics(tmp_path: Path) -> None:
    session = "".join(json.dumps(message) + "\n" for message in MCP_SESSION)
    modules, stdout = loaded_by(tmp_path, "mcp", stdin=session, answered=2)
    assert json.loads(stdout.splitlines()[-1])["id"] == 2
    assert "prometheus_client" not in packages(modules)
    assert not {m for m in modules if m.startswith(tuple(EXPORTERS))}  # no OTEL_* set
