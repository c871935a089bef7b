"""`crmops sandbox --tour`: every tool, called against a fresh sandbox, with what it shows.

    exit_code = run_tour(Console())       # 0 when every stop went as planned
    tour_stops()                          # the stops: tool, what it shows, how to try it

Every tool that writes journals and audits into the tour's own throwaway database.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.resources import as_file, files
from typing import Any

import anyio
from pydantic import SecretStr
from rich.console import Console
from rich.rule import Rule

from server.render import render
from tools.bulk import bulk_import
from tools.customers import import_customer, query_customer
from tools.errors import CrmopsError
from tools.i18n import marked, tr
from tools.lookup import lookup_error_code, render_text
from tools.sandbox.stack import Sandbox, self_contained_crmops, start_sandbox, throwaway_database
from tools.services import Services
from tools.settings import Settings
from tools.staff import list_staff
from tools.storage.audit import Actor
from tools.storage.store import Store, sqlite_store
from tools.tickets import create_ticket, list_tickets

SAMPLE_CSV = "samples/customers.csv"
"""Package data of `tools`: customers with Chinese headers, three rows of them bad."""


@dataclass
class TourContext:
    """What a tour stop may use: the tools' services, the simulators, a throwaway journal."""

    services: Services
    sandbox: Sandbox
    store: Store


Step = Callable[[TourContext], Awaitable[object]]


@dataclass(frozen=True)
class TourStop:
    """One step of the tour: which tool, what it shows, how to try it yourself, the call."""

    tool: str
    shows: str
    call: Step
    try_it: str = ""
    fails_on_purpose: bool = False


def tour_stops() -> list[TourStop]:
    """Every tool, in the order a new user would try them."""
    errors = "crmops errors 502  ·  Slack: /crm error 502"
    staff = "crmops staff 张  ·  Slack: /crm staff 张"
    return [
        TourStop(
            "lookup_error_code", marked("what SocialEpoch error 502 means"), _explain_502, errors
        ),
        TourStop(
            "lookup_error_code",
            marked("finding a code by its message text"),
            _explain_by_text,
            'crmops errors "请求不允许重复执行"',
        ),
        TourStop(
            "list_staff",
            marked("a wrong signing key: the vendor refuses, crmops explains"),
            _wrong_key,
            marked("crmops doctor  (checks every configured vendor like this)"),
            fails_on_purpose=True,
        ),
        TourStop("list_staff", marked("Xiaolanben staff (the first five)"), _first_staff, staff),
        TourStop("list_staff", marked("searching staff by name"), _search_staff, staff),
        TourStop(
            "query_customer",
            marked("a SocialEpoch customer by WhatsApp number"),
            _query,
            "crmops customer 8613800138000  ·  Slack: /crm customer 8613800138000",
        ),
        TourStop(
            "import_customer",
            marked("a dry run: what would be sent"),
            _dry_run_import,
            "MCP tool import_customer with dry_run=true",
        ),
        TourStop(
            "import_customer",
            marked("bad records are refused before anything is sent"),
            _bad_import,
            "MCP tool import_customer",
            fails_on_purpose=True,
        ),
        TourStop(
            "import_customer",
            marked("importing into SocialEpoch"),
            _socialepoch_import,
            "MCP tool import_customer",
        ),
        TourStop(
            "import_customer",
            marked("importing companies into Xiaolanben"),
            _xiaolanben_import,
            "MCP tool import_customer",
        ),
        TourStop(
            "bulk import",
            marked("a CSV file with Chinese headers and three bad rows (the bundled sample)"),
            _bulk_import,
            "crmops import customers.csv --vendor socialepoch  ·  Slack: /crm import",
        ),
        TourStop(
            "create_ticket",
            marked("a Bangwo8 ticket"),
            _new_ticket,
            'crmops ticket "subject" -m "message"  ·  Slack: /crm ticket "subject" "message"',
        ),
        TourStop(
            "list_tickets",
            marked("the newest Bangwo8 tickets"),
            _recent_tickets,
            "crmops tickets",
        ),
    ]


def run_tour(console: Console) -> int:
    """Walk through every tool against a fresh sandbox; 0 when every stop went as planned."""
    with start_sandbox() as sandbox:
        return anyio.run(_tour, sandbox, console)


async def _tour(sandbox: Sandbox, console: Console) -> int:
    console.print(
        tr(
            "The crmops tour: every tool, called against the bundled simulators of SocialEpoch, "
            "Xiaolanben and Bangwo8 (no account needed). Each step says how to try it yourself."
        ),
        highlight=False,
    )
    unexpected = 0
    with throwaway_database(prefix="crmops-tour-") as database:
        store = sqlite_store(database)
        settings = sandbox.settings(self_contained_crmops(db=database))
        try:
            # Every tool that writes journals and audits into the tour's own database.
            async with Services(settings, store=store) as services:
                context = TourContext(services=services, sandbox=sandbox, store=store)
                for number, stop in enumerate(tour_stops(), start=1):
                    unexpected += 0 if await _visit(console, number, stop, context) else 1
        finally:
            await store.aclose()
    verdict = (
        tr("every tool answered as expected")
        if not unexpected
        else tr("{count} step(s) failed", count=unexpected)
    )
    console.print(Rule(tr("tour done: {verdict}", verdict=verdict)))
    if not unexpected:
        console.print(
            tr(
                "Next: `crmops sandbox` serves all of this to an MCP client and to Slack; "
                "`crmops doctor` checks your own vendor settings."
            ),
            highlight=False,
        )
    return 0 if not unexpected else 1


