"""Checks of free text before it goes to a vendor, and CSV cells no spreadsheet runs.

Text from a spreadsheet or a chat can carry what no CRM field should hold::

    problem = text_problem(value)      # None, or why the value is refused and how to fix it

- control characters (NUL, ESC, BEL ...; tab and line breaks are allowed): they corrupt the
  vendor's records and exports and are never typed on purpose;
- a leading spreadsheet formula (`=HYPERLINK(...)`, `+SUM(...)`, `=cmd|...`): stored as is,
  it runs when someone opens a CRM export in Excel (CSV/formula injection).

A CSV crmops writes for people (the rejected rows) holds what strangers typed, so every cell
goes through `SpreadsheetWriter`, which neutralises it as OWASP's CSV-injection guidance says::

    writer = SpreadsheetWriter(handle)
    writer.writerow([7, "=HYPERLINK(...)"])     # "7","'=HYPERLINK(...)"
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Iterable
from typing import IO

from tools.i18n import tr

_ALLOWED_CONTROLS = frozenset("\t\n\r")
# `=` then anything but `=` or a space (so "=== 标题 ===" is fine), or `+ - @` then a
# function call or DDE (`+SUM(`, `@cmd|`): what Excel runs from a cell.
_FORMULA = re.compile(r"^\s*(=[^=\s]|[+\-@]\s*[A-Za-z][\w.]*\s*[(|])")


def text_problem(value: str) -> str | None:
    """Why `value` may not be sent as text (what it holds and the fix), or None if it may."""
    for position, char in enumerate(value):
        if char not in _ALLOWED_CONTROLS and unicodedata.category(char) == "Cc":
            return tr(
                "holds the control character {character} at position {position}: "
                "remove it (only tabs and line breaks are allowed)",
                character="U+" + format(ord(char), "04X"),
                position=position,
            )
    if _FORMULA.match(value):
        return tr(
            "starts like a spreadsheet formula ({start}...), which would run "
            "when a CRM export is opened in Excel: remove the leading '=' (or '+', '-', '@') "
            "or type the text itself",
            start=repr(value.strip()[:20]),
        )
    return None


def check_text(value: object) -> object:
    """A pydantic validator: raises `ValueError` (a validation problem) for bad text."""
    if isinstance(value, str):
        problem = text_problem(value)
        if problem is not None:
            raise ValueError(problem)
    return value


def one_line(text: str) -> str:
    """`text` on one line: each line stripped, blank lines dropped, joined by spaces (for a
    log line, a CLI error, a table cell or a Slack field)."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


# OWASP "CSV Injection": a cell starting with one of these is run as a formula by Excel,
# LibreOffice or Google Sheets (tab and CR because some of them skip those first).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_cell(value: object) -> str:
    """`value` as CSV cell text that no spreadsheet runs: a single quote before a leading
    `= + - @`, tab or CR (the spreadsheet shows the text as typed; `-5` becomes `'-5`)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


class SpreadsheetWriter:
    """`csv.writer` for a file people open in a spreadsheet: every cell neutralised
    (`spreadsheet_cell`) and quoted, inner quotes doubled (OWASP CSV Injection)."""

    def __init__(self, handle: IO[str]) -> None:
        self._writer = csv.writer(handle, quoting=csv.QUOTE_ALL)

    def writerow(self, cells: Iterable[object]) -> None:
        """Write one row of `cells` (any values; None is an empty cell)."""
        self._writer.writerow([spreadsheet_cell(cell) for cell in cells])
