"""Tool functions run against the vendor simulators on loopback."""

from tests.sandbox_fixtures import sandbox, services, settings

__all__ = ["sandbox", "services", "settings"]
