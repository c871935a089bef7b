"""The message catalogs' tooling (Babel): extract the texts, update each locale's `.po`,
compile the `.mo` that ship with crmops. A development tool: nothing at run time imports it.

    python -m tools.i18n_build update     # extract, then merge into every locale's .po
    python -m tools.i18n_build compile    # every .po -> .mo (committed; a test holds them equal)
    python -m tools.i18n_build check      # what is missing, stale or broken, per locale

What is extracted: every `tr("...")` and `marked("...")` in tools/,
server/ and bots/, and each error catalog entry's English meaning and action
(`tools/error_catalog.toml`) under the context `<vendor> <code> meaning|action`. The
Chinese meaning is the vendor's own (`meaning_zh` in the TOML): `update` writes it into the
zh_CN catalog; edit the TOML, not the .po, to change it. English is the source language:
`update` fills the English catalog's translations with the ids themselves (a writer may
reword one there).
"""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from tools.catalog import load_catalog
from tools.i18n import DOMAIN, LOCALE_DIR, LOCALES, Locale, directory

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("tools", "server", "bots")
KEYWORDS = {"tr": None, "marked": None}
_MAPPING = [("**.py", "python")]
_PLACEHOLDER = re.compile(r"\{[^{}]*\}|%\([a-z_]+\)[sd]")
_CHINESE_LOCALE: Locale = "zh-CN"
# Headers keep one date: a rerun of `update` changes a .po only where a text changed.
_FIXED_DATE = datetime(2026, 12, 1, tzinfo=UTC)


def po_path(locale: Locale) -> Path:
    """The `.po` of `locale`: the file a translator edits."""
    return LOCALE_DIR / directory(locale) / "LC_MESSAGES" / f"{DOMAIN}.po"


def mo_path(locale: Locale) -> Path:
    """The compiled catalog of `locale`, read at run time."""
    return po_path(locale).with_suffix(".mo")


def meaning_context(vendor: str, code: str) -> str:
    """The msgctxt of an error catalog entry's meaning."""
    return f"{vendor} {code} meaning"


def action_context(vendor: str, code: str) -> str:
    """The msgctxt of an error catalog entry's action."""
    return f"{vendor} {code} action"


def template() -> Catalog:
    """Every text crmops shows a person, as a template (the `.pot`): from the sources and
    the error catalog."""
    pot = Catalog(
        project="crmops",
        domain=DOMAIN,
        copyright_holder="the crmops authors",
        creation_date=_FIXED_DATE,
        revision_date=_FIXED_DATE,
    )
    for source in SOURCES:
        for filename, lineno, message, comments, context in extract_from_dir(
            ROOT / source, _MAPPING, keywords=KEYWORDS, comment_tags=("i18n:",)
        ):
            if "/sandbox/" in f"/{filename}" and source == "tools":
                continue  # the simulators speak for the vendors, not for crmops
            pot.add(
                message,
                locations=[(f"{source}/{filename}", lineno)],
                auto_comments=comments,
                context=context,
            )
    for entry in load_catalog().entries:
        where = [("tools/error_catalog.toml", 0)]
        pot.add(
            entry.meaning_en, context=meaning_context(entry.vendor, entry.code), locations=where
        )
        pot.add(entry.action, context=action_context(entry.vendor, entry.code), locations=where)
    return pot


def read(locale: Locale) -> Catalog:
    """The `.po` of `locale` as it is on disk (an empty catalog if there is none yet)."""
    path = po_path(locale)
    if not path.exists():
        return Catalog(
            locale=directory(locale),
            project="crmops",
            domain=DOMAIN,
            copyright_holder="the crmops authors",
            creation_date=_FIXED_DATE,
            revision_date=_FIXED_DATE,
        )
    with path.open("rb") as handle:
        return read_po(handle, locale=directory(locale), domain=DOMAIN)


def update() -> None:
    """Merge the template into every locale's `.po` (new texts empty, changed ones fuzzy);
    fill English with the ids and the zh_CN meanings with the vendor's own words."""
    vendor_zh = {meaning_context(e.vendor, e.code): e.meaning_zh for e in load_catalog().entries}
    for locale in LOCALES:
        catalog = read(locale)
        # A template of its own per locale: `Catalog.update` adopts the template's messages.
        catalog.update(template(), no_fuzzy_matching=False)
        for message in _messages(catalog):
            if locale == "en" and (not message.string or message.fuzzy):
                message.string = message.id  # the source language: a new id is its own text
                message.flags.discard("fuzzy")
            if locale == _CHINESE_LOCALE and message.context in vendor_zh:
                message.string = vendor_zh[str(message.context)]
                message.flags.discard("fuzzy")
        _write(catalog, po_path(locale))


def compile_all() -> None:
    """Every `.po` -> its `.mo` (fuzzy translations left out, as gettext does)."""
    for locale in LOCALES:
        mo_path(locale).write_bytes(compiled(read(locale)))


def compiled(catalog: Catalog) -> bytes:
    """`catalog` as `.mo` bytes."""
    out = io.BytesIO()
    write_mo(out, catalog, use_fuzzy=False)
    return out.getvalue()


def placeholders(text: str) -> list[str]:
    """The `{name}` and `%(name)s` placeholders of `text`, sorted."""
    return sorted(_PLACEHOLDER.findall(text))


def problems(
    locale: Locale, pot: Catalog | None = None, catalog: Catalog | None = None
) -> list[str]:
    """What is wrong with `locale`'s catalog (or `catalog`): texts not in it or not
    translated, fuzzy (stale) ones, placeholders dropped or changed, texts no longer used.
    Empty when fine."""
    pot = pot or template()
    catalog = catalog if catalog is not None else read(locale)
    found: list[str] = []
    for wanted in _messages(pot):
        message = catalog.get(wanted.id, context=wanted.context)
        what = _label(wanted)
        if message is None:
            found.append(f"{what}: not in the catalog (run `python -m tools.i18n_build update`)")
        elif not message.string:
            found.append(f"{what}: not translated")
        elif message.fuzzy:
            found.append(f"{what}: fuzzy (the English changed): check the translation")
        elif placeholders(str(message.string)) != placeholders(str(message.id)):
            found.append(
                f"{what}: placeholders {placeholders(str(message.string))} in the translation, "
                f"{placeholders(str(message.id))} in the English"
            )
    used = {(m.id, m.context) for m in _messages(pot)}
    found += [
        f"{_label(m)}: no longer used (run update)"
        for m in _messages(catalog)
        if (m.id, m.context) not in used
    ]
    return found


def _messages(catalog: Catalog) -> Iterable[Message]:
    return [message for message in catalog if message.id]


def _label(message: Message) -> str:
    text = str(message.id)
    short = text if len(text) <= 60 else text[:57] + "..."
    return f"[{message.context}] {short!r}" if message.context else repr(short)


def _write(catalog: Catalog, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    out = io.BytesIO()
    write_po(out, catalog, width=100, include_lineno=False, ignore_obsolete=True)
    path.write_bytes(out.getvalue())


def _main(argv: list[str]) -> int:
    command = argv[0] if len(argv) == 1 else ""
    if command == "update":
        update()
    elif command == "compile":
        compile_all()
    elif command == "check":
        pot = template()
        report = {locale: problems(locale, pot) for locale in LOCALES}
        for locale, found in report.items():
            sys.stdout.write(f"{locale}: {len(found)} problem(s)\n")
            sys.stdout.writelines(f"  {line}\n" for line in found)
        return 1 if any(report.values()) else 0
    else:
        sys.stderr.write("usage: python -m tools.i18n_build update|compile|check\n")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
