"""The Bangwo8 helpdesk as a local Starlette app: as strict as 004 and the README say.

- `POST /api/token.php`: OAuth2 client credentials (Basic `client_id:client_secret`, form
  `grant_type=client_credentials`) → ``{"access_token", "expires_in", "token_type": "Bearer"}``;
  refusals as ``{"error": "invalid_client"}`` (401), ``"invalid_request"`` or
  ``"unsupported_grant_type"`` (400).
- `/api/v1/...`: Basic `account:password` or an unexpired Bearer token, else 401.
- `POST /api/v1/tickets.json`: needs `ticket.subject` and `ticket.ticketReply.replyMsg`; a
  `Requestid` seen in the last 24 h answers the ticket it created, and creates nothing.
  The reply is kept: a ticket read back carries ``"ticketReply": {"replyMsg": ...}`` as sent.
- `GET /api/v1/tickets.json`: `page`, `per_page` (at most 100), `created_*`/`updated_*`
  filters (`yyyy-MM-dd HH:mm:ss`) and `*_order`; `next_page`/`previous_page` are absolute.
- `GET /api/v1/tickets/{id}.json`: ``{"ticket": [{...}]}``; an unknown id or path is 404
  ``{"errcode": "100047", "errmsg": "Invalid resource URI"}``.

Undocumented, so chosen here: errors other than 100047 carry the HTTP status as `errcode`
(``{"errcode": "401", "errmsg": "Unauthorized"}``; the vendor's real codes are unknown); a
create answers 201 ``{"ticket": {...}}``; the show answer is the one-element list public
integrations read (`ticket.first`); timestamps are `created_at`/`updated_at` in China time.
004 shows replies only in the create body, so a ticket as read shows its first reply in the
very shape it was sent, ``"ticketReply": {"replyMsg": ...}`` (the helpdesk shows it on the
ticket; a reader finds it under the name it wrote, and the ticket round-trips into a create).
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import datetime
from operator import itemgetter
from typing import Any
from urllib.parse import parse_qsl

from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tools.sandbox.simulation import Clock, JsonDict, Simulator
from tools.vendors.bangwo8.auth import basic_header_matches, bearer_token
from tools.vendors.bangwo8.models import CHINA_TIME, FILTER_TIME_FORMAT, PER_PAGE_MAX

SANDBOX_ACCOUNT = "demo@bangwo8.sandbox"
SANDBOX_PASSWORD = SecretStr("sandbox-CANARY-password")
SANDBOX_CLIENT_ID = "sandbox-client"
SANDBOX_CLIENT_SECRET = SecretStr("sandbox-CANARY-client-secret")

REQUEST_ID_TTL = 24 * 3600.0
FIRST_TICKET_ID = 2_751_201
_FILTERS = ("created_start", "created_end", "updated_start", "updated_end")
_ORDERS = ("created_order", "updated_order")
_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


class Bangwo8Simulator(Simulator):
    """Tickets in memory behind Bangwo8's two auth schemes. `seed()` adds demo tickets.

    `counters` (besides the base ones): `token_requests`, `tokens_issued`, `unauthorized`,
    `duplicates_dropped`. `create_request_ids` lists the `Requestid` of every create that
    reached the API (None when absent).
    """

    vendor = "bangwo8"

    def __init__(
        self,
        *,
        account: str = SANDBOX_ACCOUNT,
        password: SecretStr = SANDBOX_PASSWORD,
        client_id: str = SANDBOX_CLIENT_ID,
        client_secret: SecretStr = SANDBOX_CLIENT_SECRET,
        expires_in: int = 3600,
        rate_limit: float | None = 10.0,
        clock: Clock = time.time,
    ) -> None:
        super().__init__(rate_limit=rate_limit, clock=clock)
        self.account = account
        self.client_id = client_id
        self._password = password
        self._client_secret = client_secret
        self.expires_in = expires_in
        self.tickets: dict[int, JsonDict] = {}
        self.create_request_ids: list[str | None] = []
        self._next_id = FIRST_TICKET_ID
        self._tokens: dict[str, float] = {}
        self._created_by_request_id: dict[str, tuple[int, float]] = {}
        self._bearer_calls_left: int | None = None

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/api/token.php", self._issue_token, methods=["POST"]),
            Route("/api/v1/tickets.json", self._create_ticket, methods=["POST"]),
            Route("/api/v1/tickets.json", self._list_tickets, methods=["GET"]),
            Route("/api/v1/tickets/{ticket_id}.json", self._show_ticket, methods=["GET"]),
            Route("/{path:path}", self._unknown_resource, methods=_ALL_METHODS),
        ]

    def error_response(self, status: int, code: str, message: str) -> Response:
        return JSONResponse({"errcode": code, "errmsg": message}, status_code=status)

    def rate_limited_response(self) -> Response:
        response = self.error_response(429, "429", "Too Many Requests")
        response.headers["Retry-After"] = "1"
        return response

    def expire_tokens(self) -> None:
        """Revoke every issued token now (the next API call with one gets 401)."""
        self._tokens.clear()

    def expire_tokens_after(self, calls: int) -> None:
        """Revoke every token once `calls` more API calls were let in with one (mid-import)."""
        self._bearer_calls_left = calls

    # --- OAuth2 token -----------------------------------------------------------------
    async def _issue_token(self, request: Request) -> Response:
        self.counters["token_requests"] += 1
        form = await _form(request)
        if form is None or "grant_type" not in form:
            return _oauth_error(400, "invalid_request", "grant_type is required (form body)")
        header = request.headers.get("authorization")
        if not basic_header_matches(header, self.client_id, self._client_secret):
            return _oauth_error(401, "invalid_client", "Client authentication failed")
        if form["grant_type"] != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type", "Use client_credentials")
        token = secrets.token_urlsafe(32)
        self._tokens[token] = self.clock() + self.expires_in
        self.counters["tokens_issued"] += 1
        answer = {"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"}
        return JSONResponse(answer, headers={"Cache-Control": "no-store"})

    def _refusal(self, request: Request) -> Response | None:
        """None when the request carries valid Basic credentials or a live Bearer token."""
        header = request.headers.get("authorization")
        if basic_header_matches(header, self.account, self._password):
            return None
        token = bearer_token(header)
        if self._bearer_calls_left == 0:
            self._bearer_calls_left = None
            self.expire_tokens()
        if token is not None and self._tokens.get(token, 0.0) > self.clock():
            if self._bearer_calls_left is not None:
                self._bearer_calls_left -= 1
            return None
        self.counters["unauthorized"] += 1
        return self.error_response(401, "401", "Unauthorized")

    # --- tickets ----------------------------------------------------------------------
    async def _create_ticket(self, request: Request) -> Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        request_id = request.headers.get("requestid")
        self.create_request_ids.append(request_id)
        earlier = self._created_for(request_id)
        if earlier is not None:
            self.counters["duplicates_dropped"] += 1
            return JSONResponse({"ticket": self.tickets[earlier]}, status_code=201)
        try:
            body = json.loads(await request.body())
        except ValueError:
            return self.error_response(400, "400", "Request body is not valid JSON")
        problem = _ticket_problem(body)
        if problem is not None:
            return self.error_response(400, "400", problem)
        ticket = self._add_ticket(body["ticket"], self._now_text())
        if request_id:
            expiry = self.clock() + REQUEST_ID_TTL
            self._created_by_request_id[request_id] = (ticket["ticketId"], expiry)
        return JSONResponse({"ticket": ticket}, status_code=201)

    def _created_for(self, request_id: str | None) -> int | None:
        """The ticket an earlier create with this `Requestid` made within the last 24 h."""
        earlier = self._created_by_request_id.get(request_id or "")
        return earlier[0] if earlier is not None and earlier[1] > self.clock() else None

    async def _list_tickets(self, request: Request) -> Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        query = request.query_params
        page, per_page = _positive(query.get("page", "1")), _positive(query.get("per_page", "100"))
        if page is None or per_page is None:
            return self.error_response(400, "400", "page and per_page must be integers >= 1")
        problem = _filter_problem(dict(query))
        if problem is not None:
            return self.error_response(400, "400", problem)
        per_page = min(per_page, PER_PAGE_MAX)
        matching = _ordered(_filtered(list(self.tickets.values()), query), query)
        start = (page - 1) * per_page
        return JSONResponse(
            {
                "tickets": matching[start : start + per_page],
                "count": len(matching),
                "next_page": _page_url(request, page + 1)
                if start + per_page < len(matching)
                else None,
                "previous_page": _page_url(request, page - 1) if page > 1 else None,
            }
        )

    async def _show_ticket(self, request: Request) -> Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        raw = request.path_params["ticket_id"]
        ticket = self.tickets.get(int(raw)) if raw.isascii() and raw.isdigit() else None
        if ticket is None:
            return await self._unknown_resource(request)
        return JSONResponse({"ticket": [ticket]})

    async def _unknown_resource(self, request: Request) -> Response:
        # README: the vendor's own 404 body.
        return self.error_response(404, "100047", "Invalid resource URI")

    # --- state ------------------------------------------------------------------------
    def _add_ticket(self, fields: JsonDict, created: str, updated: str | None = None) -> JsonDict:
        ticket = {
            "ticketId": self._next_id,
            "subject": fields["subject"].strip(),
            "descript": fields.get("descript", ""),
            "ticketStatus": fields.get("ticketStatus", 1),
            "priorityLevel": fields.get("priorityLevel", 0),
            "ticketType": fields.get("ticketType"),
            "custUserId": fields.get("custUserId"),
            "servicerUserId": fields.get("servicerUserId"),
            "ccUserIdList": fields.get("ccUserIdList", []),
            "custom_fields": fields.get("custom_fields", []),
            "ticketReply": {"replyMsg": fields["ticketReply"]["replyMsg"]},
            "created_at": created,
            "updated_at": updated or created,
        }
        self.tickets[self._next_id] = ticket
        self._next_id += 1
        return ticket

    def _now_text(self, days_ago: float = 0.0) -> str:
        moment = datetime.fromtimestamp(self.clock() - days_ago * 86400, CHINA_TIME)
        return moment.strftime(FILTER_TIME_FORMAT)

    def seed(self) -> None:
        """Add demo tickets: a small helpdesk's last two weeks."""
        for days_ago, subject, reply, status, priority, customer, agent in _DEMO_TICKETS:
            fields = {
                "subject": subject,
                "descript": reply,
                "ticketReply": {"replyMsg": reply},
                "ticketStatus": status,
                "priorityLevel": priority,
                "custUserId": customer,
                "servicerUserId": agent,
            }
            created = self._now_text(days_ago)
            self._add_ticket(fields, created, self._now_text(max(days_ago - 0.5, 0.0)))


