"""Result models shared by the vendor clients and the tool functions."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

OutcomeStatus = Literal["created", "updated", "accepted", "failed"]


def integer_as_text(value: object) -> object:
    """`BeforeValidator` for a code or phone number: an integer becomes its digits."""
    # bool is an int to Python, but `true` is no code or phone number: left for str to refuse.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


NumberText = Annotated[str, BeforeValidator(integer_as_text, json_schema_input_type=int | str)]
"""A code or a phone number, as text: a JSON integer is taken as its digits, so `502` and
`"502"` are the same argument (the MCP Inspector's `--tool-arg code=502` sends a number).
Its input schema says integer or string; a tool function always receives a `str`."""


class RecordOutcome(BaseModel):
    """What became of one record sent to a vendor.

    `accepted` means the vendor confirmed the record without saying whether it was new.
    """

    model_config = ConfigDict(frozen=True)

    key: str = Field(description="the record's identity: WhatsApp number or customer name")
    status: OutcomeStatus
    vendor_id: str | None = Field(default=None, description="the vendor's id for the record")
    reason: str | None = Field(default=None, description="the vendor's reason, when failed")
