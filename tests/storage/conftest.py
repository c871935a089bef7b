"""Fixtures of the storage backends: a private redis-server and PostgreSQL, and the store
on each backend in turn."""

from __future__ import annotations

from tests.storage.postgres_server import postgres_server, postgres_url
from tests.storage.redis_server import redis_server, redis_url
from tests.storage.stores import open_store_again, store

__all__ = [
    "open_store_again",
    "postgres_server",
    "postgres_url",
    "redis_server",
    "redis_url",
    "store",
]
