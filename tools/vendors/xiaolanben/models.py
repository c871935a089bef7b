"""Xiaolanben wire models (003), with the document's limits enforced before sending.

Fields take the vendor's names (`customerName`) or snake_case (`customer_name`). Custom
fields are flat keys `customizeField.<id>`, at most `MAX_CUSTOM_FIELDS` a customer or
contact; no other unknown key is accepted. A contact's phone is ASCII digits, as SocialEpoch
wants its numbers (003 matches contacts by phone)::

    customer = XiaolanbenCustomer.model_validate({
        "customerName": "上海蓝本科技", "customizeField.text_13": "VIP",
        "contacts": [{"thirdDataId": "u1", "name": "王芳", "phone": "13909876543"}],
    })
    customers = validate_customers(rows)   # InputError listing every problem of every row
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from tools.errors import InputError, Problem
from tools.i18n import marked, tr
from tools.models import literal_choices, validation_message
from tools.text import check_text, text_problem

CUSTOM_FIELD_PREFIX = "customizeField."
MAX_CONTACTS = 10
MIN_PAGE_SIZE = 2
MAX_PAGE_SIZE = 100
"""`pageSize` of the staff list, as 003 allows it."""
MAX_CUSTOM_FIELDS = 100
"""`customizeField.<id>` keys one customer (or contact) may carry. 003 gives no number: the
tenant configures its custom fields, tens at most; more in one record is a wrong file."""
_BIRTHDAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_PHONE_CHARS = re.compile(r"^\s*\+?[\d\s\-()]{5,30}$")


def java_length(text: str) -> int:
    """`String.length()` in Java: UTF-16 code units, so 😀 counts 2."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _most(limit: int) -> AfterValidator:
    # 003's limits are Java String lengths (UTF-16 units): an emoji takes two of them.
    def check(value: str) -> str:
        if java_length(value) > limit:
            raise PydanticCustomError(
                "string_too_long",
                "String should have at most {max_length} characters",
                {"max_length": limit},
            )
        return value

    return AfterValidator(check)


Text30 = Annotated[str, _most(30)]

_TOO_MANY_CUSTOM_FIELDS = marked(
    "{count} custom fields; at most {limit} are taken: leave out the ones the "
    "tenant has not configured"
)


