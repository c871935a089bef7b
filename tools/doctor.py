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

The probes are the registry's (`tools.vendors.registry`). A failure is explained by the
error itself (`meaning`, `action`: from the error catalog for a vendor's code, or what to
check for no answer at all). A vendor whose base URL is plain `http://` to a host that is
not loopback is `misconfigured` (`VendorSettings.insecure_url`), and nothing is sent.

`diagnose` also says where each setting in force came from (`DoctorReport.sources`): the
environment, which `.env` file, or the default; never a value. Nothing here prints; the
CLI renders the report.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Literal, TypeVar, cast

import httpx
from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings

from tools import redaction
from tools.catalog import VENDORS, Vendor
from tools.errors import (
    ConfigurationError,
    CrmopsError,
    MalformedResponseError,
    VendorAPIError,
    VendorUnavailableError,
)
from tools.i18n import tr
from tools.services import Services
from tools.settings import (
    CrmopsSettings,
    Origin,
    Settings,
    VendorSettings,
    setting_sources,
    unparsed_values,
)
from tools.text import one_line
from tools.vendors.registry import REGISTRY, AnyVendorRow

CHECK_TIMEOUT = 10.0
"""Seconds each check's request may take at most (less if CRMOPS_HTTP_TIMEOUT is lower)."""

_S = TypeVar("_S", bound=BaseSettings)
CheckStatus = Literal["ok", "not_configured", "misconfigured", "failing"]
Outcome = Literal["ok", "misconfigured", "failing"]


class VendorCheck(BaseModel):
    """What the doctor found for one vendor."""

    vendor: Vendor
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
    sources: dict[str, Origin] = Field(
        default_factory=dict,
        description="each variable that is set, and each vendor's base URL: where its value "
        'came from ("environment", ".env file <path>" or "default")',
    )

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
    loaded = {row.name: _load(row.settings, env_file) for row in REGISTRY}
    broken = [
        _unparsed_check(vendor, each)
        for vendor, each in loaded.items()
        if isinstance(each, _Unparsed)
    ]
    vendors = {row.name: _or_empty(loaded[row.name], row.settings) for row in REGISTRY}
    settings = Settings(crmops=crmops, **vendors)
    skip = {check.vendor for check in broken}
    report = await diagnose_settings(settings, transports=transports, skip=skip)
    return DoctorReport(
        checks=_in_vendor_order([*broken, *report.checks]), sources=_sources(env_file)
    )


def _sources(env_file: Path | None) -> dict[str, Origin]:
    """Where each setting that is set (and each vendor's base URL) came from."""
    shown: dict[str, Origin] = {}
    for part in Settings.parts().values():
        for variable, origin in setting_sources(part, env_file).items():
            if origin != "default" or variable.endswith("_BASE_URL"):
                shown[variable] = origin
    return shown


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
            *(_check(row, quick, services) for row in REGISTRY if row.name not in skip)
        )
    return DoctorReport(checks=list(checks))


# --- one vendor --------------------------------------------------------------------------


async def _check(row: AnyVendorRow, settings: Settings, services: Services) -> VendorCheck:
    vendor: Vendor = row.name
    own: VendorSettings = row.settings_of(settings)
    if not own.has_credentials():
        names = ", ".join(f"{row.env_prefix}{name.upper()}" for name in own.credentials)
        return VendorCheck(
            vendor=vendor,
            status="not_configured",
            check="skipped",
            summary=tr("not configured (none of {names} is set)", names=names),
        )
    missing = own.missing()
    refused = None if missing else own.insecure_url()
    if refused is not None:
        return _insecure(row, own, refused)
    if missing:
        incomplete = ConfigurationError(vendor=vendor, missing=missing)
        return VendorCheck(
            vendor=vendor,
            status="misconfigured",
            check="skipped",
            url=redaction.shown_url(own.url),
            summary=tr("incomplete settings: set {names}", names=", ".join(missing)),
            missing=missing,
            action=incomplete.action,
        )
    started = time.monotonic()
    try:
        summary = await row.probe(services.client(row))
    except CrmopsError as exc:
        return _failed(row, redaction.shown_url(own.url), exc, time.monotonic() - started)
    return VendorCheck(
        vendor=vendor,
        status="ok",
        check=row.probe_call,
        url=redaction.shown_url(own.url),
        summary=summary,
        seconds=round(time.monotonic() - started, 3),
    )


def _insecure(row: AnyVendorRow, own: VendorSettings, refused: ConfigurationError) -> VendorCheck:
    """The check of a vendor whose base URL is plain HTTP to another host: nothing sent."""
    return VendorCheck(
        vendor=row.name,
        status="misconfigured",
        check="skipped",
        url=redaction.shown_url(own.url),
        summary=tr("refused: {detail}", detail=refused.detail),
        missing=[f"{row.env_prefix}BASE_URL", f"{row.env_prefix}ALLOW_INSECURE_HTTP"],
        action=refused.action,
    )


def _failed(row: AnyVendorRow, url: str, error: CrmopsError, seconds: float) -> VendorCheck:
    """The check of a call that failed: what it means and what to do come from the error."""
    check = VendorCheck(
        vendor=row.name,
        status="failing",
        check=row.probe_call,
        url=url,
        summary=one_line(str(error)),
        meaning=error.meaning or None,
        action=error.action or None,
        seconds=round(seconds, 3),
    )
    if isinstance(error, VendorAPIError):
        check.code, check.http_status = error.code, error.http_status
        check.summary = tr(
            "the vendor refused: code {code} {message}",
            code=error.code,
            message=repr(error.vendor_message),
        )
    elif isinstance(error, VendorUnavailableError):
        check.summary = tr("no answer: {error}", error=one_line(str(error)))
    elif isinstance(error, MalformedResponseError):
        check.http_status = error.http_status
    elif isinstance(error, ConfigurationError):
        check.status = "misconfigured"
        check.missing = error.missing
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


def _unparsed_check(vendor: Vendor, unparsed: _Unparsed) -> VendorCheck:
    error = ConfigurationError(vendor=vendor, missing=unparsed.missing, detail=unparsed.summary)
    return VendorCheck(
        vendor=vendor,
        status="misconfigured",
        check="skipped",
        summary=tr("settings do not parse: {problems}", problems=unparsed.summary),
        missing=unparsed.missing,
        action=error.action,
    )


def _or_empty(loaded: _S | _Unparsed, cls: type[_S]) -> _S:
    """The settings loaded, or empty ones of `cls` (that vendor is reported already)."""
    if isinstance(loaded, _Unparsed):
        # BaseSettings types model_construct as returning BaseSettings.
        return cast("_S", cls.model_construct())
    return loaded


def _one_attempt(settings: Settings) -> Settings:
    """The same settings with one attempt per request and a short timeout: a check reports
    what happened, it does not wait out a retry schedule."""
    crmops = settings.crmops.model_copy(
        update={"max_attempts": 1, "http_timeout": min(settings.crmops.http_timeout, CHECK_TIMEOUT)}
    )
    return settings.model_copy(update={"crmops": crmops})


def _in_vendor_order(checks: list[VendorCheck]) -> list[VendorCheck]:
    return sorted(checks, key=lambda check: VENDORS.index(check.vendor))
