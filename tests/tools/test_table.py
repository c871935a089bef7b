"""The tool table: one row per tool function, and every surface reads it."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from bots.commands import SUBCOMMANDS
from server.mcp_server import TOOL_SPECS
from tools.table import (
    CREATE_TICKET,
    IMPORT_CUSTOMER,
    TOOL_NAMES,
    TOOLS,
    ToolRow,
    tool_function,
    tool_row,
)


@pytest.mark.parametrize("row", TOOLS, ids=TOOL_NAMES)
def test_each_row_names_an_async_function_of_its_own_name(row: ToolRow) -> None:
    function = tool_function(row)
    assert inspect.iscoroutinefunction(function)
    assert function.__name__ == row.name
    assert tool_function(row) is function  # imported once


def test_a_row_that_names_no_function_fails_when_resolved() -> None:
    missing = ToolRow(
        "nothing", "Nothing", function="tools.lookup:nothing", read_only=True, idempotent=True
    )
    with pytest.raises(AttributeError):
        tool_function(missing)
    nowhere = ToolRow(
        "nothing", "Nothing", function="tools.nowhere:nothing", read_only=True, idempotent=True
    )
    with pytest.raises(ImportError):
        tool_function(nowhere)


def test_each_row_is_served_by_mcp_with_its_function_of_that_name() -> None:
    assert [spec.row for spec in TOOL_SPECS] == list(TOOLS)
    assert [spec.fn for spec in TOOL_SPECS] == [tool_function(row) for row in TOOLS]


def test_a_slack_subcommand_writes_exactly_when_its_tool_does() -> None:
    writes = {name for name, sub in SUBCOMMANDS.items() if sub.writes}
    assert writes == {"ticket", "import"}
    assert SUBCOMMANDS["ticket"].tool is CREATE_TICKET
    assert SUBCOMMANDS["import"].tool is IMPORT_CUSTOMER
    assert all(sub.tool in TOOLS for sub in SUBCOMMANDS.values() if sub.tool is not None)


def test_writes_is_the_opposite_of_read_only() -> None:
    assert [row.name for row in TOOLS if row.writes] == ["import_customer", "create_ticket"]
    assert ToolRow("x", "X", function="m:x", read_only=False, idempotent=True).writes


def test_a_row_is_found_by_name_and_an_unknown_name_is_a_key_error() -> None:
    assert tool_row("list_staff").read_only
    with pytest.raises(KeyError):
        tool_row("drop_everything")


def test_the_table_loads_nothing_but_the_standard_library() -> None:
    # `__main__` and the interpreter's own start-up hooks (`_distutils_hack`) start with _.
    probe = (
        "import sys, tools.table; "
        "tops = {m.split('.')[0] for m in sys.modules if not m.startswith('_')}; "
        "print(' '.join(sorted(tops - sys.stdlib_module_names)))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=30
    ).stdout.split()
    assert loaded == ["tools"]