# (days ago, subject, first message, status, priority, customer id, agent id)
_DEMO_TICKETS: list[tuple[float, str, str, int, int, int, int]] = [
    (14, "产品咨询", "你好,我想咨询下帮我吧产品的报价", 5, 1, 880101, 30001),
    (12, "发票开具申请", "请为三月份的订单开具增值税专用发票", 5, 2, 880102, 30002),
    (11, "账号无法登录", "登录时提示密码错误,已重置两次仍然不行", 4, 3, 880103, 30001),
    (9, "呼叫中心来电无声音", "坐席接听后双方都听不到声音", 3, 4, 880104, 30003),
    (8, "退款进度查询", "上周申请的退款什么时候能到账?", 4, 2, 880105, 30002),
    (6, "知识库文章无法保存", "编辑知识库文章后点击保存没有反应", 2, 2, 880106, 30003),
    (5, "希望增加工单导出功能", "能否支持按月导出工单到Excel?", 1, 1, 880107, 30001),
    (4, "短信验证码收不到", "客户反馈收不到短信验证码,已确认手机号正确", 2, 3, 880108, 30002),
    (3, "客服坐席增加授权", "需要新增5个客服坐席账号", 1, 2, 880109, 30001),
    (2, "工单自动分配规则失效", "新工单全部分给了同一个客服", 2, 4, 880110, 30003),
    (1, "微信渠道消息延迟", "微信公众号消息延迟约十分钟才进入工作台", 1, 3, 880111, 30002),
    (0.2, "合同续签咨询", "我们的合同下月到期,想了解续签优惠", 1, 1, 880112, 30001),
]