class _Record(BaseModel):
    """A body record: vendor names or snake_case, and `customizeField.<id>` extra keys."""

    model_config = ConfigDict(
        populate_by_name=True, extra="allow", frozen=True, coerce_numbers_to_str=True
    )

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters_or_formulas(cls, value: object) -> object:
        return check_text(value)

    @model_validator(mode="after")
    def _only_custom_fields_extra(self) -> Self:
        unknown = [key for key in self.model_extra or {} if not is_custom_field(key)]
        if unknown:
            raise PydanticCustomError(
                "unknown_field",
                "unknown field(s) {fields}",
                {"fields": unknown},
            )
        if len(self.model_extra or {}) > MAX_CUSTOM_FIELDS:
            raise PydanticCustomError(
                "too_many_custom_fields",
                _TOO_MANY_CUSTOM_FIELDS,
                {"count": len(self.model_extra or {}), "limit": MAX_CUSTOM_FIELDS},
            )
        for key, value in (self.model_extra or {}).items():
            problem = text_problem(value) if isinstance(value, str) else None
            if problem is not None:
                raise PydanticCustomError(
                    "bad_text", "{key}: {problem}", {"key": key, "problem": problem}
                )
        return self

    @property
    def custom_fields(self) -> dict[str, Any]:
        """The `customizeField.<id>` keys and their values."""
        return dict(self.model_extra or {})

    def wire(self) -> dict[str, Any]:
        """The JSON object sent to the vendor: vendor names, unset fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _ascii_phone_problem(value: str) -> str | None:
    """Why `value` is no ASCII phone (full-width `１３７...` typed by a Chinese IME), or None.

    Refused rather than converted, as SocialEpoch numbers are: the vendor matches contacts
    by the phone as sent, so `１３７...` and `137...` would be two contacts of one company.
    """
    if value.isascii():
        return None
    suggestion = unicodedata.normalize("NFKC", value).strip()
    hint = tr(" (i.e. {suggestion})", suggestion=repr(suggestion)) if suggestion.isascii() else ""
    return tr(
        "{value} holds full-width or other non-ASCII characters: type the number with "
        "the digits 0-9{hint}, or the vendor would keep it as a second contact",
        value=repr(value),
        hint=hint,
    )


def _is_possible_phone(value: str) -> bool:
    """Digits (spaces, dashes, brackets and a leading + allowed) a phone number can have."""
    if not _PHONE_CHARS.match(value):
        return False
    # As in the SocialEpoch models: phonenumbers loads at the first number checked.
    import phonenumbers  # noqa: PLC0415 - start-up cost

    try:
        number = phonenumbers.parse(value, "CN")
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_possible_number(number))


def is_custom_field(key: str) -> bool:
    """`customizeField.<id>` with a non-empty id (003: 字段标识 of a custom field)."""
    return key.startswith(CUSTOM_FIELD_PREFIX) and len(key) > len(CUSTOM_FIELD_PREFIX)


class XiaolanbenContact(_Record):
    """One contact of a customer; the vendor matches existing contacts by `phone`."""

    third_data_id: str = Field(
        alias="thirdDataId",
        min_length=1,
        description="your id for the contact; the answer maps it to the vendor's contact id",
    )
    name: Text30 | None = None
    position: Text30 | None = None
    dept: Text30 | None = None
    phone: Text30 | None = None
    tel: Text30 | None = None
    email: Annotated[str, _most(100)] | None = None
    addr: Annotated[str, _most(200)] | None = None
    logo: Annotated[str, _most(400)] | None = Field(default=None, description="avatar URL")
    wechat: Text30 | None = None
    qq: Text30 | None = None
    gender: Literal["男", "女", "未知"] | None = None
    birthday: str | None = Field(default=None, description="yyyy-MM-dd")
    remark: str | None = None

    @field_validator("gender", "birthday", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("phone")
    @classmethod
    def _phone_is_a_phone_number(cls, value: str | None) -> str | None:
        # 003 matches contacts by phone, so a garbled one would make a second contact.
        if value is None or not value.strip():
            return value
        problem = _ascii_phone_problem(value)
        if problem is not None:
            raise ValueError(problem)
        if not _is_possible_phone(value):
            raise ValueError(
                tr(
                    "{value} is not a phone number: give a mobile number such as 13912345678 "
                    "(or +8613912345678); put other numbers in tel",
                    value=repr(value),
                )
            )
        return value

    @field_validator("birthday")
    @classmethod
    def _birthday_is_a_date(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                valid = bool(_BIRTHDAY.match(value)) and bool(date.fromisoformat(value))
            except ValueError:
                valid = False
            if not valid:
                raise ValueError(tr("use a real date written yyyy-MM-dd, e.g. 1990-05-17"))
        return value


class XiaolanbenCustomer(_Record):
    """One customer with up to 10 contacts.

    The vendor identifies the customer by `entName`, else `customerName`: importing it
    again updates it (003 entName).
    """

    customer_name: Annotated[str, _most(200)] = Field(alias="customerName", min_length=1)
    ent_name: Annotated[str, _most(200)] | None = Field(default=None, alias="entName")
    staff_id: int | None = Field(default=None, alias="staffId", ge=1, description="owner")
    customer_source: str | None = Field(default=None, alias="customerSource")
    public_sea_id: str | None = Field(default=None, alias="publicSeaId")
    tag: str | None = Field(default=None, description="customer group, created when new")
    tag_ids: list[str] | None = Field(default=None, alias="tagIds")
    contacts: list[XiaolanbenContact] = Field(default_factory=list, max_length=MAX_CONTACTS)

    @field_validator("customer_name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError(tr("must not be blank"))
        return value

    @property
    def identity(self) -> str:
        """What the vendor dedupes on: `entName` when given, else `customerName`."""
        return self.ent_name if self.ent_name else self.customer_name


class DuplicateControl(StrEnum):
    """003 `duplicateControl`: what to do when a contact's phone belongs to another owner."""

    SYSTEM = "SYSTEM"
    CUSTOMER_PHONE_DUPLICATE_FAIL = "CUSTOMER_PHONE_DUPLICATE_FAIL"
    CUSTOMER_PHONE_DUPLICATE_IGNORE = "CUSTOMER_PHONE_DUPLICATE_IGNORE"


