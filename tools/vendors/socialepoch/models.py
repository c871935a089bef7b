"""SocialEpoch wire models: the customer record of the import APIs and of the query.

Build customers from raw rows with `validate_customers`, which reports every problem at once::

    customers = validate_customers([{"whatsApp": "+86 182-2173-3141", "friendName": "李雷"}])
    customers[0].wire()   # {"whatsApp": "8618221733141", "friendName": "李雷"}

Field names are the vendor's (`friendName`); the snake_case names work too (`friend_name`).
Keys that are not standard fields are the tenant's extended fields (000: configured in the
admin console), sent as they are; at most `MAX_EXTENDED_FIELDS` a customer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tools.errors import InputError, Problem
from tools.i18n import marked, tr
from tools.models import validation_message
from tools.text import check_text, text_problem

BIRTHDAY_FORMAT = "%Y/%m/%d"
"""000: `birthday` is `yyyy/MM/dd` (sample `2020/03/08`)."""

# Length limits are our choice (see _TEXT_LIMITS); E.164 caps a number at 15 digits.
WHATSAPP_MAX_DIGITS = 15
NAME_MAX = 100
SHORT_TEXT_MAX = 100
ADDRESS_MAX = 255
EMAIL_MAX = 100
LONG_TEXT_MAX = 1000
TAGS_MAX = 500
EXTENDED_FIELD_NAME_MAX = 64
MAX_EXTENDED_FIELDS = 100
"""Extended fields one customer may carry. 000 gives no number: a tenant configures them in
its admin console, tens at most; more in one record is a wrong file or an attack, and each
would be checked and sent."""

ExtendedValue = str | int | float | bool

_PHONE_SEPARATORS = re.compile(r"[\s\-().]")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_WHATSAPP_HINT = marked("digits with the country code, e.g. 8618221733141 (86 = China)")


def normalize_whatsapp(value: str) -> str:
    """`+86 182-2173-3141` → `8618221733141`; ValueError unless it is a valid number.

    000: numbers are sent as digits with the country code and nothing else.
    """
    digits = _PHONE_SEPARATORS.sub("", value.strip()).removeprefix("+")
    if not digits.isascii() or not digits.isdigit():
        raise ValueError(_not_a_phone_number(value))
    if len(digits) > WHATSAPP_MAX_DIGITS:
        raise ValueError(
            tr("{value} has more than {most} digits", value=repr(value), most=WHATSAPP_MAX_DIGITS)
        )
    # phonenumbers takes ~12 ms to import: paid at the first number checked, not by every
    # process that loads the SocialEpoch client (`crmops mcp` before `tools/list`).
    import phonenumbers  # noqa: PLC0415 - start-up cost

    try:
        number = phonenumbers.parse("+" + digits)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(_not_a_phone_number(value)) from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError(
            tr(
                "{value} is not a valid number with its country code: give {hint}",
                value=repr(value),
                hint=tr(_WHATSAPP_HINT),
            )
        )
    return digits


def _not_a_phone_number(value: str) -> str:
    return tr(
        "{value} is not a phone number: give {hint}", value=repr(value), hint=tr(_WHATSAPP_HINT)
    )


def _join_tags(value: object) -> object:
    if isinstance(value, list | tuple):
        tags = [str(tag).strip() for tag in value]
        if any("," in tag for tag in tags):
            raise ValueError(tr("a tag may not contain a comma (tags are sent comma-separated)"))
        return ",".join(tag for tag in tags if tag)
    return value


class _CustomerFields(BaseModel):
    """The standard fields shared by what we send and what the query answers."""

    model_config = ConfigDict(
        populate_by_name=True,
        extra="allow",
        str_strip_whitespace=True,
        coerce_numbers_to_str=True,
    )

    whatsapp: str = Field(alias="whatsApp")
    friend_name: str | None = Field(default=None, alias="friendName")
    address: str | None = None
    email: str | None = None
    profession: str | None = None
    income: str | None = None
    desc: str | None = None
    tab_name: str | None = Field(default=None, alias="tabName")
    stage: str | None = None
    source: str | None = None
    language_tag: str | None = Field(default=None, alias="languageTag")
    welcome: str | None = None

    def wire(self) -> dict[str, Any]:
        """The record as the vendor wants it: its field names, unset fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")

    @property
    def extended_fields(self) -> dict[str, Any]:
        """The keys that are not standard fields: the tenant's extended fields."""
        return dict(self.model_extra or {})


