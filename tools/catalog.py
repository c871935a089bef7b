"""The documented error codes of all three vendors, as data.

`tools/error_catalog.toml` holds one entry per documented code: the vendor's own message,
its meaning in Chinese and English, what a user should do, and its `kind` (which
`VendorAPIError` subclass the clients raise for it)::

    catalog = load_catalog()
    entry = catalog.get("socialepoch", "502")       # exact, or None
    entries = catalog.find("401")                    # every vendor's 401
    entries = catalog.search("timestamp timeout")    # by message or meaning, best first
    entries = catalog.close_matches("535")           # what an unknown code may have meant
"""

from __future__ import annotations

import difflib
import re
import sys
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from tools.errors import ERROR_KINDS
from tools.i18n import LOCALES, Locale, current_locale, tr_context

Vendor = Literal["socialepoch", "xiaolanben", "bangwo8"]
"""The vendors crmops speaks to, by name. The one light list: `crmops errors` reads it
without loading a client; `tools.vendors.registry` has a row for each (a test holds them
together), and the catalog file a table for each."""
VENDORS: tuple[Vendor, ...] = get_args(Vendor)
DISPLAY_NAMES: dict[Vendor, str] = {
    "socialepoch": "SocialEpoch",
    "xiaolanben": "Xiaolanben",
    "bangwo8": "Bangwo8",
}
"""Each vendor's name as people write it."""


class LocalizedText(BaseModel):
    """An entry's meaning and what to do, in one language."""

    model_config = ConfigDict(frozen=True)

    meaning: str = Field(description="what it means")
    action: str = Field(description="what the user should do about it")


