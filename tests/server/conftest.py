"""The MCP server, driven by a real MCP client, against the vendor simulators."""

from tests.sandbox import sandbox, services, settings

__all__ = ["sandbox", "services", "settings"]
