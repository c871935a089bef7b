"""Result models shared by the vendor clients and the tool functions."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import ErrorDetails

from tools.i18n import marked, tr

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


_PYDANTIC_MESSAGES: dict[str, str] = {
    "missing": marked("Field required"),
    "extra_forbidden": marked("Extra inputs are not permitted"),
    "string_type": marked("Input should be a valid string"),
    "int_type": marked("Input should be a valid integer"),
    "int_parsing": marked("Input should be a valid integer, unable to parse string as an integer"),
    "int_from_float": marked(
        "Input should be a valid integer, got a number with a fractional part"
    ),
    "float_type": marked("Input should be a valid number"),
    "float_parsing": marked("Input should be a valid number, unable to parse string as a number"),
    "bool_type": marked("Input should be a valid boolean"),
    "bool_parsing": marked("Input should be a valid boolean, unable to interpret input"),
    "list_type": marked("Input should be a valid list"),
    "dict_type": marked("Input should be a valid dictionary"),
    "model_type": marked("Input should be a valid dictionary or instance of {class_name}"),
    "literal_error": marked("Input should be {expected}"),
    "string_too_short": marked("String should have at least {min_length} characters"),
    "string_too_long": marked("String should have at most {max_length} characters"),
    "too_short": marked(
        "{field_type} should have at least {min_length} items after validation, not {actual_length}"
    ),
    "too_long": marked(
        "{field_type} should have at most {max_length} items after validation, not {actual_length}"
    ),
    "greater_than": marked("Input should be greater than {gt}"),
    "greater_than_equal": marked("Input should be greater than or equal to {ge}"),
    "less_than": marked("Input should be less than {lt}"),
    "less_than_equal": marked("Input should be less than or equal to {le}"),
    "date_type": marked("Input should be a valid date"),
    "date_parsing": marked("Input should be a valid date in the format YYYY-MM-DD, {error}"),
    "date_from_datetime_parsing": marked("Input should be a valid date or datetime, {error}"),
    "datetime_type": marked("Input should be a valid datetime"),
    "datetime_parsing": marked("Input should be a valid datetime, {error}"),
    "datetime_from_date_parsing": marked("Input should be a valid datetime or date, {error}"),
}
"""pydantic's messages by error type, in the current locale (`validation_message`); the
English is pydantic's own `msg` (whose plurals, "1 character", these ids lack)."""


def validation_message(error: ErrorDetails) -> str:
    """What is wrong, for a person, in the current locale: one pydantic error's message.

    A `ValueError` raised in a validator is its own text (without pydantic's "Value error, "),
    so a validator raises it already translated (`tr`). pydantic's own types are looked up in
    a table of translated templates filled from the error's `ctx`; a type the table lacks, or a
    locale with no translation, gives pydantic's English `msg`.
    """
    ctx = error.get("ctx") or {}
    if error["type"] == "value_error" and "error" in ctx:
        return str(ctx["error"])
    template = _PYDANTIC_MESSAGES.get(error["type"])
    if template is None:
        return str(error["msg"])
    if error["type"] == "literal_error" and isinstance(ctx.get("expected"), str):
        ctx = {**ctx, "expected": literal_choices(ctx["expected"])}
    try:
        text, english = tr(template, **ctx), template.format(**ctx)
    except (KeyError, IndexError, ValueError):
        return str(error["msg"])
    return str(error["msg"]) if text == english else text


def literal_choices(expected: str) -> str:
    """A `literal_error`'s `ctx["expected"]` (pydantic joins the choices in English:
    `'a', 'b' or 'c'`) with its last "or" in the current locale."""
    head, joined, last = expected.rpartition(" or ")
    return head + tr(" or ") + last if joined else expected
