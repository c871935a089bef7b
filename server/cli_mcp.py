"""`crmops mcp`: the crmops tools over MCP, on stdio (the default) or streamable HTTP.

    crmops mcp                          # MCP over stdio (for Claude Desktop, Cursor, ...)
    crmops mcp --http --port 8000       # MCP over streamable HTTP at /mcp, bearer token required
                                        # (CRMOPS_MCP_TOKEN and/or CRMOPS_OAUTH_ISSUER's tokens)
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
from tools.i18n import marked
from tools.observability.logs import configure_logging
from tools.policy import policy_from_settings
from tools.services import Services
from tools.settings import Settings


def register(app: typer.Typer) -> None:
    """Add `crmops mcp` to `app`."""
    app.command("mcp")(mcp)


def mcp(
    *,
    http: Annotated[
        bool, typer.Option("--http", help=marked("serve streamable HTTP at /mcp instead of stdio"))
    ] = False,
    host: Annotated[str, typer.Option(help=marked("HTTP: address to bind"))] = "127.0.0.1",
    port: Annotated[int, typer.Option(help=marked("HTTP: port to bind"), min=1, max=65535)] = 8000,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-host",
            help=marked("HTTP: another Host name clients use to reach this server (repeatable)"),
        ),
    ] = None,
    read_only: Annotated[
        bool,
        typer.Option(
            "--read-only", help=marked("serve only tools that change nothing (CRMOPS_READ_ONLY)")
        ),
    ] = False,
    tools: Annotated[
        str | None,
        typer.Option(help=marked("comma-separated tool names to serve (CRMOPS_TOOLS)")),
    ] = None,
    env_file: Annotated[
        Path, typer.Option("--env-file", help=marked("settings file read after the environment"))
    ] = Path(".env"),
) -> None:
    """Serve the crmops tools over MCP: stdio by default, or HTTP with --http."""
    _log_to_stderr(env_file)
    with failures_as_exit_codes():
        settings = Settings.load(env_file=env_file)
        names = parse_tool_names(tools) if tools is not None else None
        # Over HTTP the command holds the services, for the audit of refused calls too.
        services = Services(settings) if http else None
        server = build_server(
            settings,
            services=services,
            read_only=read_only,
            tools=names,
            policy=policy_from_settings(env_file),  # the CRMOPS_MCP_* access rules
        )
        if services is None:
            anyio.run(server.run_stdio_async)
            return
        # Starlette, uvicorn and the readiness probes only when serving HTTP: stdio is the
        # common case and starts faster without them.
        from server.http_app import SessionLimits, build_http_app  # noqa: PLC0415 - start-up cost
        from server.http_auth import audit_refusals  # noqa: PLC0415 - start-up cost
        from server.oauth import OAuthConfig  # noqa: PLC0415 - start-up cost
        from tools.serving import serve_http  # noqa: PLC0415 - start-up cost
        from tools.storage.shared import readiness_checks  # noqa: PLC0415 - start-up cost

        http_app = build_http_app(
            server,
            token=settings.crmops.mcp_token,
            host=host,
            allowed_hosts=allow_host or (),
            checks=readiness_checks(settings.crmops),
            sessions=SessionLimits.of(settings.crmops),
            oauth=OAuthConfig.of(settings.crmops),
            on_refused=audit_refusals(services),
            metrics_token=settings.crmops.metrics_token,
        )

        async def serve() -> None:
            try:
                await serve_http(http_app, host=host, port=port, name="MCP", lifespan="on")
            finally:
                await services.aclose()

        anyio.run(serve)


def _log_to_stderr(env_file: Path) -> None:
    # stdout carries the MCP protocol over stdio: nothing else may be written there.
    # Text or JSON lines (CRMOPS_LOG_FORMAT), redacted (tools.redaction).
    configure_logging(level=logging.INFO, env_file=env_file, stream=sys.stderr)
