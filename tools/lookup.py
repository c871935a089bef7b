"""`lookup_error_code`: what a vendor's error code or message means, and what to do.

The one function behind the MCP tool, the Slack command and the CLI command; it reads the
error catalog only and makes no request::

    result = await lookup_error_code(code="502")                     # by code
    result = await lookup_error_code(code="401", vendor="bangwo8")   # codes collide: narrow
    result = await lookup_error_code(code="请求不允许重复执行")          # by message text
    print(render_text(result))

An unknown code is an answer (`found` False, with `close_matches`), not an error; only a
blank query or an unknown vendor raises `InputError`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tools.catalog import VENDORS, Catalog, CatalogEntry, Vendor, load_catalog
from tools.errors import InputError, Problem
from tools.i18n import current_locale, tr
from tools.models import NumberText

MAX_QUERY_LENGTH = 1000
MAX_MATCHES = 5
_ASSUMPTION = "crmops assumption"
# A code, optionally after a word people paste with it: `502`, `-1`, `HTTP 401`,
# `errcode: 100047`, `invalid_client`, `error=invalid_grant`.
_CODE = re.compile(
    r"(?:(?:http|code|errcode|error|status)\s*[:#=]?\s*)?(-?\d+|[a-z]+(?:_[a-z]+)+)",
    re.IGNORECASE,
)


class ErrorLookup(BaseModel):
    """The answer of `lookup_error_code`: the documented errors that match, best first."""

    model_config = ConfigDict(frozen=True)

    query: str = Field(description="The code or message text that was looked up, trimmed.")
    vendor: Vendor | None = Field(
        description="The vendor the lookup was narrowed to; null means all three vendors."
    )
    matched_by: Literal["code", "text"] = Field(
        description=(
            "'code' when the query was read as an error code and matched exactly; 'text' when "
            "it was read as words from an error message and matched by meaning."
        )
    )
    found: bool = Field(
        description="True when `matches` holds at least one documented error for the query."
    )
    matches: list[CatalogEntry] = Field(
        description=(
            "The documented errors that match, best first. Several when a code exists at "
            "more than one vendor (pass `vendor` to pick one) or when text fits several "
            "errors. Each has the vendor's own message, its meaning in Chinese and English, "
            "the action a crmops user should take, and its kind."
        )
    )
    close_matches: list[CatalogEntry] = Field(
        description=(
            "When nothing matched: documented codes the query may have meant (numerically "
            "near, or spelled alike), nearest first. Empty when something matched."
        )
    )
    note: str = Field(description="One sentence for a person: what was found, or why nothing was.")


async def lookup_error_code(*, code: NumberText, vendor: Vendor | None = None) -> ErrorLookup:
    """Explain a SocialEpoch, Xiaolanben or Bangwo8 error code or message: meaning and fix."""
    return explain_error(code=code, vendor=vendor)


def explain_error(*, code: str, vendor: Vendor | None = None) -> ErrorLookup:
    """`lookup_error_code` without an event loop: `crmops errors` starts faster without
    importing asyncio (~20 ms) for a lookup that awaits nothing."""
    query, wanted_vendor = _checked(code, vendor)
    catalog = load_catalog()
    code_match = _CODE.fullmatch(query)
    if code_match:
        return _by_code(catalog, query, code_match.group(1).lower(), wanted_vendor)
    return _by_text(catalog, query, wanted_vendor)


def render_text(result: ErrorLookup) -> str:
    """Plain text for Slack and the CLI: the note, then each match or close match."""
    lines = [result.note]
    for entry in result.matches:
        lines += ["", *_entry_lines(entry)]
    if result.close_matches:
        lines += ["", tr("Close matches:")]
        lines += [f"  {_headline(entry)}" for entry in result.close_matches]
    return "\n".join(lines)


def _checked(code: str, vendor: str | None) -> tuple[str, Vendor | None]:
    """The trimmed query and the vendor, or `InputError` naming what is wrong with them."""
    problems: list[Problem] = []
    query = code.strip()
    if not query:
        problems.append(
            Problem(
                field="code",
                message="is empty: give a vendor error code (502, -1, 401, 100047, "
                "invalid_client) or words from the error message (timestamp timeout)",
            )
        )
    elif len(query) > MAX_QUERY_LENGTH:
        problems.append(
            Problem(
                field="code",
                message=f"is {len(query)} characters long; give the code or at most "
                f"{MAX_QUERY_LENGTH} characters of the message",
            )
        )
    wanted_vendor = _vendor(vendor)
    if vendor is not None and wanted_vendor is None:
        problems.append(
            Problem(field="vendor", message=f"must be one of {', '.join(VENDORS)}, or left out")
        )
    if problems:
        raise InputError(problems, summary="cannot look up this error")
    return query, wanted_vendor


def _vendor(vendor: str | None) -> Vendor | None:
    """The vendor named, in any case and with stray spaces (the CLI passes what was typed)."""
    if vendor is None:
        return None
    wanted = vendor.strip().lower()
    return next((known for known in VENDORS if known == wanted), None)


def _by_code(catalog: Catalog, query: str, code: str, vendor: Vendor | None) -> ErrorLookup:
    matches = catalog.find(code, vendor)
    if matches:
        note = _found_code_note(code, matches)
        return _result(query=query, vendor=vendor, by="code", matches=matches, note=note)
    elsewhere = catalog.find(code) if vendor is not None else []
    close = list(dict.fromkeys([*elsewhere, *catalog.close_matches(code, vendor)]))
    note = _missing_code_note(code, vendor, elsewhere, close[:MAX_MATCHES])
    return _result(query=query, vendor=vendor, by="code", close=close[:MAX_MATCHES], note=note)


def _by_text(catalog: Catalog, query: str, vendor: Vendor | None) -> ErrorLookup:
    matches = catalog.search(query, vendor, limit=MAX_MATCHES)
    where = vendor or tr("any vendor")
    if not matches:
        note = tr(
            "No documented error of {vendor} matches {query}; give a code such as 502 or "
            "invalid_client, or other words from the vendor's message.",
            vendor=where,
            query=repr(query),
        )
        return _result(query=query, vendor=vendor, by="text", note=note)
    note = tr(
        "{count} documented error(s) of {vendor} matching {query}, best first.",
        count=len(matches),
        vendor=where,
        query=repr(query),
    )
    return _result(query=query, vendor=vendor, by="text", matches=matches, note=note)


def _result(
    *,
    query: str,
    vendor: Vendor | None,
    by: Literal["code", "text"],
    note: str,
    matches: Sequence[CatalogEntry] = (),
    close: Sequence[CatalogEntry] = (),
) -> ErrorLookup:
    return ErrorLookup(
        query=query,
        vendor=vendor,
        matched_by=by,
        found=bool(matches),
        matches=list(matches),
        close_matches=list(close),
        note=note,
    )


def _found_code_note(code: str, matches: list[CatalogEntry]) -> str:
    if len(matches) > 1:
        vendors = ", ".join(entry.vendor for entry in matches)
        return tr(
            "Code {code} exists at {count} vendors ({vendors}); pass vendor to pick one.",
            code=code,
            count=len(matches),
            vendors=vendors,
        )
    entry = matches[0]
    if entry.source.startswith(_ASSUMPTION):
        why = entry.source.removeprefix(_ASSUMPTION).lstrip(": ")
        return tr(
            "{vendor} code {code} is assumed by crmops ({why}).",
            vendor=entry.vendor,
            code=code,
            why=why,
        )
    return tr(
        "{vendor} code {code} is documented in {source}.",
        vendor=entry.vendor,
        code=code,
        source=entry.source,
    )


def _missing_code_note(
    code: str, vendor: Vendor | None, elsewhere: list[CatalogEntry], close: list[CatalogEntry]
) -> str:
    note = tr(
        "Code {code} is not documented by {vendor}", code=code, vendor=vendor or tr("any vendor")
    )
    if elsewhere:
        note += tr(" (it is by {vendors})", vendors=", ".join(entry.vendor for entry in elsewhere))
    if close:
        return note + tr(
            "; close matches: {codes}.", codes=", ".join(_short(entry) for entry in close)
        )
    # i18n: the full stop that ends "Code {code} is not documented by {vendor}"
    return note + tr(".")


def _short(entry: CatalogEntry) -> str:
    return f"{entry.vendor} {entry.code}"


def _headline(entry: CatalogEntry) -> str:
    return f"{_short(entry)}: {entry.message} ({entry.meaning()})"


def _entry_lines(entry: CatalogEntry) -> list[str]:
    status = f"HTTP {entry.http_status}, " if entry.http_status is not None else ""
    return [
        f"{_short(entry)} ({status}{entry.kind}): {entry.message}",
        "  " + tr("Meaning: {meaning}", meaning=_meanings(entry)),
        "  " + tr("What to do: {action}", action=entry.what_to_do()),
        "  " + tr("Source: {source}", source=entry.source),
    ]


def _meanings(entry: CatalogEntry) -> str:
    """The meaning in the current language, and the vendor's Chinese beside any other
    (people paste the vendor's Chinese into searches and tickets)."""
    shown = entry.meaning()
    if current_locale() == "zh-CN" or shown == entry.meaning_zh:
        return shown
    return f"{shown} / {entry.meaning_zh}"