# The documents give no lengths. These are generous bounds that catch pasted garbage (a whole
# CSV row in one cell) before the vendor does; only what we send is checked, never query results.
_TEXT_LIMITS = {
    "friend_name": NAME_MAX,
    "address": ADDRESS_MAX,
    "email": EMAIL_MAX,
    "profession": SHORT_TEXT_MAX,
    "income": SHORT_TEXT_MAX,
    "desc": LONG_TEXT_MAX,
    "tab_name": TAGS_MAX,
    "stage": SHORT_TEXT_MAX,
    "source": SHORT_TEXT_MAX,
    "language_tag": SHORT_TEXT_MAX,
    "welcome": LONG_TEXT_MAX,
    "agent_account": SHORT_TEXT_MAX,
    "cancel_tab_name": TAGS_MAX,
}


class SocialEpochCustomer(_CustomerFields):
    """One customer for `batchImport` (current) or `import` (legacy); `whatsApp` is its key.

    The vendor dedupes by `whatsApp`: importing a known number updates that customer.
    `agentAccount` (batchImport only) is the agent who owns the customer; `cancelTabName`
    (batchImport only) removes tags. Extended-field values must be str, int, float or bool.
    """

    sex: Literal["unknown", "male", "female"] | None = None
    birthday: str | None = Field(default=None, description="yyyy/MM/dd")
    agent_account: str | None = Field(default=None, alias="agentAccount")
    cancel_tab_name: str | None = Field(default=None, alias="cancelTabName")

    @field_validator(*_TEXT_LIMITS, mode="after")
    @classmethod
    def _text_fits(cls, value: str | None, info: ValidationInfo) -> str | None:
        limit = _TEXT_LIMITS[info.field_name or ""]
        if value is not None and len(value) > limit:
            raise ValueError(
                tr(
                    "{length} characters; at most {limit} are accepted",
                    length=len(value),
                    limit=limit,
                )
            )
        return value

    @field_validator("whatsapp", mode="after")
    @classmethod
    def _whatsapp_is_valid(cls, value: str) -> str:
        return normalize_whatsapp(value)

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters_or_formulas(cls, value: object) -> object:
        return check_text(value)

    @field_validator("sex", mode="before")
    @classmethod
    def _sex_lowercase(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("birthday", mode="before")
    @classmethod
    def _birthday_is_a_date(cls, value: object) -> object:
        if value is None:
            return None
        if isinstance(value, date):
            return value.strftime(BIRTHDAY_FORMAT)
        if not isinstance(value, str):
            # pydantic reports only ValueError as a validation error, so not TypeError
            raise ValueError(tr("write the birthday as text yyyy/MM/dd or as a date"))  # noqa: TRY004
        text = value.strip().replace("-", "/")
        if not text:
            return None
        try:
            return datetime.strptime(text, BIRTHDAY_FORMAT).date().strftime(BIRTHDAY_FORMAT)
        except ValueError:
            raise ValueError(
                tr("{value} is not a real date: write yyyy/MM/dd", value=repr(value))
            ) from None

    @field_validator("tab_name", "cancel_tab_name", mode="before")
    @classmethod
    def _tags_joined(cls, value: object) -> object:
        return _join_tags(value)

    @field_validator("email", mode="after")
    @classmethod
    def _email_looks_valid(cls, value: str | None) -> str | None:
        if value and not _EMAIL.match(value):
            raise ValueError(tr("{value} is not an email address", value=repr(value)))
        return value

    @model_validator(mode="after")
    def _extended_fields_are_scalars(self) -> SocialEpochCustomer:
        bad = extended_field_errors(self.extended_fields)
        if bad:
            raise ExtendedFieldsError(bad)
        return self


class ExtendedFieldsError(ValueError):
    """Extended fields the vendor would refuse (`problems`: field name → what is wrong)."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        self.problems = dict(problems)
        super().__init__("; ".join(f"{name}: {text}" for name, text in self.problems.items()))


def extended_field_errors(fields: Mapping[str, object]) -> dict[str, str]:
    """What is wrong with each bad extended field (name → message); empty when all are fine.

    002 code 533 "extended field format error": the vendor refuses the whole call for one
    bad extended field, so each is checked here, per record, with the field named. More than
    `MAX_EXTENDED_FIELDS` are one problem, `extendedFields`, and none is checked.
    """
    if len(fields) > MAX_EXTENDED_FIELDS:
        return {
            "extendedFields": tr(
                "{count} keys are no standard field (extended fields); a customer has at most "
                "{most}: leave out the ones your tenant has not configured",
                count=format(len(fields), ","),
                most=MAX_EXTENDED_FIELDS,
            )
        }
    errors = {}
    for name, value in fields.items():
        if not name or len(name) > EXTENDED_FIELD_NAME_MAX:
            errors[name] = tr(
                "an extended field name has 1-{most} characters", most=EXTENDED_FIELD_NAME_MAX
            )
        elif not isinstance(value, ExtendedValue):
            errors[name] = tr(
                "an extended field value must be text, a number or true/false, not {kind}",
                kind=type(value).__name__,
            )
        elif isinstance(value, float) and not math.isfinite(value):
            errors[name] = tr("an extended field value must be a finite number")
        elif isinstance(value, str) and (problem := text_problem(value)) is not None:
            errors[name] = problem
    return errors


class CustomerRecord(_CustomerFields):
    """A customer as `POST /customer/query` returns it (lenient: it is the vendor's data)."""

    sex: str | None = None
    birthday: str | None = None
    agent_account: str | None = Field(default=None, alias="agentAccount")


def validate_customers(rows: Sequence[Mapping[str, Any]]) -> list[SocialEpochCustomer]:
    """Each row as a `SocialEpochCustomer`, or one `InputError` listing every problem.

    Problems name the vendor's field (`whatsApp`, `birthday`, an extended field's key) and
    the row's index. A number given twice is a problem too: the vendor would keep one.
    """
    indexed: list[tuple[int, SocialEpochCustomer]] = []
    problems: list[Problem] = []
    for index, row in enumerate(rows):
        try:
            indexed.append((index, SocialEpochCustomer.model_validate(dict(row))))
        except ValidationError as exc:
            # The model checks the extended fields only once its standard ones are valid.
            extended = {k: v for k, v in row.items() if k not in _STANDARD_NAMES}
            problems += [Problem(k, v, index) for k, v in extended_field_errors(extended).items()]
            problems += problems_of(exc, index)
    problems += duplicate_problems(indexed)
    if problems:
        raise InputError(
            sorted(problems, key=_by_index), summary=marked("invalid SocialEpoch customers")
        )
    return [customer for _, customer in indexed]


def _by_index(problem: Problem) -> int:
    return -1 if problem.index is None else problem.index


_STANDARD_NAMES = frozenset(
    name
    for field_name, info in SocialEpochCustomer.model_fields.items()
    for name in (field_name, info.alias)
    if name
)


def duplicate_problems(indexed: Sequence[tuple[int, SocialEpochCustomer]]) -> list[Problem]:
    """A problem for each record whose `whatsApp` an earlier record already has."""
    first_seen: dict[str, int] = {}
    problems: list[Problem] = []
    for index, customer in indexed:
        earlier = first_seen.setdefault(customer.whatsapp, index)
        if earlier != index:
            problems.append(
                Problem(
                    "whatsApp",
                    tr(
                        "{number} is also record {earlier}; merge the two into one "
                        "(the vendor keeps one customer per number)",
                        number=customer.whatsapp,
                        earlier=earlier,
                    ),
                    index,
                )
            )
    return problems


def problems_of(error: ValidationError, index: int | None = None) -> list[Problem]:
    """pydantic's errors as `Problem`s, each under the vendor's field name.

    Extended-field errors are left out: `validate_customers` reports those itself, also for
    a record whose standard fields failed (when the model's own check never runs).
    """
    problems = []
    for item in error.errors(include_url=False):
        if isinstance(item.get("ctx", {}).get("error"), ExtendedFieldsError):
            continue
        field = ".".join(str(part) for part in item["loc"]) or "record"
        problems.append(Problem(field, validation_message(item), index))
    return problems
