"""A SocialEpoch (WhatsApp SCRM) simulator: customer import (both token schemes) and query.

As strict as 000–002: tokens are verified exactly, the time window enforced, and every
refusal answered the vendor's way, HTTP 200 with `{"code", "message", "data": ""}`::

    sim = SocialEpochSimulator(tenant_id="10001", api_key="k", user_name="admin")
    sim.seed()
    with serve(sim.app) as served:
        ...  # SOCIALEPOCH_BASE_URL=served.url

Customers live in `sim.customers`, keyed by `whatsApp` (the vendor's dedupe key): an import
is an upsert and answers one `{"whatsApp", "status", "reason"}` per record in `data`.

`timestamp`/`createTime` must be within `timestamp_window` of the server's clock, which
`faults.clock_skew` sets ahead or behind (every answer's `Date` shows it); out of it: 502.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime, tzinfo
from typing import Any

import phonenumbers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tools.sandbox.simulation import Clock, Simulator
from tools.vendors.socialepoch.auth import (
    CHINA_TIME,
    CREATE_TIME_FORMAT,
    format_create_time,
    header_token,
    legacy_token,
)
from tools.vendors.socialepoch.client import BATCH_IMPORT, LEGACY_IMPORT, QUERY

# 000: the record fields of the legacy import; batchImport adds the owner and tag removal.
LEGACY_FIELDS = frozenset(
    {
        "whatsApp",
        "friendName",
        "sex",
        "birthday",
        "address",
        "email",
        "profession",
        "income",
        "desc",
        "tabName",
        "stage",
        "source",
        "languageTag",
        "welcome",
    }
)
BATCH_FIELDS = LEGACY_FIELDS | {"agentAccount", "cancelTabName"}
SEXES = frozenset({"unknown", "male", "female"})
# The documents give no batch size, only 507 "data size big"; crmops assumes 100.
MAX_RECORDS = 100
RECORDS_PER_TURN = 10
"""Records imported between turns the event loop gets (see `_import_all`)."""
# The documents name no window for `timestamp`/`createTime`, only 502 "timestamp timeout".
DEFAULT_TIMESTAMP_WINDOW = 300.0


class Refusal(Exception):  # noqa: N818 - the vendor's answer, not our failure
    """A business error: answered with HTTP 200 and the vendor's code and message."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code} {message}")


Handler = Callable[[Request], Awaitable[Any]]


