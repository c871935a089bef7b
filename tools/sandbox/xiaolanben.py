"""A Xiaolanben blue-crm simulator, as strict as 003 (and README "Xiaolanben")::

    sim = XiaolanbenSimulator(company_id="10001", sign_key=SecretStr("demo-key"))
    sim.seed()                        # 25 staff in 5 departments, a few customers
    with serve(sim.app) as served:    # XIAOLANBEN_BASE_URL=served.url
        ...

Every request is checked like the vendor does: `h_t`/`h_sign` present (403 请求未包含签名信息),
`h_t` within 10 s of its clock (403 请求签名已过期 — 003 names no message for it;
`faults.clock_skew` sets that clock off, every answer's `Date` shows it), `companyId` known
(401), the signature recomputed from the raw query and body (401 请求未经过认证), and the same
signature refused a second time within 10 s (403 请求不允许重复执行). Parameters are validated
(400 请求参数错误: ...), customers are deduplicated by entName/customerName and contacts by phone.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tools.sandbox.simulation import Clock, Simulator
from tools.storage.replay import ReplayGuard
from tools.vendors.xiaolanben.auth import EXPIRED, SIGN_PARAM, TIME_PARAM, signature_matches

OPEN = "/blue-crm/api/v1/open"
IMPORT_ONE_PATH = f"{OPEN}/customer/import/customerWithContact"
IMPORT_MANY_PATH = f"{OPEN}/customer/import/customersWithContact"
STAFF_PATH = f"{OPEN}/companycenter/staffs"

NO_SIGNATURE = "请求未包含签名信息"
REPLAYED = "请求不允许重复执行"
BAD_SIGNATURE_PARAM = "签名参数错误"
UNAUTHENTICATED = "请求未经过认证"
TOO_MANY = "请求过于频繁"
BAD_PARAM = "请求参数错误"

# 003 only *recommends* 10 customers of 10 contacts per call; the simulator refuses more
# so that a client whose chunking is broken fails here, not in production.
MAX_BATCH = 10
MAX_CONTACTS = 10
_BOOL_FLAGS = ("checkKeepLimit", "ownerConflictUpdate", "autoUnlock", "autoDraw")
_DUPLICATE_CONTROLS = {
    "SYSTEM",
    "CUSTOMER_PHONE_DUPLICATE_FAIL",
    "CUSTOMER_PHONE_DUPLICATE_IGNORE",
}
_CUSTOMER_TEXT = {"customerName": 200, "entName": 200, "customerSource": None}
_CUSTOMER_TEXT |= {"publicSeaId": None, "tag": None}
_CUSTOMER_KEYS = {*_CUSTOMER_TEXT, "staffId", "tagIds", "contacts"}
_CONTACT_TEXT: dict[str, int | None] = {
    **dict.fromkeys(("name", "position", "dept", "phone", "tel", "wechat", "qq"), 30),
    "thirdDataId": None,
    "email": 100,
    "addr": 200,
    "logo": 400,
    "gender": 2,
    "birthday": 10,
    "remark": None,
}
_GENDERS = {"男", "女", "未知", ""}
_CUSTOM = "customizeField."


class Refused(Exception):  # noqa: N818 - the vendor's refusal, answered as its error body
    """Answer `status` with the vendor's error body and `message`."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


@dataclass
class StoredContact:
    contact_id: int
    fields: dict[str, Any]

    @property
    def phone(self) -> str:
        return str(self.fields.get("phone") or "")


@dataclass
class StoredCustomer:
    """One customer as the simulated CRM keeps it; `staff_id` None = in a public sea."""

    customer_id: int
    identity: str
    staff_id: int | None
    public_sea_id: str | None
    fields: dict[str, Any]
    contacts: list[StoredContact] = field(default_factory=list)

    @property
    def customer_name(self) -> str:
        return str(self.fields["customerName"])


@dataclass(frozen=True)
class _Flags:
    owner_conflict_update: bool = False
    auto_draw: bool = False
    duplicate_control: str = "SYSTEM"


