"""How a tool's result looks at a terminal: the CLI commands and the sandbox tour both print
results with `render` (with `--json`, the CLI prints the result model instead).

    render(Console(), await list_staff(services, limit=5))   # the staff table
    render(Console(), {"source": "x.csv", "rows_read": 11})   # any mapping: name/value rows

Each tool's result model has its own table in `TABLES`; anything else is shown field by
field, lists of records as tables (the first ten), wide records as name: value lines.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from tools.customers import CustomerQuery
from tools.i18n import local_time, marked, tr
from tools.staff import StaffList
from tools.tickets import CreatedTicket, TicketInfo, TicketList

FIELD_NAMES: frozenset[str] = frozenset(
    {
        marked("vendor"),
        marked("dry_run"),
        marked("total"),
        marked("batches"),
        marked("created"),
        marked("updated"),
        marked("accepted"),
        marked("failed"),
        marked("not_confirmed"),
        marked("outcomes"),
        marked("would_send"),
        marked("stopped_early"),
        marked("note"),
        marked("key"),
        marked("status"),
        marked("vendor_id"),
        marked("reason"),
        marked("source"),
        marked("run"),
        marked("rows_read"),
        marked("valid"),
        marked("rejected"),
        marked("confirmed"),
        marked("unknown"),
        marked("pending"),
        marked("requests"),
        marked("rows_sent"),
        marked("seconds"),
        marked("problems"),
        marked("query"),
        marked("matched_by"),
        marked("found"),
        marked("matches"),
        marked("close_matches"),
    }
)
"""The result fields the generic renderer names, as message ids: English shows the field's
own name (what `--json` prints too), the other languages a word for it."""
_WIDEST_TABLE = 7  # columns; a record with more fields is shown as name: value lines
_SHOWN_ITEMS = 10


def render(console: Console, result: object) -> None:
    """Print a tool's result for a person: text as is, the tools' result models as their
    table (`TABLES`), any other model or mapping as tables of its fields."""
    if isinstance(result, str):
        console.print(result, highlight=False, markup=False)
        return
    table = TABLES.get(type(result))
    if table is not None:
        console.print(table(result))
        return
    data = (
        result.model_dump(mode="json", exclude_none=True)
        if isinstance(result, BaseModel)
        else result
    )
    if isinstance(data, dict):
        _render_mapping(console, data)
    else:
        console.print(repr(data), markup=False)


def _render_mapping(console: Console, data: dict[str, Any]) -> None:
    data = _filled(data)
    scalars = {key: value for key, value in data.items() if not isinstance(value, list | dict)}
    if scalars:
        console.print(_pairs(scalars), highlight=False)
    for key, value in data.items():
        if isinstance(value, dict) and value:
            console.print(f"{field_name(key)}:", highlight=False)
            console.print(_pairs(value), highlight=False)
        elif isinstance(value, list):
            _render_list(console, field_name(key), value)


def _render_list(console: Console, name: str, items: list[Any]) -> None:
    if not items:
        console.print(f"{name}: " + tr("none"), highlight=False)
        return
    if not all(isinstance(item, dict) for item in items):
        console.print(f"{name}: {', '.join(map(_cell, items))}", highlight=False, markup=False)
        return
    shown = [_filled(item) for item in items[:_SHOWN_ITEMS]]
    more = (
        tr(" (first {shown} of {count})", shown=_SHOWN_ITEMS, count=len(items))
        if len(items) > _SHOWN_ITEMS
        else ""
    )
    columns = list(dict.fromkeys(key for item in shown for key in item))
    if len(columns) > _WIDEST_TABLE:
        console.print(f"{name}{more}:", highlight=False)
        for item in shown:
            console.print(_pairs(item), highlight=False)
            console.print()
        return
    table = Table(title=f"{name}{more}", title_justify="left", highlight=False)
    for column in columns:
        table.add_column(field_name(column), overflow="fold")
    for item in shown:
        table.add_row(*(_cell(item.get(column, "")) for column in columns))
    console.print(table)


def _filled(data: dict[str, Any]) -> dict[str, Any]:
    """`data` without its empty values ("", [], {}): nothing to read there."""
    return {key: value for key, value in data.items() if value not in ("", [], {})}


def _pairs(data: dict[str, Any]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column(overflow="fold")
    for key, value in data.items():
        grid.add_row(field_name(key), _cell(value))
    return grid


def field_name(name: str) -> str:
    """A result field's name for a person: in the current language when it is one of
    `FIELD_NAMES`, else as it is."""
    return tr(name) if name in FIELD_NAMES else name


def _cell(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


# --- the tools' own tables ------------------------------------------------------------------


def _staff_table(result: StaffList) -> Table:
    table = Table(
        "staffId",
        tr("name"),
        tr("mobile"),
        tr("department"),
        tr("role"),
        title=tr("Xiaolanben staff"),
    )
    for member in result.staff:
        table.add_row(
            str(member.staff_id),
            member.real_name or "",
            member.mobile or "",
            member.department or "",
            member.role or "",
        )
    if result.more_available:
        table.caption = tr("more staff match: raise --limit or narrow the search")
    return table


def _customer_table(result: CustomerQuery) -> Table:
    table = Table(
        "whatsApp",
        tr("name"),
        tr("tags"),
        tr("stage"),
        tr("agent"),
        title=tr("SocialEpoch customers"),
    )
    for record in result.customers:
        table.add_row(
            record.whatsapp,
            record.friend_name or "",
            record.tab_name or "",
            record.stage or "",
            record.agent_account or "",
        )
    return table


def _created_table(result: CreatedTicket) -> Table:
    table = Table(title=tr("Bangwo8 ticket created"), show_header=False)
    table.add_column(tr("field"))
    table.add_column(tr("value"))
    info = result.ticket
    for label, value in (
        ("id", info.id),
        (tr("subject"), info.subject),
        (tr("status"), info.status),
        (tr("priority"), info.priority),
        (tr("request id"), result.request_id),
    ):
        table.add_row(label, "" if value is None else str(value))
    return table


def _tickets_table(result: TicketList) -> Table:
    table = Table(
        "id",
        tr("subject"),
        tr("status"),
        tr("priority"),
        tr("created at"),
        title=tr("Bangwo8 tickets"),
    )
    for info in result.tickets:
        table.add_row(
            str(info.id),
            info.subject,
            _text(info.status),
            _text(info.priority),
            _time(info),
        )
    table.caption = tr(
        "page {page}, {count} ticket(s) in all", page=result.page, count=result.count
    ) + (tr(", more on the next page") if result.more_available else "")
    return table


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _time(info: TicketInfo) -> str:
    # A person reads the time in this machine's zone (the vendor's is China time).
    return local_time(info.created_at) if info.created_at else ""


TABLES: dict[type, Callable[[Any], Table]] = {
    StaffList: _staff_table,
    CustomerQuery: _customer_table,
    CreatedTicket: _created_table,
    TicketList: _tickets_table,
}
"""The table each tool's result model is shown as."""