class CatalogEntry(BaseModel):
    """One documented vendor error."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    vendor: Vendor
    code: str = Field(description="the vendor's code as it appears in its answers")
    http_status: int | None = Field(description="HTTP status the vendor answers it with")
    message: str = Field(description="the vendor's own message text")
    meaning_zh: str = Field(description="what it means, in Chinese")
    meaning_en: str = Field(description="what it means, in English")
    action: str = Field(description="what the user should do about it")
    kind: str = Field(description="error class: " + ", ".join(ERROR_KINDS))
    source: str = Field(description="the vendor document it comes from")
    localized: dict[Locale, LocalizedText] = Field(
        default_factory=dict,
        description="the meaning and what to do in each language crmops speaks: "
        + ", ".join(LOCALES),
    )

    def __hash__(self) -> int:
        # Frozen, so hashable, but `localized` is a dict: (vendor, code) is the identity.
        return hash((self.vendor, self.code))

    def meaning(self, locale: Locale | None = None) -> str:
        """What it means in `locale` (default: the current one); English if untranslated."""
        found = self.localized.get(locale or current_locale())
        return found.meaning if found else self.meaning_en

    def what_to_do(self, locale: Locale | None = None) -> str:
        """What to do in `locale` (default: the current one); English if untranslated."""
        found = self.localized.get(locale or current_locale())
        return found.action if found else self.action


class Catalog:
    """All entries, indexed by (vendor, code)."""

    def __init__(self, entries: list[CatalogEntry]) -> None:
        self.entries = tuple(entries)
        self._by_key: dict[tuple[str, str], CatalogEntry] = {
            (entry.vendor, entry.code): entry for entry in entries
        }
        self._searchable = [_Searchable.of(entry) for entry in self.entries]

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

    def search(self, text: str, vendor: str | None = None, limit: int = 5) -> list[CatalogEntry]:
        """Entries whose message or meaning (English or Chinese) match `text`, best first.

        Case-insensitive; words may come in any order, be the start of a word (`timest`),
        slightly misspelt (`timstamp`) or Chinese (`重复`); camelCase is split (`token`
        finds `accessToken`). An entry must match at least half of the query's words (a
        Latin word, or a pair of adjacent Chinese characters); the vendor's message weighs
        more than the meaning, the meaning more than the advice. Empty when nothing matches.
        """
        query = _Query.of(text)
        if not query.terms:
            return []
        scored = [
            (score, position)
            for position, item in enumerate(self._searchable)
            if vendor is None or item.entry.vendor == vendor
            if (score := item.score(query)) > 0
        ]
        scored.sort(key=lambda pair: (-pair[0], pair[1]))
        return [self._searchable[position].entry for _, position in scored[:limit]]

    def close_matches(
        self, code: str | int, vendor: str | None = None, limit: int = 5
    ) -> list[CatalogEntry]:
        """Documented codes an unknown `code` may have meant, nearest first.

        First each vendor's nearest documented codes below and above a numeric `code`
        (`535` -> socialepoch 534 and 536), then codes that are spelled alike
        (`invalid_clent` -> bangwo8 invalid_client).
        """
        wanted = str(code).strip().lower()
        pool = [e for e in self.entries if vendor is None or e.vendor == vendor]
        found = _numeric_neighbours(wanted, pool) + _similar_spelling(wanted, pool)
        unique = list(dict.fromkeys(e for e in found if e.code != wanted))
        return unique[:limit]


_NUMBER = re.compile(r"-?\d+")
# Latin words (codes like invalid_client stay whole) and runs of CJK ideographs.
_TERM = re.compile(r"[a-z0-9_]+|[\u3400-\u4dbf\u4e00-\u9fff]+")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+")
_CAMEL_HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_FUZZY_CUTOFF = 0.85  # "timstamp" ~ "timestamp" (0.94), but not "rate" ~ "create" (0.8)
_MIN_FUZZY_LENGTH = 4
_MIN_MATCHED_SHARE = 0.5
# Codes further apart than this are not neighbours (535 is not near bangwo8's 100047).
_NEIGHBOUR_SPAN = 100
# How much a query term weighs by where it is found: the vendor's own words count most.
_CODE_WEIGHT, _MESSAGE_WEIGHT, _MEANING_WEIGHT, _ACTION_WEIGHT = 4.0, 3.0, 2.0, 0.5
_MESSAGE_PHRASE_BONUS, _MEANING_PHRASE_BONUS = 5.0, 3.0


def _normalise(text: str) -> str:
    """Lower case, punctuation gone, words separated by one space."""
    return " ".join(_TERM.findall(text.lower()))


def _terms(text: str) -> tuple[str, ...]:
    """Latin words whole; Chinese runs cut into overlapping character pairs (Chinese has no
    spaces, so pairs stand in for words and let part of a phrase match)."""
    terms: list[str] = []
    for token in _TERM.findall(text.lower()):
        if _CJK.fullmatch(token) and len(token) > 2:
            terms += [token[i : i + 2] for i in range(len(token) - 1)]
        else:
            terms.append(token)
    return tuple(dict.fromkeys(terms))


@dataclass(frozen=True)
class _Query:
    phrase: str
    terms: tuple[str, ...]

    @classmethod
    def of(cls, text: str) -> _Query:
        return cls(phrase=_normalise(text), terms=_terms(text))


@dataclass(frozen=True)
class _Text:
    """One text of an entry, prepared for matching: as written and with camelCase split
    (`accessToken` matches both `accesstoken` and `token`)."""

    forms: tuple[str, ...]
    words: frozenset[str]

    @classmethod
    def of(cls, text: str) -> _Text:
        split = _CAMEL_HUMP.sub(" ", text)
        forms = tuple(dict.fromkeys((_normalise(text), _normalise(split))))
        return cls(forms, frozenset(word for form in forms for word in form.split()))

    def has_term(self, term: str) -> bool:
        """Chinese: anywhere in the text; Latin: the start of a word (`timest`)."""
        if _CJK.fullmatch(term):
            return any(term in form for form in self.forms)
        return any(word.startswith(term) for word in self.words)

    def has_phrase(self, phrase: str) -> bool:
        return any(phrase in form for form in self.forms)


@dataclass(frozen=True)
class _Searchable:
    """One entry, prepared once for `Catalog.search`."""

    entry: CatalogEntry
    message: _Text
    meaning: _Text
    action: _Text
    latin_words: tuple[str, ...]

    @classmethod
    def of(cls, entry: CatalogEntry) -> _Searchable:
        message = _Text.of(entry.message)
        meaning = _Text.of(f"{entry.meaning_en} {entry.meaning_zh}")
        words = {w for w in message.words | meaning.words if not _CJK.search(w)}
        return cls(entry, message, meaning, _Text.of(entry.action), tuple(sorted(words)))

    def score(self, query: _Query) -> float:
        """0 when fewer than half the query's terms match; else higher is better."""
        weights = [self._term_weight(term) for term in query.terms]
        if sum(weight > 0 for weight in weights) < len(weights) * _MIN_MATCHED_SHARE:
            return 0.0
        return sum(weights) + self._phrase_bonus(query.phrase)

    def _term_weight(self, term: str) -> float:
        if term == self.entry.code:
            return _CODE_WEIGHT
        for text, weight in (
            (self.message, _MESSAGE_WEIGHT),
            (self.meaning, _MEANING_WEIGHT),
            (self.action, _ACTION_WEIGHT),
        ):
            if text.has_term(term):
                return weight
        if len(term) >= _MIN_FUZZY_LENGTH and difflib.get_close_matches(
            term, self.latin_words, n=1, cutoff=_FUZZY_CUTOFF
        ):
            return _MEANING_WEIGHT / 2  # a misspelt word (`timstamp`) counts for less
        return 0.0

    def _phrase_bonus(self, phrase: str) -> float:
        if " " not in phrase and not _CJK.search(phrase):
            return 0.0  # one Latin word: its term weight already says it all
        if self.message.has_phrase(phrase):
            return _MESSAGE_PHRASE_BONUS
        if self.meaning.has_phrase(phrase):
            return _MEANING_PHRASE_BONUS
        return 0.0


