"""Result models shared by the vendor clients and the tool functions."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

OutcomeStatus = Literal["created", "updated", "accepted", "failed"]


class RecordOutcome(BaseModel):
    """What became of one record sent to a vendor.

    `accepted` means the vendor confirmed the record without saying whether it was new.
    """

    model_config = ConfigDict(frozen=True)

    key: str = Field(description="the record's identity: WhatsApp number or customer name")
    status: OutcomeStatus
    vendor_id: str | None = Field(default=None, description="the vendor's id for the record")
    reason: str | None = Field(default=None, description="the vendor's reason, when failed")