def _oauth_error(status: int, code: str, description: str) -> Response:
    body = {"error": code, "error_description": description}
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


async def _form(request: Request) -> dict[str, str] | None:
    """The urlencoded form of a token request, or None when the body is not one."""
    if request.headers.get("content-type", "").split(";")[0].strip() != (
        "application/x-www-form-urlencoded"
    ):
        return None
    try:
        return dict(parse_qsl((await request.body()).decode("utf-8"), strict_parsing=True))
    except ValueError:
        return None


def _ticket_problem(body: Any) -> str | None:
    """What 004 requires of a create body and this one lacks, or None."""
    ticket = body.get("ticket") if isinstance(body, dict) else None
    if not isinstance(ticket, dict):
        return 'the body must be {"ticket": {...}}'
    subject = ticket.get("subject")
    if not isinstance(subject, str) or not subject.strip():
        return "ticket.subject is required"
    reply = ticket.get("ticketReply")
    message = reply.get("replyMsg") if isinstance(reply, dict) else None
    if not isinstance(message, str) or not message.strip():
        return "ticket.ticketReply.replyMsg is required"
    if not isinstance(ticket.get("ccUserIdList", []), list):
        return "ticket.ccUserIdList must be a list"
    fields = ticket.get("custom_fields", [])
    if not isinstance(fields, list) or not all(isinstance(f, dict) and "key" in f for f in fields):
        return "ticket.custom_fields must be a list of {key, value}"
    return None


