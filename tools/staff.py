"""Staff tool: Xiaolanben employees, whose `staffId` owns imported customers::

result = await list_staff(services, search="王", limit=20)
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, Field

from tools.models import integer_as_text
from tools.services import Services
from tools.table import MAX_STAFF
from tools.vendors.xiaolanben.models import MAX_PAGE_SIZE, MIN_PAGE_SIZE, Staff

_Search = Annotated[str, Field(max_length=50)]
StaffSearch = Annotated[
    _Search, BeforeValidator(integer_as_text, json_schema_input_type=int | _Search)
]
"""A name fragment or a mobile number; a mobile number may come as a JSON integer."""


class StaffList(BaseModel):
    """Xiaolanben staff members, at most `limit` of them."""

    staff: list[Staff]
    more_available: bool = Field(
        description="true when more staff match than were returned: raise limit or narrow search"
    )


async def list_staff(
    services: Services,
    *,
    search: Annotated[
        StaffSearch | None,
        Field(
            description="Optional: a name fragment (matches names containing it) or a full "
            "mobile number (matches exactly). Leave out to list everyone.",
        ),
    ] = None,
    limit: Annotated[
        int, Field(ge=1, le=MAX_STAFF, description="At most this many staff, 1-500.")
    ] = 50,
) -> StaffList:
    """List Xiaolanben (小蓝本 CRM) staff: id, name, mobile, department and role.

    Use it to find the staffId that should own imported customers. Pages through the
    vendor's staff list as needed; `more_available` says whether more matched than `limit`.
    """
    search = search.strip() if search else None
    page_size = min(MAX_PAGE_SIZE, max(MIN_PAGE_SIZE, limit + 1))
    staff = [
        member
        async for member in services.xiaolanben.iter_staff(
            search=search or None, limit=limit + 1, page_size=page_size
        )
    ]
    return StaffList(staff=staff[:limit], more_available=len(staff) > limit)
