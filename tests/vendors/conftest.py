"""The registry's tests run against the vendor simulators on loopback."""

from tests.sandbox_fixtures import sandbox

__all__ = ["sandbox"]
