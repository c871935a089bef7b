"""The message catalogs (tools/locales): every text crmops shows a person is translated in
every locale, no translation drops or changes a placeholder, and the compiled `.mo` that
ship are exactly the `.po` a translator edits (`python -m tools.i18n_build update`, then
`compile`, after changing a text)."""

from __future__ import annotations

import gettext
import io

import pytest
from babel.messages.catalog import Catalog

from tools.catalog import load_catalog
from tools.i18n import LOCALES, Locale
from tools.i18n_build import compiled, mo_path, placeholders, problems, read, template


@pytest.fixture(scope="module")
def pot() -> Catalog:
    return template()


@pytest.mark.parametrize("locale", LOCALES)
def test_every_text_is_translated_with_its_placeholders(pot: Catalog, locale: Locale) -> None:
    assert problems(locale, pot) == []


def test_the_template_holds_the_surfaces_and_every_catalog_entry(pot: Catalog) -> None:
    ids = {message.id for message in pot if message.id}
    assert {"Xiaolanben staff", "What to do: {action}", "reading", "try it: {command}"} <= ids
    contexts = {message.context for message in pot if message.context}
    for entry in load_catalog().entries:
        assert f"{entry.vendor} {entry.code} meaning" in contexts
        assert f"{entry.vendor} {entry.code} action" in contexts


@pytest.mark.parametrize("locale", LOCALES)
def test_the_compiled_catalog_is_the_po(locale: Locale) -> None:
    shipped = gettext.GNUTranslations(io.BytesIO(mo_path(locale).read_bytes()))
    fresh = gettext.GNUTranslations(io.BytesIO(compiled(read(locale))))
    assert shipped._catalog == fresh._catalog, (  # type: ignore[attr-defined]
        f"{mo_path(locale)} is stale: run `python -m tools.i18n_build compile`"
    )


def test_the_chinese_meanings_are_the_vendors_own() -> None:
    for entry in load_catalog().entries:
        assert entry.meaning("zh-CN") == entry.meaning_zh, (entry.vendor, entry.code)


def test_every_entry_says_what_to_do_in_every_locale() -> None:
    for entry in load_catalog().entries:
        texts = {locale: entry.what_to_do(locale) for locale in LOCALES}
        assert texts["en"] == entry.action
        # Written, not copied: each language its own text.
        assert len(set(texts.values())) == len(LOCALES), (entry.vendor, entry.code)
        assert entry.meaning("id") != entry.meaning_en


def _with(catalog: Catalog, message_id: str, translation: str) -> Catalog:
    catalog[message_id].string = translation
    return catalog


def test_a_dropped_or_changed_placeholder_is_found(pot: Catalog) -> None:
    english = "{vendor} is not configured"
    dropped = problems("id", pot, _with(read("id"), english, "belum dikonfigurasi"))
    assert dropped == [
        f"{english!r}: placeholders [] in the translation, ['{{vendor}}'] in the English"
    ]
    renamed = problems("id", pot, _with(read("id"), english, "{vendr} belum dikonfigurasi"))
    assert len(renamed) == 1
    assert "placeholders ['{vendr}']" in renamed[0]


def test_an_untranslated_or_fuzzy_text_is_found(pot: Catalog) -> None:
    catalog = _with(read("zh-CN"), "Xiaolanben staff", "")
    assert problems("zh-CN", pot, catalog) == ["'Xiaolanben staff': not translated"]
    catalog = read("zh-CN")
    catalog["Xiaolanben staff"].flags.add("fuzzy")
    assert "fuzzy" in problems("zh-CN", pot, catalog)[0]


def test_a_text_missing_from_a_catalog_is_found(pot: Catalog) -> None:
    catalog = read("id")
    del catalog["Bangwo8 tickets"]
    assert problems("id", pot, catalog) == [
        "'Bangwo8 tickets': not in the catalog (run `python -m tools.i18n_build update`)"
    ]


def test_placeholders_are_both_styles() -> None:
    assert placeholders("%(name)s has {count} rows, {count}") == [
        "%(name)s",
        "{count}",
        "{count}",
    ]
