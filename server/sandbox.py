"""`crmops sandbox`: every crmops feature against the bundled vendor simulators, no account needed.

    crmops sandbox            # simulators + MCP over HTTP on loopback; prints URLs, token, env
    crmops sandbox --tour     # a scripted walk through every tool, then exit 0
    crmops sandbox --env      # `export` lines pointing `crmops mcp` at the running sandbox

The running sandbox writes its environment to `sandbox.json` in the crmops data directory
(removed when it stops), which is where `--env` reads it from.
"""

from __future__ import annotations

import json
import secrets
import signal
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import anyio
from pydantic import BaseModel, SecretStr
from rich.console import Console
from rich.rule import Rule

from server.http_app import MCP_PATH, build_http_app
from server.mcp_server import build_server
from tools.bulk.store import data_dir
from tools.customers import import_customer, query_customer
from tools.errors import ConfigurationError, CrmopsError, InputError, Problem
from tools.lookup import lookup_error_code, render_text
from tools.sandbox import Sandbox, start_sandbox
from tools.services import Services
from tools.settings import CrmopsSettings
from tools.simulation import ServedApp, start_server
from tools.staff import list_staff
from tools.tickets import create_ticket, list_tickets

DEFAULT_SIMULATOR_PORTS = (8701, 8702, 8703)
DEFAULT_MCP_PORT = 8700
STATE_FILE = "sandbox.json"


def state_path() -> Path:
    """Where a running sandbox leaves its environment for `crmops sandbox --env`."""
    return data_dir() / STATE_FILE


# --- crmops sandbox ----------------------------------------------------------------------


@dataclass
class RunningSandbox:
    """The simulators and the MCP server, served on loopback."""

    sandbox: Sandbox
    mcp: ServedApp
    token: str

    @property
    def mcp_url(self) -> str:
        return self.mcp.url + MCP_PATH

    def env(self) -> dict[str, str]:
        """What a client needs: the vendors' sandbox settings and the MCP bearer token."""
        return {**self.sandbox.env(), "CRMOPS_MCP_TOKEN": self.token}

    def stop(self) -> None:
        self.mcp.stop()
        self.sandbox.stop()


@contextmanager
def run_sandbox(
    *,
    host: str = "127.0.0.1",
    mcp_port: int = DEFAULT_MCP_PORT,
    simulator_ports: tuple[int, int, int] = DEFAULT_SIMULATOR_PORTS,
) -> Iterator[RunningSandbox]:
    """Serve the seeded simulators and the MCP server (HTTP, fresh bearer token)."""
    token = secrets.token_urlsafe(24)
    with start_sandbox(host=host, ports=simulator_ports) as sandbox:
        settings = sandbox.settings(CrmopsSettings(mcp_token=SecretStr(token)))
        server = build_server(settings)
        http_app = build_http_app(server, token=settings.crmops.mcp_token, host=host)
        mcp = start_server(http_app, host=host, port=mcp_port, lifespan="on")
        running = RunningSandbox(sandbox=sandbox, mcp=mcp, token=token)
        try:
            yield running
        finally:
            mcp.stop()


def serve_until_stopped(console: Console, **options: Any) -> None:
    """Run the sandbox until Ctrl-C or SIGTERM, printing how to reach it."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    with run_sandbox(**options) as running:
        path = state_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(running.env(), indent=2), encoding="utf-8")
        path.chmod(0o600)
        try:
            _print_welcome(console, running)
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            path.unlink(missing_ok=True)
    console.print("sandbox stopped")


def parse_ports(text: str) -> tuple[int, int, int]:
    """`8701,8702,8703` → the three simulator ports; `InputError` when malformed."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != 3 or not all(part.isdigit() and int(part) <= 65535 for part in parts):
        raise InputError(
            [Problem("--simulator-ports", f"{text!r}: give three ports, e.g. 8701,8702,8703")]
        )
    first, second, third = (int(part) for part in parts)
    return first, second, third


def _print_welcome(console: Console, running: RunningSandbox) -> None:
    sandbox = running.sandbox
    console.print(Rule("crmops sandbox"))
    console.print(f"MCP (streamable HTTP)  {running.mcp_url}")
    console.print(f"  bearer token         {running.token}")
    console.print(f"SocialEpoch simulator  {sandbox.socialepoch_url}")
    console.print(f"Xiaolanben simulator   {sandbox.xiaolanben_url}")
    console.print(f"Bangwo8 simulator      {sandbox.bangwo8_url}")
    console.print("\nEnvironment for `crmops mcp` / `crmops errors` against this sandbox:")
    console.print(export_lines(running.env()), highlight=False)
    console.print("\n(also printed by `crmops sandbox --env`; Ctrl-C stops the sandbox)")


def export_lines(env: dict[str, str]) -> str:
    """`export NAME='value'` lines for a POSIX shell."""
    return "\n".join(f"export {name}={_shell_quote(value)}" for name, value in env.items())


def _shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


def read_running_env() -> dict[str, str]:
    """The environment a running sandbox left; `ConfigurationError` if none is running."""
    path = state_path()
    if not path.exists():
        raise ConfigurationError(
            vendor="sandbox",
            detail="no sandbox is running: start one with `crmops sandbox` in another terminal",
        )
    data: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    return data


