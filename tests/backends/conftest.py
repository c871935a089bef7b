"""Fixtures of the shared-state backends: a private redis-server (and PostgreSQL)."""

from __future__ import annotations

from tests.backends.postgres_server import postgres_server, postgres_url
from tests.backends.redis_server import redis_server, redis_url

__all__ = ["postgres_server", "postgres_url", "redis_server", "redis_url"]