def _numeric_neighbours(code: str, pool: list[CatalogEntry]) -> list[CatalogEntry]:
    """Per vendor, the nearest numeric code below and above `code` (within
    `_NEIGHBOUR_SPAN`), nearest first."""
    if not _NUMBER.fullmatch(code):
        return []
    wanted = int(code)
    picked: list[tuple[int, int, CatalogEntry]] = []
    for vendor in VENDORS:
        own = [
            (abs(int(e.code) - wanted), VENDORS.index(vendor), e)
            for e in pool
            if e.vendor == vendor and _NUMBER.fullmatch(e.code) and e.code != code
        ]
        below = [item for item in own if int(item[2].code) < wanted]
        above = [item for item in own if int(item[2].code) > wanted]
        picked += [min(side, key=_by_distance) for side in (below, above) if side]
    picked.sort(key=_by_distance)
    return [entry for distance, _, entry in picked if distance <= _NEIGHBOUR_SPAN]


def _by_distance(item: tuple[int, int, CatalogEntry]) -> tuple[int, int]:
    return item[0], item[1]


def _similar_spelling(code: str, pool: list[CatalogEntry]) -> list[CatalogEntry]:
    """Entries whose code is spelled like `code`, most alike first (difflib ratio)."""
    alike = difflib.get_close_matches(code, sorted({e.code for e in pool}), n=len(pool))
    return [e for similar in alike for e in pool if e.code == similar]


@cache
def load_catalog() -> Catalog:
    """The catalog shipped with crmops (parsed once)."""
    text = files("tools").joinpath("error_catalog.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    entries = [
        _localized(CatalogEntry(vendor=vendor, **raw))
        for vendor in VENDORS
        for raw in data.get(vendor, [])
    ]
    return Catalog(entries)


def _localized(entry: CatalogEntry) -> CatalogEntry:
    """`entry` with its meaning and action in every locale, from the message catalogs
    (`tools/locales`, context `<vendor> <code> meaning|action`; tools/i18n_build.py)."""
    where = f"{entry.vendor} {entry.code}"
    texts = {
        locale: LocalizedText(
            meaning=tr_context(f"{where} meaning", entry.meaning_en, locale=locale),
            action=tr_context(f"{where} action", entry.action, locale=locale),
        )
        for locale in LOCALES
    }
    return entry.model_copy(update={"localized": texts})


