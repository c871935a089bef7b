"""`crmops doctor`: check each configured vendor's settings and make one harmless read.

    crmops doctor                 # a table, and what each failure means and what to do
    crmops doctor --json          # the report for scripts
    crmops doctor --env-file prod.env

Exit codes, as the rest of `crmops` (tools/exit_codes.py): 0 every configured vendor answered;
78 settings missing or wrong (or no vendor configured at all); 69 a vendor failed or
refused. The checks themselves are `tools.doctor`.

`register(app)` adds the command to a Typer app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import anyio
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tools.doctor import DoctorReport, Outcome, VendorCheck, diagnose
from tools.exit_codes import EXIT_CONFIG, EXIT_OK, EXIT_VENDOR, failures_as_exit_codes
from tools.i18n import marked, tr

OUTCOME_EXIT_CODES: dict[Outcome, int] = {
    "ok": EXIT_OK,
    "failing": EXIT_VENDOR,
    "misconfigured": EXIT_CONFIG,
}

_STATUS_STYLE = {
    "ok": ("green", marked("ok")),
    "not_configured": ("dim", marked("not configured")),
    "misconfigured": ("yellow", marked("settings incomplete")),
    "failing": ("red", marked("failing")),
}


def register(app: typer.Typer) -> None:
    """Add `crmops doctor` to `app`."""
    app.command("doctor")(doctor)


def doctor(
    *,
    as_json: Annotated[
        bool, typer.Option("--json", help=marked("print the report as JSON"))
    ] = False,
    env_file: Annotated[
        Path, typer.Option("--env-file", help=marked("settings file read after the environment"))
    ] = Path(".env"),
) -> None:
    """Check each configured vendor: settings complete, and one harmless read answered."""
    with failures_as_exit_codes():
        report = anyio.run(lambda: diagnose(env_file=env_file))
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        print_report(Console(), report)
    raise typer.Exit(OUTCOME_EXIT_CODES[report.outcome])


def print_report(console: Console, report: DoctorReport) -> None:
    """The checks as a table, then each problem explained."""
    table = Table(title="crmops doctor", title_justify="left")
    table.add_column(tr("vendor"))
    table.add_column(tr("status"))
    table.add_column(tr("check"))
    table.add_column(tr("result"), overflow="fold")
    for check in report.checks:
        style, status = _STATUS_STYLE[check.status]
        shown = tr("skipped") if check.check == "skipped" else check.check
        table.add_row(check.vendor, Text(tr(status), style=style), shown, _result(check))
    console.print(table)
    for check in report.checks:
        _explain(console, check)
    _print_sources(console, report)
    console.print(_verdict(report), highlight=False)


def _print_sources(console: Console, report: DoctorReport) -> None:
    """Where each setting came from: the environment, which .env file, or the default."""
    if not report.sources:
        return
    console.print("\n" + tr("settings read from:"), highlight=False)
    for variable, origin in report.sources.items():
        console.print(f"  {variable}: {origin}", highlight=False, markup=False)


def _result(check: VendorCheck) -> str:
    took = f" ({check.seconds:.2f} s)" if check.seconds is not None else ""
    return check.summary + took


def _explain(console: Console, check: VendorCheck) -> None:
    if check.status not in {"failing", "misconfigured"}:
        return
    console.print(f"\n{check.vendor}: {check.summary}", highlight=False, markup=False)
    lines = [
        (tr("where"), check.url),
        (tr("HTTP status"), str(check.http_status) if check.http_status else None),
        (tr("meaning"), check.meaning),
        (tr("what to do"), check.action),
    ]
    for label, text in lines:
        if text:
            console.print(f"  {label}: {text}", highlight=False, markup=False)


def _verdict(report: DoctorReport) -> str:
    if report.outcome == "ok":
        return "\n" + tr("every configured vendor answered")
    if all(check.status == "not_configured" for check in report.checks):
        return "\n" + tr(
            "no vendor is configured: set the variables of at least one (see README, "
            "Configuration), or try everything first with `crmops sandbox --tour`"
        )
    if report.outcome == "misconfigured":
        return "\n" + tr(
            "some settings are missing or wrong: fix them, then run crmops doctor again"
        )
    return "\n" + tr("a vendor failed: see what to do above")
