"""Bangwo8 wire models: the ticket we create, the tickets we read, list filters, the token.

Build a ticket from raw input with `validate_ticket`, which reports every problem at once::

    ticket = validate_ticket({"subject": "产品咨询", "message": "你好,我想咨询下帮我吧产品"})
    ticket.wire()  # {"ticket": {"subject": "产品咨询", "ticketReply": {"replyMsg": "你好,..."}}}

Field names are the vendor's (`priorityLevel`); the snake_case names work too
(`priority_level`). 004 gives no enum values for `ticketStatus`, `priorityLevel` or
`ticketType`: they are accepted as a non-negative int or a non-blank string and sent as given
(public integrations send small ints: status 3/4/5, priority 1-4). Anything else (floats,
booleans, lists) is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time, timedelta, timezone
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from tools.errors import InputError, Problem
from tools.i18n import marked, tr
from tools.models import validation_message
from tools.text import check_text

CHINA_TIME = timezone(timedelta(hours=8))
"""004 names no time zone; the vendor (and its web console) run on China time."""

FILTER_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
"""004 gives no format for `created_start` & co; crmops sends `yyyy-MM-dd HH:mm:ss`, China
time, the format the vendor's console shows and its timestamps use (the year always in four
digits, `0001-01-01 00:00:00`: see `filter_time`)."""

# 004 gives no lengths. A subject is a title (255 is the usual VARCHAR); the message and the
# description are free text, bounded only to catch pasted garbage before the vendor does.
SUBJECT_MAX = 255
TEXT_MAX = 65_535
CODE_MAX = 64
CUSTOM_FIELDS_MAX = 200
PER_PAGE_MAX = 100  # 004: "建议不要超过100条"; the default page is 100 as well.


def _code(value: object) -> int | str:
    hint = marked("a whole number >= 0 (e.g. 1) or a text code; 004 lists no values")
    return _checked(value, what=marked("code"), hint=hint, minimum=0)


def _user_id(value: object) -> int | str:
    hint = marked("the Bangwo8 user's number, e.g. 30001")
    return _checked(value, what=marked("user id"), hint=hint, minimum=1)


def _key(value: object) -> int | str:
    hint = marked("the field's key as set in the console")
    return _checked(value, what=marked("key"), hint=hint, minimum=None)


def _checked(value: object, *, what: str, hint: str, minimum: int | None) -> int | str:
    """`value` if it is an int >= `minimum` (None: no ints) or a non-blank short text;
    `what` and `hint` are English ids (`marked`), translated when the problem is raised."""
    if isinstance(value, int) and not isinstance(value, bool) and minimum is not None:
        if value >= minimum:
            return value
        raise ValueError(
            tr(
                "{value} is below {minimum}: give {hint}",
                value=value,
                minimum=minimum,
                hint=tr(hint),
            )
        )
    if isinstance(value, str) and 0 < len(value.strip()) <= CODE_MAX:
        return value.strip()
    # pydantic reports only a ValueError as a validation problem, so never a TypeError.
    raise ValueError(
        tr(
            "{value} is not a {what}: give {hint} (at most {most} characters)",
            value=repr(value),
            what=tr(what),
            hint=tr(hint),
            most=CODE_MAX,
        )
    )


Code = Annotated[int | str, BeforeValidator(_code)]
"""A status, priority or type: 004 lists no values, so an int >= 0 or a non-blank string."""

UserId = Annotated[int | str, BeforeValidator(_user_id)]
"""A Bangwo8 user id: an int >= 1 or a non-blank string."""

CustomValue = StrictStr | StrictInt | StrictFloat | StrictBool | list[StrictStr] | None


class CustomField(BaseModel):
    """One `custom_fields` item: the field's key as configured in the console, and a value."""

    model_config = ConfigDict(extra="forbid")

    key: Annotated[str, BeforeValidator(_key)]
    value: CustomValue