def catalog_entry(vendor: str, code: str) -> CatalogEntry | None:
    """The entry for `vendor`'s `code`, or None — also when the catalog file is missing."""
    try:
        return load_catalog().get(vendor, code)
    except FileNotFoundError:
        # The catalog ships with crmops; without it the HTTP status still picks the class.
        return None


# --- the README's troubleshooting section ------------------------------------------------

COMMON_CODES: tuple[tuple[Vendor, str], ...] = (
    # Setting up: a wrong or stale credential, a clock off, an edition without the API.
    ("socialepoch", "522"),
    ("socialepoch", "501"),
    ("socialepoch", "502"),
    ("socialepoch", "529"),
    ("xiaolanben", "401"),
    ("xiaolanben", "403"),
    ("bangwo8", "invalid_client"),
    ("bangwo8", "401"),
    # Running: too fast, too much at once, data the vendor refuses.
    ("socialepoch", "429"),
    ("xiaolanben", "429"),
    ("socialepoch", "507"),
    ("socialepoch", "-1"),
    ("xiaolanben", "400"),
    ("bangwo8", "100047"),
)
"""The codes a new user meets most: setting up (credentials, clock, edition) and the
first imports (rate limit, batch size, refused data). The README's troubleshooting
section is generated from them."""
README_BEGIN = (
    "<!-- BEGIN troubleshooting: generated by "
    "`python -m tools.catalog --troubleshooting --update README.md`; do not edit -->"
)
README_END = "<!-- END troubleshooting -->"


def troubleshooting_markdown(catalog: Catalog | None = None) -> str:
    """The README's troubleshooting section (between its markers), from `COMMON_CODES`."""
    catalog = catalog or load_catalog()
    lines = [
        "Start with `crmops doctor`: it checks each configured vendor with one harmless read",
        "and explains what fails. Every vendor error crmops reports names the vendor's code;",
        "`crmops errors CODE` (or `/crm error CODE`, or the `lookup_error_code` tool) explains",
        "any of them. The ones met most often:",
    ]
    for vendor, code in COMMON_CODES:
        entry = catalog.get(vendor, code)
        if entry is None:
            raise KeyError(f"{vendor} {code} is not in the error catalog")
        status = f"HTTP {entry.http_status}" if entry.http_status else "no HTTP status"
        lines += [
            "",
            f"- **{DISPLAY_NAMES[vendor]} {code}** · `{entry.message}` ({status}): "
            f"{entry.meaning_en.rstrip('.')}.",
            f"  *What to do:* {entry.action}",
        ]
    return "\n".join(lines) + "\n"


def update_readme(path: Path) -> bool:
    """Replace the text between the markers in `path`; True when it changed."""
    text = path.read_text(encoding="utf-8")
    before, begin, rest = text.partition(README_BEGIN)
    _, end, after = rest.partition(README_END)
    if not begin or not end:
        raise ValueError(f"{path} lacks the markers {README_BEGIN!r} ... {README_END!r}")
    updated = f"{before}{README_BEGIN}\n{troubleshooting_markdown()}{README_END}{after}"
    if updated != text:
        path.write_text(updated, encoding="utf-8")
    return updated != text


def _main(argv: list[str]) -> int:
    """`python -m tools.catalog --troubleshooting [--update README.md]`."""
    if (
        argv[:1] != ["--troubleshooting"]
        or len(argv) not in (1, 3)
        or argv[1:2] not in ([], ["--update"])
    ):
        sys.stderr.write("usage: python -m tools.catalog --troubleshooting [--update README.md]\n")
        return 2
    if len(argv) == 3:
        changed = update_readme(Path(argv[2]))
        sys.stdout.write(f"{argv[2]}: {'updated' if changed else 'already up to date'}\n")
        return 0
    sys.stdout.write(troubleshooting_markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
