"""`crmops doctor`: is each configured vendor set up right, and does it answer?

    report = await diagnose(env_file=Path(".env"))     # settings as `crmops` reads them
    report = await diagnose_settings(settings)          # or settings you built
    report.outcome                                      # "ok", "misconfigured" or "failing"

Per vendor: a vendor with none of its credentials set is `not_configured` and skipped; one
with some set but not all (or a value that does not parse) is `misconfigured`, naming the
variables; otherwise one harmless read is made, once, without retries:

- SocialEpoch: `POST /customer/query` for one number (001: a query changes nothing);
- Xiaolanben: `GET /companycenter/staffs`, page 1 of the smallest size, 2 (003);
- Bangwo8: `GET /api/v1/tickets.json`, page 1 with `per_page=1` (004; OAuth: a token first).

A failure is explained from the error catalog (the vendor's code: what it means, what to
do), or for no answer at all, what to check. Nothing here prints; the CLI renders the report.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from pathlib import Path
from typing import Literal, TypeVar, cast

import httpx
from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings

from tools.catalog import catalog_entry
from tools.errors import (
    ConfigurationError,
    CrmopsError,
    MalformedResponseError,
    VendorAPIError,
    VendorError,
    VendorUnavailableError,
)
from tools.services import Services
from tools.settings import (
    Bangwo8Settings,
    CrmopsSettings,
    Settings,
    SocialEpochSettings,
    XiaolanbenSettings,
    unparsed_values,
)

CHECK_TIMEOUT = 10.0
"""Seconds each check's request may take at most (less if CRMOPS_HTTP_TIMEOUT is lower)."""
PROBE_WHATSAPP = "8618221733141"
"""The number of 001's query sample: asking about it reads and changes nothing."""

_S = TypeVar("_S", bound=BaseSettings)
AnyVendorSettings = SocialEpochSettings | XiaolanbenSettings | Bangwo8Settings
CheckStatus = Literal["ok", "not_configured", "misconfigured", "failing"]
Outcome = Literal["ok", "misconfigured", "failing"]
DoctorVendor = Literal["socialepoch", "xiaolanben", "bangwo8"]

# Which settings make a vendor "configured at all": any of its credentials.
_CREDENTIALS: dict[DoctorVendor, tuple[str, ...]] = {
    "socialepoch": ("tenant_id", "api_key"),
    "xiaolanben": ("company_id", "sign_key"),
    "bangwo8": ("client_id", "client_secret", "account", "password"),
}
_PREFIX: dict[DoctorVendor, str] = {
    "socialepoch": "SOCIALEPOCH_",
    "xiaolanben": "XIAOLANBEN_",
    "bangwo8": "BANGWO8_",
}


class VendorCheck(BaseModel):
    """What the doctor found for one vendor."""

    vendor: DoctorVendor
    status: CheckStatus
    check: str = Field(description="the read call made, or why none was")
    url: str | None = Field(default=None, description="the vendor base URL in force")
    summary: str = Field(description="one line: what happened")
    missing: list[str] = Field(default_factory=list, description="variables to set or fix")
    code: str | None = Field(default=None, description="the vendor's error code")
    http_status: int | None = None
    meaning: str | None = Field(default=None, description="what the failure means")
    action: str | None = Field(default=None, description="what to do about it")
    seconds: float | None = Field(default=None, description="how long the call took")


class DoctorReport(BaseModel):
    """Every vendor's check; `outcome` sums them up."""

    checks: list[VendorCheck]

    @property
    def outcome(self) -> Outcome:
        """`misconfigured` when a vendor's settings are incomplete or nothing is configured
        (fix those first: the vendor could not be checked), else `failing` when a vendor
        call failed, else `ok`."""
        statuses = {check.status for check in self.checks}
        if "misconfigured" in statuses or statuses <= {"not_configured"}:
            return "misconfigured"
        return "failing" if "failing" in statuses else "ok"


