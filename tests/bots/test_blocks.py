"""Block Kit rendering: the generic renderer of a tool result, and the rows it serves."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bots.blocks import MAX_BLOCKS, SECTION_LIMIT, TEXT_LIMIT, Message, result_message
from bots.commands import SUBCOMMANDS, ToolSubcommand
from tools.table import CREATE_TICKET
from tools.tickets import TicketInfo, TicketList, create_ticket


def _sections(message: Message) -> list[str]:
    return [block["text"]["text"] for block in message["blocks"] if block["type"] == "section"]


def test_the_generic_renderer_shows_the_title_and_each_field() -> None:
    created = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
    result = TicketList(
        tickets=[TicketInfo(id=7, subject="发票 <开具>", status=2, created_at=created)],
        count=1,
        page=1,
        more_available=False,
    )
    head, tickets = _sections(result_message("List Bangwo8 tickets", result))
    assert head.splitlines() == [
        "*List Bangwo8 tickets*",
        "*count:* 1",
        "*page:* 1",
        "*more available:* no",
    ]
    assert tickets.splitlines() == [
        "*tickets* (1)",
        "id 7 · subject 发票 &lt;开具&gt; · status 2 · created at 2025-03-01 09:30+00:00",
    ]


def test_the_generic_renderer_stays_within_slack_limits_for_a_long_list() -> None:
    subject = "<@U0ALL> " + "很长的标题" * 400
    tickets = [
        TicketInfo(id=n, subject=subject, other_fields={"note": "x" * 5000}) for n in range(500)
    ]
    result = TicketList(tickets=tickets, count=5000, page=1, more_available=True)
    message = result_message("List Bangwo8 tickets", result)
    assert len(message["blocks"]) <= MAX_BLOCKS
    assert len(message["text"]) <= TEXT_LIMIT
    sections = _sections(message)
    assert all(len(text) <= SECTION_LIMIT for text in sections)
    listed = "\n".join(sections[1:])
    assert listed.startswith("*tickets* (500)\n")
    items = listed.splitlines()[1:-1]
    assert [item.split(" · ")[0] for item in items] == [f"id {n}" for n in range(20)]
    assert listed.endswith("\n… and 480 more")
    assert "<@U0ALL>" not in listed
    assert "*more available:* yes" in sections[0]


def test_an_empty_list_says_none() -> None:
    result = TicketList(tickets=[], count=0, page=1, more_available=False)
    assert _sections(result_message("List Bangwo8 tickets", result))[1] == "*tickets* (0)\nnone"


def test_a_write_cannot_take_the_read_only_path() -> None:
    with pytest.raises(ValueError, match="create_ticket writes"):
        ToolSubcommand(
            "open",
            "/crm open",
            "open a ticket at once",
            "/crm open",
            tool=CREATE_TICKET,
            run=create_ticket,
            doing="open a ticket",
        )


def test_every_read_subcommand_but_error_takes_the_generic_path() -> None:
    # `error` answers in the ack itself, from local data.
    reads = {name for name, sub in SUBCOMMANDS.items() if sub.tool and not sub.writes}
    generic = {name for name, sub in SUBCOMMANDS.items() if isinstance(sub, ToolSubcommand)}
    assert generic == reads - {"error"} == {"staff", "customer", "tickets"}


def test_each_read_row_runs_the_function_of_its_tool() -> None:
    reads = [sub for sub in SUBCOMMANDS.values() if isinstance(sub, ToolSubcommand)]
    assert [sub.run.__name__ for sub in reads] == [sub.tool.name for sub in reads]
