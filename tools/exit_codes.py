"""What every `crmops` command exits with, and the one handler that turns a failure into it
(here, below both server/ and bots/, because `crmops slack` comes from bots/).

    with failures_as_exit_codes(as_json=as_json):
        result = run_the_tool()

A `CrmopsError` becomes one line on stderr (`error: ...`; with `as_json` also
`{"error": {...}}` on stdout) and the exit code of its kind (`EXIT_CODES`, first match wins);
Ctrl-C exits 130 quietly or with the `interrupted` advice. Never a traceback for a failure
crmops expected. Cheap to import: every command loads it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer

from tools.errors import (
    ConfigurationError,
    CrmopsError,
    InputError,
    StorageError,
    VendorError,
)
from tools.i18n import tr
from tools.text import one_line

EXIT_OK = 0
EXIT_FAILED = 1  # also `crmops import`: some rows not imported
EXIT_USAGE = 2  # typer/click: bad options or arguments
EXIT_INPUT = 65  # sysexits EX_DATAERR: the input is wrong
EXIT_VENDOR = 69  # sysexits EX_UNAVAILABLE: a vendor failed or refused
EXIT_STORAGE = 75  # sysexits EX_TEMPFAIL: our own Redis or PostgreSQL failed; try again later
EXIT_CONFIG = 78  # sysexits EX_CONFIG: settings are missing or wrong
EXIT_INTERRUPTED = 130
EXIT_CODES: tuple[tuple[type[CrmopsError], int], ...] = (
    (ConfigurationError, EXIT_CONFIG),
    (InputError, EXIT_INPUT),
    (StorageError, EXIT_STORAGE),
    (VendorError, EXIT_VENDOR),
    (CrmopsError, EXIT_FAILED),
)


def exit_code(error: CrmopsError) -> int:
    """The exit code for `error`'s kind: the first row of `EXIT_CODES` it is an instance of."""
    return next(code for kind, code in EXIT_CODES if isinstance(error, kind))


@contextmanager
def failures_as_exit_codes(*, as_json: bool = False, interrupted: str = "") -> Iterator[None]:
    """A `CrmopsError` becomes one line on stderr (and JSON on stdout with `as_json`) and its
    exit code; Ctrl-C exits 130, printing `interrupted` on stderr if given."""
    try:
        yield
    except CrmopsError as exc:
        code = exit_code(exc)
        if as_json:
            typer.echo(json.dumps({"error": error_json(exc, code)}, ensure_ascii=False))
        typer.echo(tr("error: {message}", message=one_line(str(exc))), err=True)
        raise typer.Exit(code) from None
    except KeyboardInterrupt:
        if interrupted:
            typer.echo(interrupted, err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None


def error_json(error: CrmopsError, code: int) -> dict[str, Any]:
    """`error` for a script: its type, exit code, message, and the problems of bad input."""
    found: dict[str, Any] = {"type": type(error).__name__, "exit_code": code}
    found["message"] = str(error)
    if isinstance(error, InputError):
        found["problems"] = [
            {"field": p.field, "index": p.index, "message": p.message} for p in error.problems
        ]
    return found