class TicketCreate(BaseModel):
    """A new ticket for `POST /api/v1/tickets.json`; `message` is its first reply.

    Vendor names work as well as snake_case: `descript`, `ticketStatus`, `priorityLevel`,
    `custUserId`, `servicerUserId`, `ccUserIdList`, `ticketType`, and the vendor's nested
    ``{"ticketReply": {"replyMsg": ...}}`` (or a flat `replyMsg`) for `message`.
    """

    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)

    subject: str = Field(description="the ticket's title, 1-255 characters")
    message: str = Field(
        validation_alias=AliasChoices("message", "replyMsg"),
        description="the first reply (ticketReply.replyMsg)",
    )
    description: str | None = Field(
        default=None, alias="descript", max_length=TEXT_MAX, description="internal description"
    )
    ticket_status: Code | None = Field(default=None, alias="ticketStatus")
    priority_level: Code | None = Field(default=None, alias="priorityLevel")
    ticket_type: Code | None = Field(default=None, alias="ticketType")
    cust_user_id: UserId | None = Field(default=None, alias="custUserId")
    servicer_user_id: UserId | None = Field(default=None, alias="servicerUserId")
    # 004 names the field only; a list is sent as a JSON array (the name says "List").
    cc_user_id_list: list[UserId] | None = Field(default=None, alias="ccUserIdList")
    custom_fields: list[CustomField] | None = Field(default=None, max_length=CUSTOM_FIELDS_MAX)

    @model_validator(mode="before")
    @classmethod
    def _flatten_ticket_reply(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and isinstance(data.get("ticketReply"), Mapping):
            flat = {key: value for key, value in data.items() if key != "ticketReply"}
            flat.setdefault("replyMsg", data["ticketReply"].get("replyMsg"))
            return flat
        return data

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters_or_formulas(cls, value: object) -> object:
        return check_text(value)

    @field_validator("subject")
    @classmethod
    def _subject_is_a_title(cls, value: str) -> str:
        text = value.strip()
        if not text:
            raise ValueError(
                tr("must not be blank: give the ticket a title (1-{most} chars)", most=SUBJECT_MAX)
            )
        if len(text) > SUBJECT_MAX:
            raise ValueError(
                tr(
                    "is {length} characters; shorten it to {most} and put the rest in the message",
                    length=len(text),
                    most=SUBJECT_MAX,
                )
            )
        return text

    @field_validator("message")
    @classmethod
    def _message_is_text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError(tr("must not be blank: write the customer's request (ticketReply)"))
        if len(value) > TEXT_MAX:
            raise ValueError(
                tr("is {length} characters; the limit is {most}", length=len(value), most=TEXT_MAX)
            )
        return value

    def wire(self) -> dict[str, Any]:
        """The request body: ``{"ticket": {"subject", "ticketReply": {"replyMsg"}, ...}}``."""
        fields = self.model_dump(
            by_alias=True, exclude_none=True, exclude={"subject", "message"}, mode="json"
        )
        ticket = {"subject": self.subject, "ticketReply": {"replyMsg": self.message}, **fields}
        return {"ticket": ticket}


def validate_ticket(data: TicketCreate | Mapping[str, Any]) -> TicketCreate:
    """`data` as a `TicketCreate`, or `InputError` listing every problem with its fix."""
    if isinstance(data, TicketCreate):
        return data
    try:
        return TicketCreate.model_validate(data)
    except ValidationError as exc:
        raise InputError(problems_of(exc), summary=tr("the ticket cannot be created")) from exc


def problems_of(error: ValidationError) -> list[Problem]:
    """One `Problem` per pydantic error, named by the field's path (`custom_fields.0.key`)."""
    problems = []
    for item in error.errors(include_url=False):
        field = ".".join(str(part) for part in item["loc"]) or "input"
        problems.append(Problem(field=field, message=validation_message(item)))
    return problems


class Ticket(BaseModel):
    """A ticket as the vendor answers it. Unknown vendor fields are kept (`model_extra`).

    Public integrations read `ticketId`, `subject`, `descript`, `ticketStatus`,
    `priorityLevel`, `custom_fields`, `ticketTemplateId`. 004 does not name the timestamps;
    `created_at`/`updated_at` (like the filters) and the camelCase spellings are all read.
    Naive timestamps are China time.
    """

    model_config = ConfigDict(populate_by_name=True, extra="allow", frozen=True)

    id: int = Field(validation_alias=AliasChoices("ticketId", "id"))
    subject: str = ""
    description: str | None = Field(
        default=None, validation_alias=AliasChoices("descript", "description")
    )
    status: int | str | None = Field(
        default=None, validation_alias=AliasChoices("ticketStatus", "status")
    )
    priority: int | str | None = Field(
        default=None, validation_alias=AliasChoices("priorityLevel", "priority")
    )
    ticket_type: int | str | None = Field(
        default=None, validation_alias=AliasChoices("ticketType", "ticket_type")
    )
    cust_user_id: int | str | None = Field(
        default=None, validation_alias=AliasChoices("custUserId", "cust_user_id")
    )
    servicer_user_id: int | str | None = Field(
        default=None, validation_alias=AliasChoices("servicerUserId", "servicer_user_id")
    )
    custom_fields: list[dict[str, Any]] = Field(default_factory=list)
    created_at: datetime | None = Field(
        default=None,
        validation_alias=AliasChoices("created_at", "createdAt", "createTime", "created"),
    )
    updated_at: datetime | None = Field(
        default=None,
        validation_alias=AliasChoices("updated_at", "updatedAt", "updateTime", "updated"),
    )

    @field_validator("created_at", "updated_at", mode="after")
    @classmethod
    def _china_time_when_naive(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=CHINA_TIME)
        return value

    @field_validator("custom_fields", mode="before")
    @classmethod
    def _null_is_empty(cls, value: object) -> object:
        return [] if value is None else value


class TicketPage(BaseModel):
    """One page of `GET /api/v1/tickets.json`; `next_page` is None on the last page."""

    model_config = ConfigDict(frozen=True)

    tickets: list[Ticket]
    count: int = Field(description="tickets matching the filters, over all pages")
    next_page: str | None = Field(default=None, description="absolute URL of the next page")
    previous_page: str | None = None


Order = Literal["asc", "desc"]
TimeBound = datetime | date


class TicketFilters(BaseModel):
    """Filters of the ticket list (004): creation and update ranges, and sort orders.

    A `date` as a start means its 00:00:00, as an end its 23:59:59 (the whole day counts).
    Aware datetimes are converted to China time; naive ones are taken as China time.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    created_start: TimeBound | None = None
    created_end: TimeBound | None = None
    updated_start: TimeBound | None = None
    updated_end: TimeBound | None = None
    created_order: Order | None = None
    updated_order: Order | None = None

    @field_validator("created_start", "created_end", "updated_start", "updated_end")
    @classmethod
    def _in_china_time_range(cls, value: TimeBound | None) -> TimeBound | None:
        if value is not None:
            _bound(value, 0)  # ValueError for a time that China time cannot hold
        return value

    @model_validator(mode="after")
    def _ranges_are_ordered(self) -> TicketFilters:
        for name in ("created", "updated"):
            start, end = getattr(self, f"{name}_start"), getattr(self, f"{name}_end")
            if start is not None and end is not None and _bound(start, 0) > _bound(end, 1):
                raise ValueError(tr("{name}_start is after {name}_end: swap them", name=name))
        return self

    def params(self) -> dict[str, str]:
        """The query parameters, times as `yyyy-MM-dd HH:mm:ss` China time."""
        params: dict[str, str] = {}
        for name in ("created", "updated"):
            for end, suffix in ((0, "start"), (1, "end")):
                value = getattr(self, f"{name}_{suffix}")
                if value is not None:
                    params[f"{name}_{suffix}"] = filter_time(_bound(value, end))
            order = getattr(self, f"{name}_order")
            if order is not None:
                params[f"{name}_order"] = order
        return params


def filter_time(moment: datetime) -> str:
    """`moment` as `FILTER_TIME_FORMAT` writes it, the year in four digits also before 1000
    (`strftime("%Y")` writes year 1 as `1` on Linux, which no reader of the format expects)."""
    return moment.replace(tzinfo=None).isoformat(sep=" ", timespec="seconds")


def _bound(value: TimeBound, end: int) -> datetime:
    """A filter bound as naive China time; a date covers its whole day. `ValueError` for
    an aware time that falls outside years 1-9999 in China time."""
    if not isinstance(value, datetime):
        return datetime.combine(value, time.max.replace(microsecond=0) if end else time.min)
    if value.tzinfo is not None:
        try:
            return value.astimezone(CHINA_TIME).replace(tzinfo=None)
        except OverflowError:
            raise ValueError(
                tr(
                    "{time} is outside years 1-9999 in China time (UTC+8), which the vendor's "
                    "filters use: give a time within them",
                    time=value.isoformat(),
                )
            ) from None
    return value


class TokenAnswer(BaseModel):
    """`POST /api/token.php` answer: ``{"access_token", "expires_in", "token_type"}``."""

    access_token: SecretStr = Field(min_length=1)
    expires_in: float = Field(default=3600, gt=0, description="seconds; 004 shows 3600")
    token_type: str = "Bearer"  # noqa: S105 - the scheme name, not a secret

    @field_validator("token_type")
    @classmethod
    def _is_bearer(cls, value: str) -> str:
        if value.lower() != "bearer":
            raise ValueError(f"token_type {value!r} is not Bearer")
        return value