class XiaolanbenSimulator(Simulator):
    """The blue-crm open API for one company, in memory. `seed()` fills demo data."""

    vendor = "xiaolanben"

    def __init__(
        self,
        *,
        company_id: str,
        sign_key: SecretStr | str,
        window: float = 10.0,
        clock: Clock = time.time,
        rate_limit: float | None = 50.0,
    ) -> None:
        super().__init__(rate_limit=rate_limit, clock=clock)
        self.company_id = company_id
        self._sign_key = sign_key if isinstance(sign_key, SecretStr) else SecretStr(sign_key)
        self.window = window
        self._replays = ReplayGuard(window, clock)
        self.staff: dict[int, dict[str, Any]] = {}
        self.customers: dict[str, StoredCustomer] = {}
        self._ids = itertools.count(880_000_001)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(company_id={self.company_id!r})"

    # --- Simulator hooks ----------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        return [
            Route(IMPORT_ONE_PATH, self._signed(self._import_one), methods=["POST"]),
            Route(IMPORT_MANY_PATH, self._signed(self._import_many), methods=["POST"]),
            Route(STAFF_PATH, self._signed(self._list_staff), methods=["GET"]),
        ]

    def error_response(self, status: int, code: str, message: str) -> Response:
        """003 错误响应: `{"trackingId", "errors": [{"code", "message"}]}`."""
        body = {
            "trackingId": str(uuid.uuid4()),
            "errors": [{"code": int(code) if code.isdigit() else code, "message": message}],
        }
        return JSONResponse(body, status_code=status)

    def rate_limited_response(self) -> Response:
        response = self.error_response(429, "429", TOO_MANY)
        response.headers["Retry-After"] = "1"
        return response

    # --- demo data ----------------------------------------------------------------------
    def add_staff(
        self, real_name: str, mobile: str, department: str, role_id: int = 3, role: str = "销售"
    ) -> int:
        """Add one employee; returns the new `staffId`."""
        staff_id = 10_001 + len(self.staff)
        self.staff[staff_id] = {
            "staffId": staff_id,
            "realName": real_name,
            "mobile": mobile,
            "department": department,
            "roleId": role_id,
            "role": role,
        }
        return staff_id

    def seed(self) -> None:
        """25 staff in five departments and three customers (two owned, one public)."""
        for number, (name, department, role_id, role) in enumerate(_DEMO_STAFF):
            self.add_staff(name, f"1391234{number:04d}", department, role_id, role)
        owner = next(iter(self.staff))
        for name, ent_name, staff_id, phone in (
            ("蓝本科技", "上海蓝本网络科技有限公司", owner, "13800138001"),
            ("华东物流", "杭州华东物流有限公司", owner + 1, "13800138002"),
            ("星河贸易", "", None, "13800138003"),
        ):
            customer = {"customerName": name, "entName": ent_name, "staffId": staff_id}
            contact = {"thirdDataId": "seed", "name": "联系人", "phone": phone}
            self._import(customer | {"contacts": [contact]}, _Flags())

    # --- request checks -----------------------------------------------------------------
    def _signed(
        self, handler: Callable[[Request, dict[str, list[str]], str], Awaitable[Any]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                params, body = await self._verify(request)
                return JSONResponse(await handler(request, params, body))
            except Refused as refusal:
                self.counters[f"refused_{refusal.status}"] += 1
                return self.error_response(refusal.status, str(refusal.status), refusal.message)

        return endpoint

    async def _verify(self, request: Request) -> tuple[dict[str, list[str]], str]:
        """Check the signature as 003 describes; returns the query and the body text."""
        params = _query(request.scope.get("query_string", b""))
        h_t, h_sign = params.get(TIME_PARAM, [""])[0], params.get(SIGN_PARAM, [""])[0]
        if not h_t or not h_sign:
            raise Refused(403, NO_SIGNATURE)
        if not _is_number(h_t):
            raise Refused(403, f"{BAD_SIGNATURE_PARAM}: h_t 应为毫秒时间戳")
        # The server's own clock: `faults.clock_skew` sets it off (its Date header shows it).
        if abs(self.server_time() * 1000 - int(h_t)) > self.window * 1000:
            raise Refused(403, EXPIRED)
        if request.headers.get("companyId") != self.company_id:
            raise Refused(401, UNAUTHENTICATED)
        body = await _body_text(request)
        signed_body = body if request.method in {"POST", "PUT"} else None
        if not signature_matches(self._sign_key, params, signed_body, int(h_t), h_sign):
            raise Refused(401, UNAUTHENTICATED)
        if self._replays.seen_before(h_sign):
            raise Refused(403, REPLAYED)
        return params, body

    # --- endpoints ----------------------------------------------------------------------
    async def _import_one(self, request: Request, params: dict[str, list[str]], body: str) -> Any:
        flags = _flags(params)
        raw = _json(body)
        if not isinstance(raw, dict):
            raise Refused(400, f"{BAD_PARAM}: 请求体应为客户对象")
        _check_customer(raw, "")
        result = self._import(raw, flags)
        if not result["success"]:
            raise Refused(400, str(result["failedReason"]))
        return {
            key: value for key, value in result.items() if key not in {"success", "failedReason"}
        }

    async def _import_many(self, request: Request, params: dict[str, list[str]], body: str) -> Any:
        flags = _flags(params)
        raw = _json(body)
        if not isinstance(raw, list) or not raw:
            raise Refused(400, f"{BAD_PARAM}: 请求体应为客户列表")
        if len(raw) > MAX_BATCH:
            raise Refused(400, f"{BAD_PARAM}: 每次最多导入{MAX_BATCH}个客户")
        for index, item in enumerate(raw):
            if not isinstance(item, dict):
                raise Refused(400, f"{BAD_PARAM}: [{index}] 应为客户对象")
            _check_customer(item, f"[{index}].")
        answer: dict[str, Any] = {}
        for item in raw:
            # 003: the answer is keyed by customer name; a repeated name overwrites.
            answer[str(item["customerName"])] = self._import(item, flags)
        return answer

    async def _list_staff(self, request: Request, params: dict[str, list[str]], body: str) -> Any:
        page_index = _int_param(params, "pageIndex", low=1)
        page_size = _int_param(params, "pageSize", low=2, high=100)
        search = params.get("search", [""])[0]
        staff = [
            person
            for _, person in sorted(self.staff.items())
            if not search or search in person["realName"] or search == person["mobile"]
        ]
        start = (page_index - 1) * page_size
        return staff[start : start + page_size]

    # --- the CRM ------------------------------------------------------------------------
    def _import(self, raw: Mapping[str, Any], flags: _Flags) -> dict[str, Any]:
        """Create or update one customer; the batch answer's entry for it."""
        staff_id = _as_int(raw.get("staffId"))
        if staff_id is not None and staff_id not in self.staff:
            return _failure(f"员工不存在: {staff_id}")
        identity = str(raw.get("entName") or raw["customerName"])
        existing = self.customers.get(identity)
        try:
            if existing is None:
                customer, contact_ids = self._create(identity, raw, staff_id, flags)
            else:
                customer, contact_ids = self._update(existing, raw, staff_id, flags)
        except Refused as refusal:
            return _failure(refusal.message)
        return {
            "success": True,
            "customerId": customer.customer_id,
            "staffId": customer.staff_id,
            "publicSeaId": customer.public_sea_id,
            "isNew": existing is None,
            "contactIdMap": contact_ids,
            "failedReason": None,
        }

    def _create(
        self, identity: str, raw: Mapping[str, Any], staff_id: int | None, flags: _Flags
    ) -> tuple[StoredCustomer, dict[str, int]]:
        contacts = list(raw.get("contacts") or [])
        if staff_id is None:
            # 003 phone: a new customer goes to the staff member who owns a contact's phone.
            owners = (self._phone_owner(str(c.get("phone") or ""), None) for c in contacts)
            staff_id = next((owner for owner in owners if owner is not None), None)
        kept = self._contacts_to_keep(contacts, staff_id, None, flags)
        customer = StoredCustomer(
            customer_id=next(self._ids),
            identity=identity,
            staff_id=staff_id,
            public_sea_id=raw.get("publicSeaId") or None,
            fields=_customer_fields(raw),
        )
        self.customers[identity] = customer
        return customer, self._store_contacts(customer, kept)

    def _update(
        self, customer: StoredCustomer, raw: Mapping[str, Any], staff_id: int | None, flags: _Flags
    ) -> tuple[StoredCustomer, dict[str, int]]:
        owner = customer.staff_id
        # 003 entName: only a public-sea customer or the given staff's own is updated,
        # unless ownerConflictUpdate is set with a staffId (and then the owner stays).
        forced = staff_id is not None and flags.owner_conflict_update
        if owner is not None and owner != staff_id and not forced:
            raise Refused(400, f"客户已归属其他员工: {customer.customer_name}")
        contacts = list(raw.get("contacts") or [])
        kept = self._contacts_to_keep(contacts, owner, customer, flags)
        if owner is None and staff_id is not None and flags.auto_draw:
            customer.staff_id = staff_id
        # 003: staffId, customerSource and publicSeaId of an existing customer are ignored.
        update = _customer_fields(raw)
        for ignored in ("customerSource", "publicSeaId"):
            update.pop(ignored, None)
        customer.fields.update(update)
        return customer, self._store_contacts(customer, kept)

    def _contacts_to_keep(
        self,
        contacts: list[dict[str, Any]],
        owner: int | None,
        customer: StoredCustomer | None,
        flags: _Flags,
    ) -> list[dict[str, Any]]:
        """The contacts to store; refuses on a phone owned by another staff member."""
        kept = []
        for contact in contacts:
            phone_owner = self._phone_owner(str(contact.get("phone") or ""), customer)
            if owner is not None and phone_owner is not None and phone_owner != owner:
                if flags.duplicate_control == "CUSTOMER_PHONE_DUPLICATE_IGNORE":
                    continue
                raise Refused(400, f"联系人手机号已归属其他员工: {contact.get('phone')}")
            kept.append(contact)
        return kept

    def _store_contacts(
        self, customer: StoredCustomer, contacts: list[dict[str, Any]]
    ) -> dict[str, int]:
        """Add or update (by phone) `contacts`; returns thirdDataId → contact id."""
        ids: dict[str, int] = {}
        by_phone = {c.phone: c for c in customer.contacts if c.phone}
        for contact in contacts:
            fields = {k: v for k, v in contact.items() if k != "thirdDataId"}
            stored = by_phone.get(str(contact.get("phone") or ""))
            if stored is None:
                # 003 contacts: only a known phone updates; anything else is a new contact.
                stored = StoredContact(next(self._ids), fields)
                customer.contacts.append(stored)
                if stored.phone:
                    by_phone[stored.phone] = stored
            else:
                stored.fields.update(fields)
            ids[str(contact["thirdDataId"])] = stored.contact_id
        return ids

    def _phone_owner(self, phone: str, besides: StoredCustomer | None) -> int | None:
        if not phone:
            return None
        for customer in self.customers.values():
            if customer is besides or customer.staff_id is None:
                continue
            if any(contact.phone == phone for contact in customer.contacts):
                return customer.staff_id
        return None


# --- parsing and validating what the client sent ------------------------------------------


def _query(raw: bytes) -> dict[str, list[str]]:
    """The query as a servlet sees it: URL-decoded, repeated keys kept, blanks kept."""
    params: dict[str, list[str]] = {}
    for name, value in parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True):
        params.setdefault(name, []).append(value)
    return params


async def _body_text(request: Request) -> str:
    try:
        return (await request.body()).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refused(400, f"{BAD_PARAM}: 请求体不是UTF-8编码") from exc


def _json(body: str) -> Any:
    try:
        return json.loads(body)
    except ValueError as exc:
        raise Refused(400, f"{BAD_PARAM}: 请求体不是合法的JSON") from exc


def _flags(params: Mapping[str, list[str]]) -> _Flags:
    for name in _BOOL_FLAGS:
        value = params.get(name, [None])[0]
        # Stricter than Spring (which also takes on/yes/1): our client sends true/false.
        if value is not None and value not in {"true", "false"}:
            raise Refused(400, f"{BAD_PARAM}: {name} 应为 true 或 false")
    control = params.get("duplicateControl", ["SYSTEM"])[0]
    if control not in _DUPLICATE_CONTROLS:
        raise Refused(400, f"{BAD_PARAM}: duplicateControl 不支持 {control}")
    return _Flags(
        owner_conflict_update=params.get("ownerConflictUpdate", [""])[0] == "true",
        auto_draw=params.get("autoDraw", [""])[0] == "true",
        duplicate_control=control,
    )


def _int_param(params: Mapping[str, list[str]], name: str, *, low: int, high: int = 2**31) -> int:
    value = params.get(name, [""])[0]
    if not value:
        raise Refused(400, f"{BAD_PARAM}: {name} 不能为空")
    if not _is_number(value) or not low <= int(value) <= high:
        raise Refused(400, f"{BAD_PARAM}: {name} 应介于 {low}~{high}")
    return int(value)


def _check_customer(raw: Mapping[str, Any], where: str) -> None:
    name = raw.get("customerName")
    if not isinstance(name, str) or not name.strip():
        raise Refused(400, f"{BAD_PARAM}: {where}customerName 不能为空")
    _check_keys(raw, _CUSTOMER_KEYS, where)
    _check_texts(raw, _CUSTOMER_TEXT, where)
    staff_id = raw.get("staffId")
    if staff_id is not None and _as_int(staff_id) is None:
        raise Refused(400, f"{BAD_PARAM}: {where}staffId 应为数字")
    tag_ids = raw.get("tagIds")
    if tag_ids is not None and not (
        isinstance(tag_ids, list) and all(isinstance(t, str) for t in tag_ids)
    ):
        raise Refused(400, f"{BAD_PARAM}: {where}tagIds 应为字符串列表")
    contacts = raw.get("contacts")
    if contacts is None:
        return
    if not isinstance(contacts, list) or len(contacts) > MAX_CONTACTS:
        raise Refused(400, f"{BAD_PARAM}: {where}contacts 应为不超过{MAX_CONTACTS}个的列表")
    for index, contact in enumerate(contacts):
        _check_contact(contact, f"{where}contacts[{index}].")


def _check_contact(contact: Any, where: str) -> None:
    if not isinstance(contact, dict):
        raise Refused(400, f"{BAD_PARAM}: {where[:-1]} 应为联系人对象")
    third_id = contact.get("thirdDataId")
    if not isinstance(third_id, str) or not third_id:
        raise Refused(400, f"{BAD_PARAM}: {where}thirdDataId 不能为空")
    _check_keys(contact, set(_CONTACT_TEXT), where)
    _check_texts(contact, _CONTACT_TEXT, where)
    if contact.get("gender") not in {None, *_GENDERS}:
        raise Refused(400, f"{BAD_PARAM}: {where}gender 应为 男/女/未知")


def _check_keys(raw: Mapping[str, Any], allowed: set[str], where: str) -> None:
    for key in raw:
        if key not in allowed and not (key.startswith(_CUSTOM) and len(key) > len(_CUSTOM)):
            raise Refused(400, f"{BAD_PARAM}: {where}{key} 不是可识别的字段")


def _check_texts(raw: Mapping[str, Any], limits: Mapping[str, int | None], where: str) -> None:
    for key, limit in limits.items():
        value = raw.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise Refused(400, f"{BAD_PARAM}: {where}{key} 应为字符串")
        # Java String.length(): UTF-16 code units.
        if limit is not None and len(value.encode("utf-16-le")) // 2 > limit:
            raise Refused(400, f"{BAD_PARAM}: {where}{key} 长度不能超过{limit}")


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _is_number(value):
        return int(value)
    return None


def _is_number(text: str) -> bool:
    """Whether Java's `Long.parseLong` reads `text`: decimal digits (Unicode Nd) only.

    Not `str.isdigit`, which also passes "²" that `int` (and the vendor) cannot read: the
    simulator would answer 500 where the vendor refuses (003: 400 / 403 签名参数错误).
    """
    return text.isdecimal()


def _customer_fields(raw: Mapping[str, Any]) -> dict[str, Any]:
    fields = {k: v for k, v in raw.items() if k not in {"contacts", "staffId"}}
    if not fields.get("entName"):
        fields.pop("entName", None)
    return fields


def _failure(reason: str) -> dict[str, Any]:
    return {
        "success": False,
        "customerId": None,
        "staffId": None,
        "publicSeaId": None,
        "isNew": None,
        "contactIdMap": None,
        "failedReason": reason,
    }


_DEMO_STAFF: tuple[tuple[str, str, int, str], ...] = (
    ("张伟", "销售部", 1, "管理员"),
    ("王芳", "销售部", 2, "销售经理"),
    ("李娜", "销售部", 3, "销售"),
    ("刘洋", "销售部", 3, "销售"),
    ("陈静", "销售部", 3, "销售"),
    ("杨磊", "销售部", 3, "销售"),
    ("赵敏", "大客户部", 2, "销售经理"),
    ("黄强", "大客户部", 3, "销售"),
    ("周杰", "大客户部", 3, "销售"),
    ("吴婷", "大客户部", 3, "销售"),
    ("徐磊", "渠道部", 2, "销售经理"),
    ("孙丽", "渠道部", 3, "销售"),
    ("马超", "渠道部", 3, "销售"),
    ("朱琳", "渠道部", 3, "销售"),
    ("胡斌", "客服部", 2, "客服主管"),
    ("郭晶", "客服部", 4, "客服"),
    ("何洁", "客服部", 4, "客服"),
    ("高峰", "客服部", 4, "客服"),
    ("林晓", "客服部", 4, "客服"),
    ("罗军", "市场部", 2, "市场经理"),
    ("梁雪", "市场部", 5, "市场专员"),
    ("宋佳", "市场部", 5, "市场专员"),
    ("郑凯", "市场部", 5, "市场专员"),
    ("谢云", "市场部", 5, "市场专员"),
    ("王磊", "销售部", 3, "销售"),
)