def _positive(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and int(text) >= 1 else None


def _filter_problem(query: dict[str, str]) -> str | None:
    for name in _FILTERS:
        if name in query:
            try:
                datetime.strptime(query[name], FILTER_TIME_FORMAT)
            except ValueError:
                return f"{name} must be yyyy-MM-dd HH:mm:ss"
    for name in _ORDERS:
        if name in query and query[name] not in {"asc", "desc"}:
            return f"{name} must be asc or desc"
    return None


def _filtered(tickets: list[JsonDict], query: Any) -> list[JsonDict]:
    # Timestamps and bounds are both `yyyy-MM-dd HH:mm:ss`, so text order is time order.
    def inside(ticket: JsonDict) -> bool:
        for field in ("created", "updated"):
            value = ticket[f"{field}_at"]
            start, end = query.get(f"{field}_start"), query.get(f"{field}_end")
            if (start is not None and value < start) or (end is not None and value > end):
                return False
        return True

    return [ticket for ticket in tickets if inside(ticket)]


def _ordered(tickets: list[JsonDict], query: Any) -> list[JsonDict]:
    """By id; then by `updated_order`, then by `created_order` (the primary key) if given."""
    result = sorted(tickets, key=lambda ticket: int(ticket["ticketId"]))
    for field in ("updated", "created"):
        order = query.get(f"{field}_order")
        if order is not None:
            result.sort(key=itemgetter(f"{field}_at"), reverse=order == "desc")
    return result


def _page_url(request: Request, page: int) -> str:
    # 004's sample: "next_page": "https://www.bangwo8.com/api/v1/tickets.json?page=2"
    return str(request.url.include_query_params(page=page))