class ImportFlags(BaseModel):
    """Import options sent as query parameters; None leaves the vendor's default."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)

    check_keep_limit: bool | None = Field(
        default=None, alias="checkKeepLimit", description="check the owner's quota (default)"
    )
    owner_conflict_update: bool | None = Field(
        default=None,
        alias="ownerConflictUpdate",
        description="update a customer owned by someone else (owner kept)",
    )
    auto_unlock: bool | None = Field(default=None, alias="autoUnlock")
    auto_draw: bool | None = Field(
        default=None, alias="autoDraw", description="claim a public-sea customer for staffId"
    )
    duplicate_control: DuplicateControl | None = Field(default=None, alias="duplicateControl")

    def as_params(self) -> dict[str, str]:
        """Query parameters: booleans as `true`/`false` (Java), unset flags omitted."""
        params: dict[str, str] = {}
        for name, value in self.model_dump(by_alias=True, exclude_none=True).items():
            params[name] = ("true" if value else "false") if isinstance(value, bool) else value
        return params


class Staff(BaseModel):
    """One employee (003 分页获取员工信息); `staff_id` is what `staffId` takes."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    staff_id: int = Field(alias="staffId")
    real_name: str | None = Field(default=None, alias="realName")
    mobile: str | None = None
    department: str | None = None
    role_id: int | None = Field(default=None, alias="roleId")
    role: str | None = None


