"""The documented error codes of all three vendors, as data.

`tools/error_catalog.toml` holds one entry per documented code: the vendor's own message,
its meaning in Chinese and English, what a user should do, and its `kind` (which
`VendorAPIError` subclass the clients raise for it)::

    catalog = load_catalog()
    entry = catalog.get("socialepoch", "502")       # exact, or None
    entries = catalog.find("401")                    # every vendor's 401
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib.resources import files
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tools.errors import ERROR_KINDS

Vendor = Literal["socialepoch", "xiaolanben", "bangwo8"]
VENDORS: tuple[Vendor, ...] = ("socialepoch", "xiaolanben", "bangwo8")


class CatalogEntry(BaseModel):
    """One documented vendor error."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    vendor: Vendor
    code: str = Field(description="the vendor's code as it appears in its answers")
    http_status: int | None = Field(description="HTTP status the vendor answers it with")
    message: str = Field(description="the vendor's own message text")
    meaning_zh: str
    meaning_en: str
    action: str = Field(description="what the user should do about it")
    kind: str = Field(description="error class: " + ", ".join(ERROR_KINDS))
    source: str = Field(description="the vendor document it comes from")


class Catalog:
    """All entries, indexed by (vendor, code)."""

    def __init__(self, entries: list[CatalogEntry]) -> None:
        self.entries = tuple(entries)
        self._by_key: dict[tuple[str, str], CatalogEntry] = {
            (entry.vendor, entry.code): entry for entry in entries
        }

    def get(self, vendor: str, code: str | int) -> CatalogEntry | None:
        """The entry for exactly this vendor and code, or None."""
        return self._by_key.get((vendor, str(code).strip()))

    def find(self, code: str | int, vendor: str | None = None) -> list[CatalogEntry]:
        """Every entry with this code, optionally of one vendor only."""
        wanted = str(code).strip()
        return [
            entry
            for entry in self.entries
            if entry.code == wanted and (vendor is None or entry.vendor == vendor)
        ]


@cache
def load_catalog() -> Catalog:
    """The catalog shipped with crmops (parsed once)."""
    text = files("tools").joinpath("error_catalog.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    entries = [
        CatalogEntry(vendor=vendor, **raw) for vendor in VENDORS for raw in data.get(vendor, [])
    ]
    return Catalog(entries)
