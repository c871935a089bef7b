"""The languages crmops speaks to a person: Simplified Chinese, English and Indonesian.

Every text a person reads is an English message id wrapped in `tr`, looked up in the
gettext catalog of the current locale (`tools/locales/<dir>/LC_MESSAGES/crmops.mo`, compiled
from the `.po` a translator edits; `python -m tools.i18n_build` extracts, updates and
compiles them)::

    tr("{vendor} is not configured", vendor="xiaolanben")   # in the current locale
    with use_locale("zh-CN"):                              # for one request, one command
        tr("Xiaolanben staff")                             # -> "小蓝本员工"
    TITLE = marked("Bangwo8 tickets")                      # extracted now, translated at use

The current locale is a context variable: English unless a surface chooses one (the CLI
from `--lang` and the environment: `from_environment`; Slack, in phase 2, per user). A
message with no translation is shown in English; placeholders are `{name}` (str.format).

Cheap to import (the standard library's gettext reads the compiled catalogs; Babel is
only for the tooling): `crmops errors` loads it.
"""

from __future__ import annotations

import gettext
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Literal, get_args

Locale = Literal["zh-CN", "en", "id"]
"""A locale crmops speaks, as a BCP 47 tag."""
LOCALES: tuple[Locale, ...] = get_args(Locale)
DEFAULT_LOCALE: Locale = "en"
DOMAIN = "crmops"
LOCALE_DIR = Path(__file__).resolve().parent / "locales"
"""Where the catalogs live: `<dir>/LC_MESSAGES/crmops.po` and `.mo` per locale."""

_DIRECTORIES: dict[Locale, str] = {"zh-CN": "zh_CN", "en": "en", "id": "id"}
_LANGUAGES: dict[str, Locale] = {"zh": "zh-CN", "en": "en", "id": "id", "in": "id"}
"""Each language's locale: any Chinese is zh-CN (the only script crmops has), `in` is the
old ISO code of Indonesian some systems still send (Java's `in_ID`)."""
_ENVIRONMENT = ("LC_ALL", "LC_MESSAGES", "LANG")
"""The POSIX variables that name the language of messages, strongest first."""

_current: ContextVar[Locale] = ContextVar("crmops_locale", default=DEFAULT_LOCALE)


class UnknownLocaleError(ValueError):
    """A locale crmops does not speak; the message names the ones it does."""


def directory(locale: Locale) -> str:
    """The catalog directory name of `locale` under `LOCALE_DIR` (gettext's `zh_CN`)."""
    return _DIRECTORIES[locale]


def parse_locale(text: str) -> Locale | None:
    """The locale `text` names, or None when crmops does not speak it.

    Takes what people and systems write: `zh`, `zh-CN`, `zh_CN.UTF-8`, `zh-Hans`, `id_ID`,
    `id-ID`, `en_US.UTF-8`, `EN`; `C` and `POSIX` are English.
    """
    tag = text.strip().split(".")[0].split("@")[0].replace("_", "-").lower()
    if tag in {"c", "posix"}:
        return "en"
    return _LANGUAGES.get(tag.split("-")[0])


def checked_locale(text: str, *, source: str = "--lang") -> Locale:
    """`parse_locale(text)`, or `UnknownLocaleError` saying what `source` may be."""
    locale = parse_locale(text)
    if locale is None:
        raise UnknownLocaleError(
            f"{source}: {text.strip()!r} is not a language crmops speaks; "
            f"use one of {', '.join(LOCALES)}"
        )
    return locale


def from_environment(environ: Mapping[str, str] | None = None) -> Locale:
    """The CLI's locale when `--lang` is not given: `CRMOPS_LOCALE` (`UnknownLocaleError`
    when it names no locale crmops speaks), else the first of `LC_ALL`, `LC_MESSAGES`,
    `LANG` that is set (English when it names a language crmops lacks), else English."""
    environ = os.environ if environ is None else environ
    chosen = environ.get("CRMOPS_LOCALE", "").strip()
    if chosen:
        return checked_locale(chosen, source="CRMOPS_LOCALE")
    for name in _ENVIRONMENT:
        value = environ.get(name, "").strip()
        if value:
            return parse_locale(value) or DEFAULT_LOCALE
    return DEFAULT_LOCALE


def current_locale() -> Locale:
    """The locale texts are shown in now."""
    return _current.get()


def set_locale(locale: Locale) -> Token[Locale]:
    """Make `locale` current until `reset_locale(token)`; prefer `use_locale`."""
    return _current.set(locale)


def reset_locale(token: Token[Locale]) -> None:
    """Undo the `set_locale` that returned `token`."""
    _current.reset(token)


@contextmanager
def use_locale(locale: Locale) -> Iterator[Locale]:
    """Show texts in `locale` inside the block (this task and what it starts only)."""
    token = _current.set(locale)
    try:
        yield locale
    finally:
        _current.reset(token)


@cache
def translations(locale: Locale) -> gettext.NullTranslations:
    """The compiled catalog of `locale` (read once); English ids as they are if it is missing."""
    return gettext.translation(
        DOMAIN, localedir=LOCALE_DIR, languages=[directory(locale)], fallback=True
    )


def tr(message: str, /, *, locale: Locale | None = None, **values: object) -> str:
    """`message` in the current locale (or `locale`), its `{placeholders}` filled."""
    text = translations(locale or _current.get()).gettext(message)
    return text.format(**values) if values else text


def tr_context(context: str, message: str, /, *, locale: Locale | None = None) -> str:
    """`message` in the current locale (or `locale`) as translated for `context` (gettext's
    msgctxt: the error catalog's texts are translated per entry, `socialepoch 502 action`)."""
    return translations(locale or _current.get()).pgettext(context, message)


def marked(message: str) -> str:
    """`message` itself: marks a text defined now (a table title, a constant) for the
    catalogs; translate it where it is shown with `tr(message)`."""
    return message


class Phrase(str):
    """A sentence that is English as a `str` (for logs, the audit log, MCP) and can still be
    shown to a person in their language:

        reason = Phrase(marked("`/crm {command}` is switched off."), command="ticket")
        str(reason)       # English, always: what the audit log records
        shown(reason)     # in the current locale: what the user reads
    """

    message: str
    values: dict[str, object]

    def __new__(cls, message: str, /, **values: object) -> Phrase:
        phrase = super().__new__(cls, message.format(**values) if values else message)
        phrase.message = message
        phrase.values = values
        return phrase


def shown(text: str) -> str:
    """`text` for a person: a `Phrase` in the current locale, any other text as it is."""
    if not isinstance(text, Phrase):
        return text
    return translations(_current.get()).gettext(text.message).format(**text.values)


def local_time(moment: datetime) -> str:
    """`moment` for a person at this machine: in the system's time zone, to the minute, with
    the zone's offset (`2025-01-31 14:05+08:00`); a naive `moment` is shown as it is."""
    shown = moment.astimezone() if moment.tzinfo is not None else moment
    return shown.isoformat(" ", "minutes")