class ImportResult(BaseModel):
    """The answer to one customer's import (single import, or one entry of a batch)."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    success: bool = True
    customer_id: int | None = Field(default=None, alias="customerId")
    staff_id: int | None = Field(default=None, alias="staffId")
    public_sea_id: str | None = Field(default=None, alias="publicSeaId")
    is_new: bool | None = Field(default=None, alias="isNew")
    contact_id_map: dict[str, int] = Field(default_factory=dict, alias="contactIdMap")
    failed_reason: str | None = Field(default=None, alias="failedReason")

    @field_validator("contact_id_map", mode="before")
    @classmethod
    def _null_is_empty(cls, value: object) -> object:
        # A failed entry carries `contactIdMap: null` (Jackson writes nulls).
        return {} if value is None else value


# --- validation with every problem listed --------------------------------------------------

_ALIASES: dict[type[BaseModel], set[str]] = {
    model: {info.alias for info in model.model_fields.values() if info.alias}
    for model in (XiaolanbenCustomer, XiaolanbenContact)
}
_VENDOR_NAMES = {
    name: info.alias
    for model in (XiaolanbenCustomer, XiaolanbenContact)
    for name, info in model.model_fields.items()
    if info.alias
}


def validate_customers(
    records: Sequence[Mapping[str, Any] | XiaolanbenCustomer], *, distinct: bool = True
) -> list[XiaolanbenCustomer]:
    """Models for `records`, or one `InputError` listing every problem of every record.

    With `distinct` (one batch call), two records for one customer are a problem too:
    the batch answer is keyed by customer name, so their results would collide.
    """
    customers: list[XiaolanbenCustomer | None] = []
    problems: list[Problem] = []
    for index, record in enumerate(records):
        customer, found = _validate_one(record, index)
        customers.append(customer)
        problems += found
    if distinct:
        problems += _duplicates(customers)
    if problems:
        raise InputError(problems, summary=tr("Xiaolanben customers are not valid"))
    return [customer for customer in customers if customer is not None]


def validate_customer(record: Mapping[str, Any] | XiaolanbenCustomer) -> XiaolanbenCustomer:
    """One customer, or `InputError` listing its problems."""
    customer, problems = _validate_one(record, None)
    if problems or customer is None:
        raise InputError(problems, summary=tr("the Xiaolanben customer is not valid"))
    return customer


def _validate_one(
    record: Mapping[str, Any] | XiaolanbenCustomer, index: int | None
) -> tuple[XiaolanbenCustomer | None, list[Problem]]:
    if isinstance(record, XiaolanbenCustomer):
        customer = record
    elif not isinstance(record, Mapping):
        return None, [Problem("", tr("must be an object of customer fields"), index)]
    else:
        try:
            customer = XiaolanbenCustomer.model_validate(dict(record))
        except ValidationError as exc:
            # Unknown keys are found on the raw record: the model's own check runs only
            # once its fields are valid, and every problem should be listed at once.
            problems = _unknown_keys(record, index)
            problems += [p for e in exc.errors() for p in _problems(e, index)]
            return None, problems
    return customer, _contact_id_clashes(customer, index)


def _unknown_keys(record: Mapping[str, Any], index: int | None) -> list[Problem]:
    problems = [_unknown(key, index) for key in record if not _known(key, XiaolanbenCustomer)]
    contacts = record.get("contacts")
    for position, item in enumerate(contacts if isinstance(contacts, list) else []):
        if isinstance(item, Mapping):
            problems += [
                _unknown(f"contacts[{position}].{key}", index)
                for key in item
                if not _known(key, XiaolanbenContact)
            ]
    return problems


def _known(key: object, model: type[BaseModel]) -> bool:
    if not isinstance(key, str):
        return False
    return is_custom_field(key) or key in model.model_fields or key in _ALIASES[model]


def _unknown(field: str, index: int | None) -> Problem:
    return Problem(
        field,
        tr(
            "unknown field; use the vendor's field names, or customizeField.<id> for a custom field"
        ),
        index,
    )


def _contact_id_clashes(customer: XiaolanbenCustomer, index: int | None) -> list[Problem]:
    seen: dict[str, int] = {}
    problems = []
    for position, contact in enumerate(customer.contacts):
        first = seen.setdefault(contact.third_data_id, position)
        if first != position:
            problems.append(
                Problem(
                    f"contacts[{position}].thirdDataId",
                    tr(
                        "{id} is already used by contacts[{first}]; the answer maps contacts "
                        "by this id, so give each contact its own",
                        id=repr(contact.third_data_id),
                        first=first,
                    ),
                    index,
                )
            )
    return problems


def _duplicates(customers: Iterable[XiaolanbenCustomer | None]) -> list[Problem]:
    by_identity: dict[str, int] = {}
    by_name: dict[str, int] = {}
    problems = []
    for index, customer in enumerate(customers):
        if customer is None:
            continue
        first = by_identity.setdefault(customer.identity, index)
        first_named = by_name.setdefault(customer.customer_name, index)
        if first != index:
            what = "entName" if customer.ent_name else "customerName"
            problems.append(
                Problem(
                    what,
                    tr(
                        "same customer as record {first} ({identity}); "
                        "merge the two records or send them in separate calls",
                        first=first,
                        identity=repr(customer.identity),
                    ),
                    index,
                )
            )
        elif first_named != index:
            problems.append(
                Problem(
                    "customerName",
                    tr(
                        "record {first} has the same customerName; the batch answer is "
                        "keyed by customerName, so send them in separate calls",
                        first=first_named,
                    ),
                    index,
                )
            )
    return problems


def _problems(error: ErrorDetails, index: int | None) -> list[Problem]:
    if error["type"] == "unknown_field":
        return []  # listed by _unknown_keys
    if error["type"] == "bad_text":  # a customizeField.<id> value
        ctx = error.get("ctx") or {}
        path = _join(field_path(error["loc"]), str(ctx.get("key")))
        return [Problem(path, str(ctx.get("problem")), index)]
    return [Problem(field_path(error["loc"]), _message(error), index)]


def field_path(loc: Sequence[int | str]) -> str:
    """`("contacts", 1, "email")` → `contacts[1].email`, in the vendor's field names."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = _join(path, _VENDOR_NAMES.get(part, part))
    return path


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _message(error: ErrorDetails) -> str:
    kind, ctx, given = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "string_too_long":
        length = java_length(given) if isinstance(given, str) else "?"
        return tr(
            "at most {limit} characters allowed (got {length}); shorten it",
            limit=ctx.get("max_length"),
            length=length,
        )
    if kind == "too_many_custom_fields":
        return tr(_TOO_MANY_CUSTOM_FIELDS, count=ctx.get("count"), limit=ctx.get("limit"))
    if kind == "literal_error":
        return tr(
            "must be one of {expected} (got {given})",
            expected=literal_choices(str(ctx.get("expected"))),
            given=repr(given),
        )
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    fixed = _FIXED_MESSAGES.get(kind)
    if fixed is not None:
        return tr(fixed, limit=MAX_CONTACTS)
    return tr("{message} (got {given})", message=validation_message(error), given=repr(given))


_FIXED_MESSAGES = {
    "missing": marked("required; add it"),
    "string_too_short": marked("must not be empty"),
    "too_long": marked("at most {limit} contacts per customer; send the rest in another call"),
}
"""Messages of pydantic error types, in English (shown with `tr`, `{limit}` filled)."""
