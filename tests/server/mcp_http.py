"""The MCP HTTP app served on loopback, and the raw requests tests send to it::

with serve_mcp_http(settings, token) as url:
    httpx.post(f"{url}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, ...})
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import SecretStr

from server.http_app import build_http_app
from server.mcp_server import build_server
from tools.sandbox.simulation import serve
from tools.settings import Settings

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "0"},
    },
}
"""An MCP `initialize` request, the first a client sends."""
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


@contextmanager
def serve_mcp_http(settings: Settings, token: str, *, read_only: bool = False) -> Iterator[str]:
    """The whole HTTP app for `settings`, requiring `token`, served by uvicorn (lifespan on)
    in a thread; yields its base URL."""
    settings.crmops.mcp_token = SecretStr(token)
    server = build_server(settings, read_only=read_only)
    app = build_http_app(server, token=settings.crmops.mcp_token, host="127.0.0.1")
    with serve(app, lifespan="on") as served:
        yield served.url