async def _visit(console: Console, number: int, stop: TourStop, context: TourContext) -> bool:
    """Run one stop and print what it returned; True when it went as planned."""
    console.print()
    console.print(Rule(f"{number}. {stop.tool}: {tr(stop.shows)}", align="left"), highlight=False)
    if stop.try_it:
        try_it = tr("try it: {command}", command=tr(stop.try_it))
        console.print(try_it, style="dim", highlight=False, markup=False)
    try:
        result = await stop.call(context)
    except CrmopsError as exc:
        label = tr("refused, as expected:") if stop.fails_on_purpose else tr("FAILED:")
        console.print(label, style="bold", highlight=False)
        console.print(str(exc), highlight=False, markup=False)
        return stop.fails_on_purpose
    render(console, result)
    if stop.fails_on_purpose:
        console.print(tr("FAILED: this step should have been refused"), style="bold")
    return not stop.fails_on_purpose


# --- the stops ---------------------------------------------------------------------------


async def _explain_502(context: TourContext) -> str:
    return render_text(await lookup_error_code(code="502", vendor="socialepoch"))


async def _explain_by_text(context: TourContext) -> str:
    return render_text(await lookup_error_code(code="请求不允许重复执行"))


async def _wrong_key(context: TourContext) -> object:
    right = context.services.settings
    wrong = right.xiaolanben.model_copy(update={"sign_key": SecretStr("not-the-sandbox-key")})
    settings = Settings(
        crmops=right.crmops.model_copy(update={"max_attempts": 1}),
        socialepoch=right.socialepoch,
        xiaolanben=wrong,
        bangwo8=right.bangwo8,
    )
    async with Services(settings, store=context.store) as services:
        return await list_staff(services, limit=1)


async def _first_staff(context: TourContext) -> object:
    return await list_staff(context.services, limit=5)


async def _search_staff(context: TourContext) -> object:
    first = next(iter(context.sandbox.xiaolanben.staff.values()))
    return await list_staff(context.services, search=str(first["realName"])[:1], limit=5)


async def _query(context: TourContext) -> object:
    number = next(iter(context.sandbox.socialepoch.customers))
    return await query_customer(context.services, whatsapp=number)


_SAMPLE_CUSTOMERS: list[dict[str, Any]] = [
    {"whatsApp": "+86 139 1234 5678", "friendName": "周杰", "sex": "male", "tabName": "VIP"},
    {"whatsApp": "6281234567890", "friend_name": "Siti Rahma", "birthday": "1990/05/17"},
]


async def _dry_run_import(context: TourContext) -> object:
    return await import_customer(
        context.services, vendor="socialepoch", customers=_SAMPLE_CUSTOMERS, dry_run=True
    )


async def _bad_import(context: TourContext) -> object:
    bad = [
        {"whatsApp": "12345", "friendName": "too short a number"},
        {"friendName": "no number at all", "sex": "robot"},
    ]
    return await import_customer(context.services, vendor="socialepoch", customers=bad)


async def _socialepoch_import(context: TourContext) -> object:
    return await import_customer(
        context.services, vendor="socialepoch", customers=_SAMPLE_CUSTOMERS
    )


async def _xiaolanben_import(context: TourContext) -> object:
    companies: list[dict[str, Any]] = [
        {
            "customerName": "云帆软件",
            "entName": "深圳云帆软件有限公司",
            "contacts": [
                {"thirdDataId": "c-1", "name": "刘洋", "phone": "13700001111", "gender": "男"}
            ],
        },
        {"customer_name": "海川贸易", "tag": "展会线索"},
    ]
    return await import_customer(context.services, vendor="xiaolanben", customers=companies)


async def _bulk_import(context: TourContext) -> object:
    with as_file(files("tools").joinpath(SAMPLE_CSV)) as source:
        report = await bulk_import(
            context.services,
            source=source,
            vendor="socialepoch",
            store=context.store,
            actor=Actor("cli", "tour"),
        )
    return {"source": SAMPLE_CSV} | report.model_dump(
        include={
            "status",
            "rows_read",
            "valid",
            "rejected",
            "confirmed",
            "created",
            "updated",
            "failed",
            "requests",
            "problems",
        }
    )


async def _new_ticket(context: TourContext) -> object:
    return await create_ticket(
        context.services,
        subject="打印机无法连接 Wi-Fi",
        message="客户反馈:办公室打印机昨天起无法连接无线网络,请尽快处理。",
    )


async def _recent_tickets(context: TourContext) -> object:
    return await list_tickets(context.services, created_order="desc", limit=3)
