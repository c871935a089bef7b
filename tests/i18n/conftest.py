"""The simulators, for the CLI's languages against them."""

from tests.sandbox_fixtures import sandbox

__all__ = ["sandbox"]
