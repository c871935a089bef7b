"""`crmops mcp`: the crmops tools over MCP, on stdio (the default) or streamable HTTP.

    crmops mcp                          # MCP over stdio (for Claude Desktop, Cursor, ...)
    crmops mcp --http --port 8000       # MCP over streamable HTTP at /mcp, bearer token required
    crmops mcp --read-only --tools lookup_error_code,list_staff

`register(app)` adds the command to a Typer app.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import anyio
import typer

from server.mcp_server import build_server, parse_tool_names
from tools.exit_codes import failures_as_exit_codes
from tools.redaction import install_log_redaction
from tools.settings import Settings


def register(app: typer.Typer) -> None:
    """Add `crmops mcp` to `app`."""
    app.command("mcp")(mcp)


def mcp(
    *,
    http: Annotated[
        bool, typer.Option("--http", help="serve streamable HTTP at /mcp instead of stdio")
    ] = False,
    host: Annotated[str, typer.Option(help="HTTP: address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP: port to bind", min=1, max=65535)] = 8000,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-host",
            help="HTTP: another Host name clients use to reach this server (repeatable)",
        ),
    ] = None,
    read_only: Annotated[
        bool,
        typer.Option("--read-only", help="serve only tools that change nothing (CRMOPS_READ_ONLY)"),
    ] = False,
    tools: Annotated[
        str | None,
        typer.Option(help="comma-separated tool names to serve (CRMOPS_TOOLS)"),
    ] = None,
    env_file: Annotated[
        Path, typer.Option("--env-file", help="settings file read after the environment")
    ] = Path(".env"),
) -> None:
    """Serve the crmops tools over MCP: stdio by default, or HTTP with --http."""
    _log_to_stderr()
    with failures_as_exit_codes():
        settings = Settings.load(env_file=env_file)
        names = parse_tool_names(tools) if tools is not None else None
        server = build_server(settings, read_only=read_only, tools=names)
        if not http:
            anyio.run(server.run_stdio_async)
            return
        # Starlette, uvicorn and the readiness probes only when serving HTTP: stdio is the
        # common case and starts faster without them.
        from server.http_app import SessionLimits, build_http_app  # noqa: PLC0415 - start-up cost
        from tools.serving import serve_http  # noqa: PLC0415 - start-up cost
        from tools.storage.shared import readiness_checks  # noqa: PLC0415 - start-up cost

        http_app = build_http_app(
            server,
            token=settings.crmops.mcp_token,
            host=host,
            allowed_hosts=allow_host or (),
            checks=readiness_checks(settings.crmops),
            sessions=SessionLimits.of(settings.crmops),
        )
        anyio.run(lambda: serve_http(http_app, host=host, port=port, name="MCP", lifespan="on"))


def _log_to_stderr() -> None:
    # stdout carries the MCP protocol over stdio: nothing else may be written there.
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    install_log_redaction()  # no secret in any form in a log line (tools.redaction)
