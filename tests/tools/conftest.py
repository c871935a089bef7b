"""Tool functions run against the vendor simulators on loopback."""

from tests.sandbox import sandbox, services, settings

__all__ = ["sandbox", "services", "settings"]
