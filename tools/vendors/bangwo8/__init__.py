"""Bangwo8 (帮我吧) helpdesk, REST v1 (004): tickets over Basic auth or OAuth2 bearer tokens."""

from tools.vendors.bangwo8.auth import Bangwo8BasicAuth, Bangwo8OAuth
from tools.vendors.bangwo8.client import Bangwo8Client
from tools.vendors.bangwo8.errors import check_answer
from tools.vendors.bangwo8.models import (
    CustomField,
    Ticket,
    TicketCreate,
    TicketFilters,
    TicketPage,
    validate_ticket,
)

__all__ = [
    "Bangwo8BasicAuth",
    "Bangwo8Client",
    "Bangwo8OAuth",
    "CustomField",
    "Ticket",
    "TicketCreate",
    "TicketFilters",
    "TicketPage",
    "check_answer",
    "validate_ticket",
]
