"""Checks of free text before it goes to a vendor: control characters and formulas.

Text from a spreadsheet or a chat can carry what no CRM field should hold::

    problem = text_problem(value)      # None, or why the value is refused and how to fix it

- control characters (NUL, ESC, BEL ...; tab and line breaks are allowed): they corrupt the
  vendor's records and exports and are never typed on purpose;
- a leading spreadsheet formula (`=HYPERLINK(...)`, `+SUM(...)`, `=cmd|...`): stored as is,
  it runs when someone opens a CRM export in Excel (CSV/formula injection).
"""

from __future__ import annotations

import re
import unicodedata

_ALLOWED_CONTROLS = frozenset("\t\n\r")
# `=` then anything but `=` or a space (so "=== 标题 ===" is fine), or `+ - @` then a
# function call or DDE (`+SUM(`, `@cmd|`): what Excel runs from a cell.
_FORMULA = re.compile(r"^\s*(=[^=\s]|[+\-@]\s*[A-Za-z][\w.]*\s*[(|])")


def text_problem(value: str) -> str | None:
    """Why `value` may not be sent as text (what it holds and the fix), or None if it may."""
    for position, char in enumerate(value):
        if char not in _ALLOWED_CONTROLS and unicodedata.category(char) == "Cc":
            return (
                f"holds the control character U+{ord(char):04X} at position {position}: "
                "remove it (only tabs and line breaks are allowed)"
            )
    if _FORMULA.match(value):
        return (
            f"starts like a spreadsheet formula ({value.strip()[:20]!r}...), which would run "
            "when a CRM export is opened in Excel: remove the leading '=' (or '+', '-', '@') "
            "or type the text itself"
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
