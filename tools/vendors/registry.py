"""The vendors crmops speaks to: one row each, read by everything that lists vendors.

    for row in REGISTRY:                          # in the order of `tools.catalog.VENDORS`
        own = row.settings_of(settings)           # e.g. settings.bangwo8
        row.display_name, row.env_prefix          # "Bangwo8", "BANGWO8_"
        client = row.client(own, ClientOptions(crmops=settings.crmops))
        summary = await row.probe(client)         # doctor's one harmless read
    row = vendor_row("xiaolanben")                # a row by name; KeyError if none

`SOCIALEPOCH`, `XIAOLANBEN` and `BANGWO8` are the rows typed with their own settings and
client classes (`Services.bangwo8` is a `Bangwo8Client`). A new vendor is its folder, its
settings class (and `Settings` attribute) in `tools.settings`, its name in
`tools.catalog.Vendor`, its table in the error catalog, and a row here.

The names live in `tools.catalog` rather than here because `crmops errors` reads them and
must not load httpx, pydantic-settings or a client; this module loads all three.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast

from tools.catalog import DISPLAY_NAMES, VENDORS, Vendor
from tools.settings import (
    Bangwo8Settings,
    CrmopsSettings,
    Settings,
    SocialEpochSettings,
    VendorSettings,
    XiaolanbenSettings,
)

if TYPE_CHECKING:
    # The clients load httpx (whose own CLI pulls in rich and pygments), the signers and the
    # transport: a process pays for them when it first calls the vendor (`client` below),
    # not at start, so `crmops mcp` lists its tools without them.
    import httpx

    from tools.transport import RateLimiter, RetryPolicy
    from tools.vendors.bangwo8.auth import TokenCache
    from tools.vendors.bangwo8.client import Bangwo8Client
    from tools.vendors.socialepoch.client import SocialEpochClient
    from tools.vendors.xiaolanben.client import XiaolanbenClient

PROBE_WHATSAPP = "8618221733141"
"""The number of 001's query sample: asking SocialEpoch about it reads and changes nothing."""


class VendorClient(Protocol):
    """What every vendor client is: something to close."""

    async def aclose(self) -> None: ...


S = TypeVar("S", bound=VendorSettings)
C = TypeVar("C", bound=VendorClient)


@dataclass(frozen=True)
class ClientOptions:
    """What a process injects into every client it makes (tests: transports, limiters)."""

    crmops: CrmopsSettings
    transport: httpx.AsyncBaseTransport | None = None
    rate_limiter: RateLimiter | None = None
    retry: RetryPolicy | None = None
    token_cache: TokenCache | None = None
    """The OAuth token cache shared by replicas, for a row with `shares_tokens`."""


@dataclass(frozen=True)
class VendorRow(Generic[S, C]):
    """One vendor: its name, settings, client factory, tenant key and doctor probe."""

    name: Vendor
    settings: type[S]
    """The settings class; `Settings` has an attribute of this type named `name`."""
    client: Callable[[S, ClientOptions], C]
    """Make the client (`ConfigurationError` when the settings are incomplete)."""
    tenant: Callable[[S], str]
    """The vendor account the settings name: limits and tokens are kept per tenant."""
    probe: Callable[[C], Awaitable[str]]
    """Doctor's one harmless read; returns one line saying what answered."""
    probe_call: str
    """The read `probe` makes, for the doctor's report."""
    shares_tokens: bool = False
    """Whether the client keeps an OAuth token that replicas share (in Redis)."""

    @property
    def display_name(self) -> str:
        """The name as people write it: "SocialEpoch"."""
        return DISPLAY_NAMES[self.name]

    @property
    def env_prefix(self) -> str:
        """The prefix of its environment variables: "SOCIALEPOCH_"."""
        return self.settings.env_prefix()

    def settings_of(self, settings: Settings) -> S:
        """This vendor's part of `settings`."""
        return cast("S", getattr(settings, self.name))


async def _probe_socialepoch(client: SocialEpochClient) -> str:
    found = await client.query_customers([PROBE_WHATSAPP])
    return f"answered: the query found {len(found)} customer(s)"


async def _probe_xiaolanben(client: XiaolanbenClient) -> str:
    staff = await client.list_staff(page_index=1, page_size=2)
    return f"answered: {len(staff)} staff member(s) on the first page"


async def _probe_bangwo8(client: Bangwo8Client) -> str:
    page = await client.list_tickets(page=1, per_page=1)
    return f"answered: {page.count} ticket(s) in all"


# Each client is imported when the first one is made (see TYPE_CHECKING above: start-up cost).
def _socialepoch_client(settings: SocialEpochSettings, o: ClientOptions) -> SocialEpochClient:
    from tools.vendors.socialepoch.client import SocialEpochClient  # noqa: PLC0415

    return SocialEpochClient(
        settings, crmops=o.crmops, transport=o.transport, rate_limiter=o.rate_limiter, retry=o.retry
    )


def _xiaolanben_client(settings: XiaolanbenSettings, o: ClientOptions) -> XiaolanbenClient:
    from tools.vendors.xiaolanben.client import XiaolanbenClient  # noqa: PLC0415

    return XiaolanbenClient(
        settings, crmops=o.crmops, transport=o.transport, rate_limiter=o.rate_limiter, retry=o.retry
    )


def _bangwo8_client(settings: Bangwo8Settings, o: ClientOptions) -> Bangwo8Client:
    from tools.vendors.bangwo8.client import Bangwo8Client  # noqa: PLC0415

    return Bangwo8Client(
        settings,
        crmops=o.crmops,
        transport=o.transport,
        rate_limiter=o.rate_limiter,
        retry=o.retry,
        token_cache=o.token_cache,
    )


SOCIALEPOCH: VendorRow[SocialEpochSettings, SocialEpochClient] = VendorRow(
    name="socialepoch",
    settings=SocialEpochSettings,
    client=_socialepoch_client,
    tenant=lambda settings: f"{settings.region}:{settings.tenant_id}",
    probe=_probe_socialepoch,
    probe_call="query one customer (POST /customer/query)",
)
XIAOLANBEN: VendorRow[XiaolanbenSettings, XiaolanbenClient] = VendorRow(
    name="xiaolanben",
    settings=XiaolanbenSettings,
    client=_xiaolanben_client,
    tenant=lambda settings: str(settings.company_id),
    probe=_probe_xiaolanben,
    probe_call="list staff, first page (GET /companycenter/staffs)",
)
BANGWO8: VendorRow[Bangwo8Settings, Bangwo8Client] = VendorRow(
    name="bangwo8",
    settings=Bangwo8Settings,
    client=_bangwo8_client,
    tenant=lambda settings: str(settings.client_id or settings.account),
    probe=_probe_bangwo8,
    probe_call="list tickets, 1 per page (GET /api/v1/tickets.json)",
    shares_tokens=True,
)

AnyVendorRow = VendorRow[Any, Any]
REGISTRY: tuple[AnyVendorRow, ...] = (SOCIALEPOCH, XIAOLANBEN, BANGWO8)
"""Every vendor, in the order of `tools.catalog.VENDORS`."""
_BY_NAME: dict[str, AnyVendorRow] = {row.name: row for row in REGISTRY}


def vendor_row(name: str) -> AnyVendorRow:
    """The row of the vendor called `name`; `KeyError` for a name that is none."""
    return _BY_NAME[name]


__all__ = [
    "BANGWO8",
    "REGISTRY",
    "SOCIALEPOCH",
    "VENDORS",
    "XIAOLANBEN",
    "AnyVendorRow",
    "ClientOptions",
    "VendorClient",
    "VendorRow",
    "vendor_row",
]
