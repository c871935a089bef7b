"""`crmops errors`: what a vendor's error code or message means, and what to do.

    crmops errors 502
    crmops errors 401 --vendor bangwo8
    crmops errors 请求不允许重复执行 --json

It reads the error catalog only (no settings, no request) and starts fast: this module
imports nothing beyond the lookup itself. `register(app)` adds the command to a Typer app.
"""

from __future__ import annotations

from typing import Annotated, cast

import typer

from tools.catalog import VENDORS, Vendor
from tools.exit_codes import failures_as_exit_codes
from tools.i18n import marked
from tools.lookup import explain_error, render_text


def register(app: typer.Typer) -> None:
    """Add `crmops errors` to `app`."""
    app.command("errors")(errors)


def errors(
    code: Annotated[
        str, typer.Argument(help=marked("the vendor's error code, or words of its message"))
    ],
    vendor: Annotated[
        str | None,
        typer.Option(help=f"only this vendor: {', '.join(VENDORS)}"),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help=marked("print the result as JSON (for scripts)"))
    ] = False,
) -> None:
    """Explain a vendor error code: its meaning (zh, en) and what to do."""
    with failures_as_exit_codes(as_json=as_json):
        # The lookup checks the vendor's name itself and says what is wrong with it.
        result = explain_error(code=code, vendor=cast("Vendor | None", vendor))
        typer.echo(result.model_dump_json(indent=2) if as_json else render_text(result))
