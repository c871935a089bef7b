"""The MCP server, driven by a real MCP client, against the vendor simulators."""

from tests.sandbox_fixtures import sandbox, services, settings

__all__ = ["sandbox", "services", "settings"]