# --- crmops sandbox --tour ---------------------------------------------------------------

Step = Callable[[Services, Sandbox], Awaitable[object]]


@dataclass(frozen=True)
class TourStop:
    """One step of the tour: which tool, what it shows, and the call."""

    tool: str
    shows: str
    call: Step
    fails_on_purpose: bool = False


def tour_stops() -> list[TourStop]:
    """Every tool, in the order a new user would try them."""
    return [
        TourStop("lookup_error_code", "what SocialEpoch error 502 means", _explain_502),
        TourStop("lookup_error_code", "finding a code by its message text", _explain_by_text),
        TourStop("list_staff", "Xiaolanben staff (the first five)", _first_staff),
        TourStop("list_staff", "searching staff by name", _search_staff),
        TourStop("query_customer", "a SocialEpoch customer by WhatsApp number", _query),
        TourStop("import_customer", "a dry run: what would be sent", _dry_run_import),
        TourStop(
            "import_customer",
            "bad records are refused before anything is sent",
            _bad_import,
            fails_on_purpose=True,
        ),
        TourStop("import_customer", "importing into SocialEpoch", _socialepoch_import),
        TourStop("import_customer", "importing companies into Xiaolanben", _xiaolanben_import),
        TourStop("create_ticket", "a Bangwo8 ticket", _new_ticket),
        TourStop("list_tickets", "the newest Bangwo8 tickets", _recent_tickets),
    ]


def run_tour(console: Console) -> int:
    """Walk through every tool against a fresh sandbox; 0 when every stop went as planned."""
    with start_sandbox() as sandbox:
        return anyio.run(_tour, sandbox, console)


async def _tour(sandbox: Sandbox, console: Console) -> int:
    unexpected = 0
    async with Services(sandbox.settings()) as services:
        for number, stop in enumerate(tour_stops(), start=1):
            console.print(Rule(f"{number}. {stop.tool}: {stop.shows}", align="left"))
            try:
                result = await stop.call(services, sandbox)
            except CrmopsError as exc:
                console.print(str(exc), highlight=False)
                unexpected += 0 if stop.fails_on_purpose else 1
                continue
            _print_result(console, result)
            unexpected += 1 if stop.fails_on_purpose else 0
    verdict = (
        "every tool answered as expected" if not unexpected else f"{unexpected} step(s) failed"
    )
    console.print(Rule(f"tour done: {verdict}"))
    return 0 if not unexpected else 1


def _print_result(console: Console, result: object) -> None:
    if isinstance(result, str):
        console.print(result, highlight=False)
    elif isinstance(result, BaseModel):
        console.print_json(result.model_dump_json(exclude_none=True))
    else:
        console.print(repr(result))


async def _explain_502(services: Services, sandbox: Sandbox) -> str:
    return render_text(await lookup_error_code(code="502", vendor="socialepoch"))


async def _explain_by_text(services: Services, sandbox: Sandbox) -> str:
    return render_text(await lookup_error_code(code="请求不允许重复执行"))


async def _first_staff(services: Services, sandbox: Sandbox) -> object:
    return await list_staff(services, limit=5)


async def _search_staff(services: Services, sandbox: Sandbox) -> object:
    first = next(iter(sandbox.xiaolanben.staff.values()))
    return await list_staff(services, search=str(first["realName"])[:1], limit=5)


async def _query(services: Services, sandbox: Sandbox) -> object:
    number = next(iter(sandbox.socialepoch.customers))
    return await query_customer(services, whatsapp=number)


_SAMPLE_CUSTOMERS: list[dict[str, Any]] = [
    {"whatsApp": "+86 139 1234 5678", "friendName": "周杰", "sex": "male", "tabName": "VIP"},
    {"whatsApp": "6281234567890", "friend_name": "Siti Rahma", "birthday": "1990/05/17"},
]


async def _dry_run_import(services: Services, sandbox: Sandbox) -> object:
    return await import_customer(
        services, vendor="socialepoch", customers=_SAMPLE_CUSTOMERS, dry_run=True
    )


async def _bad_import(services: Services, sandbox: Sandbox) -> object:
    bad = [
        {"whatsApp": "12345", "friendName": "too short a number"},
        {"friendName": "no number at all", "sex": "robot"},
    ]
    return await import_customer(services, vendor="socialepoch", customers=bad)


async def _socialepoch_import(services: Services, sandbox: Sandbox) -> object:
    return await import_customer(services, vendor="socialepoch", customers=_SAMPLE_CUSTOMERS)


async def _xiaolanben_import(services: Services, sandbox: Sandbox) -> object:
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
    return await import_customer(services, vendor="xiaolanben", customers=companies)


async def _new_ticket(services: Services, sandbox: Sandbox) -> object:
    return await create_ticket(
        services,
        subject="打印机无法连接 Wi-Fi",
        message="客户反馈:办公室打印机昨天起无法连接无线网络,请尽快处理。",
    )


async def _recent_tickets(services: Services, sandbox: Sandbox) -> object:
    return await list_tickets(services, created_order="desc", limit=3)