async def diagnose(
    env_file: Path | None = Path(".env"),
    *,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> DoctorReport:
    """Read the settings as `crmops` does (environment, then `env_file`) and check each vendor.

    A vendor whose settings do not parse is reported `misconfigured` with the variable at
    fault; the others are still checked. `ConfigurationError` if `CRMOPS_*` does not parse.
    """
    crmops = _load(CrmopsSettings, env_file)
    if isinstance(crmops, _Unparsed):
        raise ConfigurationError(vendor="crmops", missing=crmops.missing, detail=crmops.summary)
    socialepoch = _load(SocialEpochSettings, env_file)
    xiaolanben = _load(XiaolanbenSettings, env_file)
    bangwo8 = _load(Bangwo8Settings, env_file)
    loaded: dict[DoctorVendor, object] = {
        "socialepoch": socialepoch,
        "xiaolanben": xiaolanben,
        "bangwo8": bangwo8,
    }
    broken = [
        _unparsed_check(vendor, each)
        for vendor, each in loaded.items()
        if isinstance(each, _Unparsed)
    ]
    settings = Settings(
        crmops=crmops,
        socialepoch=_or_empty(socialepoch, SocialEpochSettings),
        xiaolanben=_or_empty(xiaolanben, XiaolanbenSettings),
        bangwo8=_or_empty(bangwo8, Bangwo8Settings),
    )
    skip = {check.vendor for check in broken}
    report = await diagnose_settings(settings, transports=transports, skip=skip)
    return DoctorReport(checks=_in_vendor_order([*broken, *report.checks]))


async def diagnose_settings(
    settings: Settings,
    *,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    skip: Collection[str] = (),
) -> DoctorReport:
    """Check each vendor of `settings` (but those in `skip`), concurrently, one read each."""
    quick = _one_attempt(settings)
    async with Services(quick, transports=transports) as services:
        checks = await asyncio.gather(
            *(_check(vendor, quick, services) for vendor in _CREDENTIALS if vendor not in skip)
        )
    return DoctorReport(checks=list(checks))


# --- one vendor --------------------------------------------------------------------------


async def _check(vendor: DoctorVendor, settings: Settings, services: Services) -> VendorCheck:
    own = _vendor_settings(settings, vendor)
    url = own.url
    probe, call = _PROBES[vendor]
    if not _any_credential(own, vendor):
        names = ", ".join(f"{_PREFIX[vendor]}{name.upper()}" for name in _CREDENTIALS[vendor])
        return VendorCheck(
            vendor=vendor,
            status="not_configured",
            check="skipped",
            summary=f"not configured (none of {names} is set)",
        )
    missing = own.missing()
    if missing:
        return VendorCheck(
            vendor=vendor,
            status="misconfigured",
            check="skipped",
            url=url,
            summary=f"incomplete settings: set {', '.join(missing)}",
            missing=missing,
            action="set the variables named (environment or .env), then run crmops doctor again",
        )
    started = time.monotonic()
    try:
        summary = await probe(services)
    except CrmopsError as exc:
        return _failed(vendor, call, url, exc, time.monotonic() - started)
    return VendorCheck(
        vendor=vendor,
        status="ok",
        check=call,
        url=url,
        summary=summary,
        seconds=round(time.monotonic() - started, 3),
    )


async def _probe_socialepoch(services: Services) -> str:
    found = await services.socialepoch.query_customers([PROBE_WHATSAPP])
    return f"answered: the query found {len(found)} customer(s)"


async def _probe_xiaolanben(services: Services) -> str:
    staff = await services.xiaolanben.list_staff(page_index=1, page_size=2)
    return f"answered: {len(staff)} staff member(s) on the first page"


async def _probe_bangwo8(services: Services) -> str:
    page = await services.bangwo8.list_tickets(page=1, per_page=1)
    return f"answered: {page.count} ticket(s) in all"


_PROBES: dict[DoctorVendor, tuple[Callable[[Services], Awaitable[str]], str]] = {
    "socialepoch": (_probe_socialepoch, "query one customer (POST /customer/query)"),
    "xiaolanben": (_probe_xiaolanben, "list staff, first page (GET /companycenter/staffs)"),
    "bangwo8": (_probe_bangwo8, "list tickets, 1 per page (GET /api/v1/tickets.json)"),
}


def _failed(
    vendor: DoctorVendor, call: str, url: str | None, error: CrmopsError, seconds: float
) -> VendorCheck:
    check = VendorCheck(
        vendor=vendor,
        status="failing",
        check=call,
        url=url,
        summary=_one_line(str(error)),
        seconds=round(seconds, 3),
    )
    if isinstance(error, VendorAPIError):
        entry = error.entry or catalog_entry(vendor, error.code)
        check.code, check.http_status = error.code, error.http_status
        check.summary = f"the vendor refused: code {error.code} {error.vendor_message!r}"
        if entry is not None:
            check.meaning, check.action = entry.meaning_en, entry.action
        else:
            check.action = f"not in the catalog: `crmops errors {error.code}` lists near codes"
    elif isinstance(error, VendorUnavailableError):
        check.summary = f"no answer: {_one_line(str(error))}"
        check.meaning = (
            "the request did not get an answer: wrong host or port, DNS, proxy, firewall"
        )
        check.action = (
            f"check {_PREFIX[vendor]}BASE_URL and that this machine reaches it (curl {url})"
        )
    elif isinstance(error, MalformedResponseError):
        check.http_status = error.http_status
        check.meaning = "the answer is not the vendor's API format (an HTML page, a proxy)"
        check.action = f"check {_PREFIX[vendor]}BASE_URL points at the vendor's API host"
    elif isinstance(error, ConfigurationError):
        check.status = "misconfigured"
        check.missing = error.missing
    elif not isinstance(error, VendorError):
        check.meaning = "crmops refused the call before sending it"
    return check


# --- settings ----------------------------------------------------------------------------


def _load(cls: type[_S], env_file: Path | None) -> _S | _Unparsed:
    try:
        return cls(_env_file=env_file)
    except ValidationError as exc:
        return _Unparsed(unparsed_values(exc, cls))


class _Unparsed:
    """Settings that did not parse: the variables at fault and why."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.missing = [variable for variable, _ in problems]
        self.summary = "; ".join(f"{variable}: {why}" for variable, why in problems)


def _unparsed_check(vendor: DoctorVendor, unparsed: _Unparsed) -> VendorCheck:
    return VendorCheck(
        vendor=vendor,
        status="misconfigured",
        check="skipped",
        summary=f"settings do not parse: {unparsed.summary}",
        missing=unparsed.missing,
        action="fix the variables named (environment or .env), then run crmops doctor again",
    )


def _or_empty(loaded: _S | _Unparsed, cls: type[_S]) -> _S:
    """The settings loaded, or empty ones of `cls` (that vendor is reported already)."""
    if isinstance(loaded, _Unparsed):
        # BaseSettings types model_construct as returning BaseSettings.
        return cast("_S", cls.model_construct())
    return loaded


def _vendor_settings(settings: Settings, vendor: DoctorVendor) -> AnyVendorSettings:
    own: AnyVendorSettings = getattr(settings, vendor)
    return own


def _any_credential(own: AnyVendorSettings, vendor: DoctorVendor) -> bool:
    # An empty SecretStr is falsy (its length is 0): no need to unwrap it.
    return any(getattr(own, name, None) for name in _CREDENTIALS[vendor])


def _one_attempt(settings: Settings) -> Settings:
    """The same settings with one attempt per request and a short timeout: a check reports
    what happened, it does not wait out a retry schedule."""
    crmops = settings.crmops.model_copy(
        update={"max_attempts": 1, "http_timeout": min(settings.crmops.http_timeout, CHECK_TIMEOUT)}
    )
    return settings.model_copy(update={"crmops": crmops})


def _in_vendor_order(checks: list[VendorCheck]) -> list[VendorCheck]:
    order = list(_CREDENTIALS)
    return sorted(checks, key=lambda check: order.index(check.vendor))


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.splitlines() if part.strip())
