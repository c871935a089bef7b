"""The vendor clients a tool call needs: made on first use, closed together.

Every tool function takes a `Services` as its first argument, so an adapter (MCP server,
Slack bot, CLI) builds one per process and hands it to every call::

    async with Services(Settings.load()) as services:
        staff = await list_staff(services, search="张")

A client is created the first time a tool needs its vendor. A vendor without credentials
raises `ConfigurationError` naming the missing variables then, not at start-up, so a
process that only creates tickets runs with Bangwo8 configured alone. Any vendor's client
is `services.client(row)` for its row of `tools.vendors.registry`; `services.bangwo8` and the
other two properties are the same, typed.

Tests inject `transports` (e.g. `httpx.ASGITransport(sim.app)`), `rate_limiters` and a
`retry` policy per vendor name, and a `store` (journal + audit log) for the tools that write.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, TypeVar, cast

from tools.aio import AsyncClosing
from tools.settings import Settings, VendorSettings
from tools.storage.configured import open_store
from tools.storage.shared import SharedState
from tools.storage.store import Store
from tools.vendors.registry import (
    BANGWO8,
    SOCIALEPOCH,
    XIAOLANBEN,
    ClientOptions,
    VendorClient,
    VendorRow,
)

if TYPE_CHECKING:  # the clients load httpx: made, and imported, on first use (the registry)
    import httpx

    from tools.transport import RateLimiter, RetryPolicy
    from tools.vendors.bangwo8.client import Bangwo8Client
    from tools.vendors.socialepoch.client import SocialEpochClient
    from tools.vendors.xiaolanben.client import XiaolanbenClient

S = TypeVar("S", bound=VendorSettings)
C = TypeVar("C", bound=VendorClient)


class Services(AsyncClosing):
    """One lazily created client per vendor, sharing one `Settings`."""

    def __init__(
        self,
        settings: Settings,
        *,
        transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
        rate_limiters: Mapping[str, RateLimiter] | None = None,
        retry: RetryPolicy | None = None,
        store: Store | None = None,
    ) -> None:
        self.settings = settings
        self._store = store
        self._owns_store = False
        self._transports = dict(transports or {})
        self._rate_limiters = dict(rate_limiters or {})
        self._retry = retry
        self._clients: dict[str, VendorClient] = {}
        # CRMOPS_REDIS_URL: rate limits and tokens shared with other replicas.
        self.shared = SharedState(settings)

    def client(self, row: VendorRow[S, C]) -> C:
        """The client of the vendor `row` describes (`tools.vendors.registry`), made on first
        use; `ConfigurationError` naming what to set when its settings are incomplete."""
        client = self._clients.get(row.name)
        if client is None:
            own = row.settings_of(self.settings)
            own.require()
            client = row.client(own, self._options(row))
            self._clients[row.name] = client
        # Only `row.client` made what is stored under `row.name`.
        return cast("C", client)

    @property
    def socialepoch(self) -> SocialEpochClient:
        """The SocialEpoch client; `ConfigurationError` if `SOCIALEPOCH_*` is incomplete."""
        return self.client(SOCIALEPOCH)

    @property
    def xiaolanben(self) -> XiaolanbenClient:
        """The Xiaolanben client; `ConfigurationError` if `XIAOLANBEN_*` is incomplete."""
        return self.client(XIAOLANBEN)

    @property
    def bangwo8(self) -> Bangwo8Client:
        """The Bangwo8 client; `ConfigurationError` if `BANGWO8_*` is incomplete."""
        return self.client(BANGWO8)

    @property
    def store(self) -> Store:
        """The import journal and the audit log: the one given, else opened on first use from
        `CRMOPS_DB` (or `CRMOPS_DATABASE_URL`) and closed with the services.

        Tools that write record who asked in its audit log; `ConfigurationError` when the
        database cannot be opened.
        """
        if self._store is None:
            self._store = open_store(self.settings.crmops)
            self._owns_store = True
        return self._store

    def _options(self, row: VendorRow[S, C]) -> ClientOptions:
        name = row.name
        return ClientOptions(
            crmops=self.settings.crmops,
            transport=self._transports.get(name),
            rate_limiter=self._rate_limiters.get(name) or self.shared.rate_limiter(name),
            retry=self._retry,
            token_cache=self.shared.token_cache(name) if row.shares_tokens else None,
        )

    async def aclose(self) -> None:
        """Close every client made so far; a later use makes a fresh one."""
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.aclose()
        await self.shared.aclose()
        if self._owns_store and self._store is not None:
            store, self._store, self._owns_store = self._store, None, False
            await store.aclose()
