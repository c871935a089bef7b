"""The tool table: one row per tool function, read by every surface.

    from tools.table import CREATE_TICKET, TOOLS, tool_function, tool_row
    CREATE_TICKET.writes                 # True: confirmed in Slack, audited under its name
    tool_row("list_staff").read_only     # True: served in read-only mode
    await tool_function(tool_row("list_staff"))(services, search="王")

The MCP server serves every row (its function, titles and hints come from here), the Slack
command table takes whether a subcommand writes, and the CLI its argument bounds. A row's
`name` is the tool function's name, the MCP tool's name and the operation its audit entries
are recorded under, on every surface. A new tool is its function and a row here: MCP serves
it with no other edit. Plain data on purpose: importing it loads nothing but the standard
library (`crmops --help` and `crmops errors` read it).
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass
from functools import cache
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from pydantic import BaseModel

ToolFunction: TypeAlias = Callable[..., Awaitable["BaseModel"]]
"""A tool function: async, keyword-only typed arguments, returns its pydantic result model."""


@dataclass(frozen=True)
class ToolRow:
    """What every surface says about one tool.

    `function`: where the tool function is, "package.module:function" (`tool_function(row)`
    imports it). `read_only`: changes nothing anywhere (MCP `readOnlyHint`; the rest write,
    and are audited). `idempotent`: calling twice with the same arguments does no more than
    once. `open_world`: reaches a vendor (False: answers from local data). `destructive`: may
    delete or overwrite what is there.
    """

    name: str
    title: str
    _: KW_ONLY
    function: str
    read_only: bool
    idempotent: bool
    open_world: bool = True
    destructive: bool = False

    @property
    def writes(self) -> bool:
        """True for a tool that changes a vendor's data: Slack asks to confirm it first."""
        return not self.read_only


@cache
def tool_function(row: ToolRow) -> ToolFunction:
    """The function `row.function` names, imported on first use (then cached).

    The row names its function instead of holding it because the table is read where the
    tool modules must not load: `crmops --help` and `crmops errors` import this module, and
    a tool module brings pydantic, httpx and a vendor client with it. `ImportError` or
    `AttributeError` for a row that names no function.
    """
    module, _, attribute = row.function.partition(":")
    function: ToolFunction = getattr(importlib.import_module(module), attribute)
    return function


LOOKUP_ERROR_CODE = ToolRow(
    "lookup_error_code",
    "Explain a vendor error code",
    function="tools.lookup:lookup_error_code",
    read_only=True,
    idempotent=True,
    open_world=False,
)
# Not idempotent as a call (new records are created), though the same records sent again
# are sent only once: the journal remembers them.
IMPORT_CUSTOMER = ToolRow(
    "import_customer",
    "Import customers",
    function="tools.customers:import_customer",
    read_only=False,
    idempotent=False,
)
QUERY_CUSTOMER = ToolRow(
    "query_customer",
    "Find SocialEpoch customers",
    function="tools.customers:query_customer",
    read_only=True,
    idempotent=True,
)
LIST_STAFF = ToolRow(
    "list_staff",
    "List Xiaolanben staff",
    function="tools.staff:list_staff",
    read_only=True,
    idempotent=True,
)
# Not idempotent: each call opens a ticket. A retry inside one call is safe (Requestid).
CREATE_TICKET = ToolRow(
    "create_ticket",
    "Create a Bangwo8 ticket",
    function="tools.tickets:create_ticket",
    read_only=False,
    idempotent=False,
)
LIST_TICKETS = ToolRow(
    "list_tickets",
    "List Bangwo8 tickets",
    function="tools.tickets:list_tickets",
    read_only=True,
    idempotent=True,
)

TOOLS: tuple[ToolRow, ...] = (
    LOOKUP_ERROR_CODE,
    IMPORT_CUSTOMER,
    QUERY_CUSTOMER,
    LIST_STAFF,
    CREATE_TICKET,
    LIST_TICKETS,
)
TOOL_NAMES: tuple[str, ...] = tuple(row.name for row in TOOLS)
_BY_NAME = {row.name: row for row in TOOLS}

# The bounds of the tools' `limit` arguments, here so that a surface can state them without
# loading the tool (`crmops staff --help` shows them; the tool's schema says the same).
MAX_STAFF = 500
"""`list_staff`: at most this many staff."""
MAX_TICKETS_PER_PAGE = 100
"""`list_tickets`: at most this many tickets a page."""


def tool_row(name: str) -> ToolRow:
    """The row of the tool called `name`; `KeyError` for a name that is not in the table."""
    return _BY_NAME[name]
