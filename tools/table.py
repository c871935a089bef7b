"""The tool table: one row per tool function, read by every surface.

    from tools.table import CREATE_TICKET, TOOLS, tool_row
    CREATE_TICKET.writes                 # True: confirmed in Slack, audited under its name
    tool_row("list_staff").read_only     # True: served in read-only mode

The MCP server takes its titles and hints from here, the Slack command table whether a
subcommand writes, and the CLI its command summaries. A row's `name` is the tool function's
name, the MCP tool's name and the operation its audit entries are recorded under, on every
surface. Plain data on purpose: importing it loads nothing but the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ToolRow:
    """What every surface says about one tool.

    `read_only`: changes nothing anywhere (MCP `readOnlyHint`; the rest write, and are
    audited). `idempotent`: calling twice with the same arguments does no more than once.
    `open_world`: reaches a vendor (False: answers from local data). `destructive`: may
    delete or overwrite what is there.
    """

    name: str
    title: str
    read_only: bool
    idempotent: bool
    open_world: bool = True
    destructive: bool = False

    @property
    def writes(self) -> bool:
        """True for a tool that changes a vendor's data: Slack asks to confirm it first."""
        return not self.read_only


LOOKUP_ERROR_CODE = ToolRow(
    "lookup_error_code",
    "Explain a vendor error code",
    read_only=True,
    idempotent=True,
    open_world=False,
)
# Not idempotent as a call (new records are created), though the same records sent again
# are sent only once: the journal remembers them.
IMPORT_CUSTOMER = ToolRow("import_customer", "Import customers", read_only=False, idempotent=False)
QUERY_CUSTOMER = ToolRow(
    "query_customer", "Find SocialEpoch customers", read_only=True, idempotent=True
)
LIST_STAFF = ToolRow("list_staff", "List Xiaolanben staff", read_only=True, idempotent=True)
# Not idempotent: each call opens a ticket. A retry inside one call is safe (Requestid).
CREATE_TICKET = ToolRow(
    "create_ticket", "Create a Bangwo8 ticket", read_only=False, idempotent=False
)
LIST_TICKETS = ToolRow("list_tickets", "List Bangwo8 tickets", read_only=True, idempotent=True)

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


def tool_row(name: str) -> ToolRow:
    """The row of the tool called `name`; `KeyError` for a name that is not in the table."""
    return _BY_NAME[name]