class SocialEpochSimulator(Simulator):
    """One tenant: its admin account (legacy import), agent accounts and extended fields."""

    vendor = "socialepoch"

    def __init__(
        self,
        *,
        tenant_id: str,
        api_key: str,
        user_name: str = "admin",
        agent_accounts: Iterable[str] = ("agent01", "agent02"),
        extended_fields: Iterable[str] = ("company", "customerLevel"),
        rate_limit: float | None = 50,
        timestamp_window: float = DEFAULT_TIMESTAMP_WINDOW,
        tz: tzinfo = CHINA_TIME,
        clock: Clock = time.time,
    ) -> None:
        super().__init__(rate_limit=rate_limit, clock=clock)
        self.tenant_id = tenant_id
        self._api_key = api_key
        self.user_name = user_name
        self.agent_accounts = frozenset(agent_accounts)
        self.extended_fields = frozenset(extended_fields)
        self.timestamp_window = timestamp_window
        self.tz = tz
        self.customers: dict[str, dict[str, Any]] = {}

    def __repr__(self) -> str:
        return (
            f"SocialEpochSimulator(tenant_id={self.tenant_id!r}, customers={len(self.customers)})"
        )

    # --- Simulator hooks ---------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        return [
            Route(BATCH_IMPORT.path, self._answer(self._batch_import), methods=["POST"]),
            Route(LEGACY_IMPORT.path, self._answer(self._legacy_import), methods=["PUT"]),
            Route(QUERY.path, self._answer(self._query), methods=["POST"]),
        ]

    def error_response(self, status: int, code: str, message: str) -> Response:
        number: int | str = int(code) if code.lstrip("-").isdigit() else code
        return JSONResponse({"code": number, "message": message, "data": ""}, status_code=status)

    def rate_limited_response(self) -> Response:
        # No vendor document says how a request over 50/s is answered; crmops assumes 429.
        response = self.error_response(429, "429", "Too Many Requests")
        response.headers["Retry-After"] = "1"
        return response

    # --- demo data -----------------------------------------------------------------------
    def seed(self) -> None:
        """A handful of realistic customers, owned by the first agent account."""
        owner = min(self.agent_accounts) if self.agent_accounts else None
        for record in _SEED_CUSTOMERS:
            known = {k: v for k, v in record.items() if k in LEGACY_FIELDS | self.extended_fields}
            self._upsert({**known, "agentAccount": owner} if owner else known)

    # --- routes ----------------------------------------------------------------------------
    def _answer(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                data = await handler(request)
            except Refusal as refusal:
                self.counters[f"refused_{refusal.code}"] += 1
                return self.error_response(200, str(refusal.code), refusal.message)
            except _NotJSON:
                return self.error_response(400, "400", "Bad Request")
            return JSONResponse({"code": 200, "message": "Success", "data": data})

        return endpoint

    async def _batch_import(self, request: Request) -> list[dict[str, Any]]:
        self._check_header_token(request)
        body = await _json_object(request)
        tenant = _text(body.get("tenantId"))
        if not tenant:
            raise Refusal(523, "tenantId is null")
        if tenant != self.tenant_id:
            raise Refusal(501, "appSecret error")
        records = self._check_records(body.get("data"), BATCH_FIELDS)
        self._check_agents(records)
        return await self._import_all(records)

    async def _legacy_import(self, request: Request) -> list[dict[str, Any]]:
        body = await _json_object(request)
        self._check_body_token(body)
        records = self._check_records(body.get("data"), LEGACY_FIELDS)
        return await self._import_all(records)

    async def _query(self, request: Request) -> list[dict[str, Any]]:
        self._check_header_token(request)
        body = await _json(request)
        if not isinstance(body, list) or not body:
            raise Refusal(506, "data is empty")
        if len(body) > MAX_RECORDS:
            raise Refusal(507, "data size big")
        wanted = [_text(item.get("whatsApp")) for item in body if isinstance(item, dict)]
        return [dict(self.customers[number]) for number in wanted if number in self.customers]

    # --- tokens ----------------------------------------------------------------------------
    def _check_header_token(self, request: Request) -> None:
        """001: headers tenant_id, timestamp (ms), token = md5(tenant_id + timestamp + key)."""
        tenant = request.headers.get("tenant_id", "")
        timestamp = request.headers.get("timestamp", "")
        token = request.headers.get("token", "")
        if not tenant:
            raise Refusal(523, "tenantId is null")
        if not timestamp:
            raise Refusal(518, "timestamp is null")
        if not (timestamp.isascii() and timestamp.isdigit()):
            raise Refusal(519, "timestamp is error")
        self._check_time(int(timestamp) / 1000)
        if not token:
            raise Refusal(525, "token is null")
        if tenant != self.tenant_id:
            raise Refusal(501, "appSecret error")
        if not _same(token, header_token(tenant, timestamp, self._api_key)):
            raise Refusal(522, "accessToken is error")

    def _check_body_token(self, body: dict[str, Any]) -> None:
        """000: token = md5(tenantId + userName + createTime + key), all in the body."""
        tenant, user = _text(body.get("tenantId")), _text(body.get("userName"))
        token, create_time = _text(body.get("token")), _text(body.get("createTime"))
        for value, code, message in (
            (tenant, 523, "tenantId is null"),
            (user, 524, "userName is null"),
            (token, 525, "token is null"),
            (create_time, 526, "createTime is null"),
        ):
            if not value:
                raise Refusal(code, message)
        self._check_time(self._parse_create_time(create_time))
        if tenant != self.tenant_id:
            raise Refusal(501, "appSecret error")
        if not _same(token, legacy_token(tenant, user, create_time, self._api_key)):
            raise Refusal(522, "accessToken is error")
        if user != self.user_name and user not in self.agent_accounts:
            raise Refusal(530, "action username error")
        if user != self.user_name:
            # 000: the samples' answer; only the customer admin account may import.
            raise Refusal(-1, "Admin Cannot import data")

    def _parse_create_time(self, text: str) -> float:
        try:
            return datetime.strptime(text, CREATE_TIME_FORMAT).replace(tzinfo=self.tz).timestamp()
        except ValueError:
            raise Refusal(519, "timestamp is error") from None

    def _check_time(self, epoch_seconds: float) -> None:
        # The server's own clock, as its `Date` header shows it: `faults.clock_skew` moves both.
        if abs(epoch_seconds - self.server_time()) > self.timestamp_window:
            raise Refusal(502, "timestamp timeout")

    # --- records -----------------------------------------------------------------------------
    def _check_records(self, data: object, fields: frozenset[str]) -> list[dict[str, Any]]:
        """The request-level checks; a bad record (e.g. its number) only fails that record."""
        if not isinstance(data, list) or not data:
            raise Refusal(506, "data is empty")
        if len(data) > MAX_RECORDS:
            raise Refusal(507, "data size big")
        records = [item if isinstance(item, dict) else {} for item in data]
        for record in records:
            for key, value in record.items():
                if key not in fields and not self._extended_field_ok(key, value):
                    raise Refusal(533, "extended field format error")
        return records

    def _extended_field_ok(self, name: str, value: object) -> bool:
        return name in self.extended_fields and isinstance(value, str | int | float | bool)

    def _check_agents(self, records: Sequence[dict[str, Any]]) -> None:
        for record in records:
            agent = _text(record.get("agentAccount"))
            if not agent:
                raise Refusal(505, "executor is empty")
            if agent not in self.agent_accounts:
                raise Refusal(508, "no exist userName")

    async def _import_all(self, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Import each record, giving the event loop a turn every few: a hundred numbers to
        check take ~10 ms, and requests arriving meanwhile must be counted against the rate
        limit when they arrive, as the vendor's gateway does, not after this whole call."""
        results: list[dict[str, Any]] = []
        for start in range(0, len(records), RECORDS_PER_TURN):
            if start:
                await asyncio.sleep(0)
            turn = records[start : start + RECORDS_PER_TURN]
            results += [self._import_one(record) for record in turn]
        return results

    def _import_one(self, record: dict[str, Any]) -> dict[str, Any]:
        number = _text(record.get("whatsApp"))
        reason = _record_problem(record)
        if reason:
            self.counters["records_failed"] += 1
            return {"whatsApp": number, "status": "failed", "reason": reason}
        status = self._upsert(record)
        return {"whatsApp": number, "status": status, "reason": ""}

    def _upsert(self, record: dict[str, Any]) -> str:
        """Store `record` under its number; tags accumulate, `cancelTabName` removes some."""
        number = _text(record["whatsApp"])
        now = format_create_time(self.server_time(), self.tz)
        existing = self.customers.get(number)
        stored = dict(existing) if existing else {"createTime": now}
        tags = _tags(stored.get("tabName")) + _tags(record.get("tabName"))
        cancelled = set(_tags(record.get("cancelTabName")))
        changes = {k: v for k, v in record.items() if k not in {"tabName", "cancelTabName"}}
        stored.update(changes)
        stored["tabName"] = ",".join(dict.fromkeys(t for t in tags if t not in cancelled))
        stored["updateTime"] = now
        self.customers[number] = stored
        return "updated" if existing else "created"


class _NotJSON(Exception):  # noqa: N818 - a signal inside the simulator
    """The body is not JSON (answered as HTTP 400, as a Spring server would)."""


async def _json(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError:
        raise _NotJSON from None


async def _json_object(request: Request) -> dict[str, Any]:
    body = await _json(request)
    if not isinstance(body, dict):
        raise _NotJSON
    return body


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _tags(value: object) -> list[str]:
    return [tag.strip() for tag in _text(value).split(",") if tag.strip()]


def _record_problem(record: dict[str, Any]) -> str:
    """Why the vendor would not store this record, or "" (000: number and field formats)."""
    number = _text(record.get("whatsApp"))
    if not number:
        return "whatsApp is empty"
    if not _valid_whatsapp(number):
        return "whatsApp must be digits with the country code, e.g. 8618221733141"
    sex = record.get("sex")
    if sex is not None and sex not in SEXES:
        return "sex must be unknown, male or female"
    birthday = record.get("birthday")
    if birthday is not None and not _valid_birthday(birthday):
        return "birthday must be a date written yyyy/MM/dd"
    return ""


def _valid_whatsapp(number: str) -> bool:
    if not (number.isascii() and number.isdigit()):
        return False
    try:
        return bool(phonenumbers.is_valid_number(phonenumbers.parse("+" + number)))
    except phonenumbers.NumberParseException:
        return False


def _valid_birthday(value: object) -> bool:
    try:
        datetime.strptime(str(value), "%Y/%m/%d")
    except ValueError:
        return False
    return True


_SEED_CUSTOMERS: list[dict[str, Any]] = [
    {
        "whatsApp": "8613800138000",
        "friendName": "王芳",
        "sex": "female",
        "birthday": "1988/05/12",
        "address": "上海市浦东新区张江路 88 号",
        "email": "wang.fang@example.cn",
        "profession": "采购经理",
        "tabName": "VIP,复购",
        "stage": "成交客户",
        "source": "官网",
        "languageTag": "zh-CN",
        "company": "上海云启贸易有限公司",
    },
    {
        "whatsApp": "8613912345678",
        "friendName": "李强",
        "sex": "male",
        "address": "广东省深圳市南山区科技园",
        "profession": "外贸业务员",
        "tabName": "潜在客户",
        "stage": "New Customer",
        "source": "展会",
        "languageTag": "zh-CN",
    },
    {
        "whatsApp": "85291234567",
        "friendName": "陈美玲",
        "sex": "female",
        "address": "香港九龙尖沙咀",
        "tabName": "VIP",
        "stage": "跟进中",
        "source": "WhatsApp",
        "languageTag": "zh-HK",
        "customerLevel": "A",
    },
    {
        "whatsApp": "6281234567890",
        "friendName": "Budi Santoso",
        "sex": "male",
        "address": "Jakarta Selatan",
        "email": "budi.santoso@example.co.id",
        "tabName": "Distributor",
        "stage": "New Customer",
        "source": "Facebook Ads",
        "languageTag": "id",
    },
    {
        "whatsApp": "14155552671",
        "friendName": "Emily Carter",
        "sex": "unknown",
        "address": "San Francisco, CA",
        "income": "120000$",
        "tabName": "Lead",
        "stage": "New Customer",
        "source": "System",
        "languageTag": "en",
        "welcome": "Hi Emily, thanks for reaching out!",
    },
]
