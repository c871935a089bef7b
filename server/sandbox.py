"""`crmops sandbox`: every crmops feature against the bundled vendor simulators, no account needed.

    crmops sandbox            # simulators, MCP over HTTP and the Slack bot (with a fake
                              # Slack) on loopback; prints URLs, token, signing secret, env
    crmops sandbox --tour     # a scripted walk through every tool, then exit 0
    crmops sandbox --env      # `export` lines pointing `crmops mcp` at the running sandbox

The running sandbox writes its environment to `sandbox.json` in the crmops data directory
(removed when it stops), which is where `--env` reads it from. Nothing else of the user's is
touched: the tour and the sandbox's MCP server journal and audit into a throwaway database
removed when they stop, and ignore the user's `CRMOPS_*` settings (`CRMOPS_DB`, Redis,
PostgreSQL; `tools.sandbox.self_contained_crmops`).

The Slack side runs in a child process, `crmops slack --sandbox` (`server/` never imports
`bots/`; the `slack` command reaches the CLI through the `crmops.commands` entry points). The
child announces its URLs with one stdout line (`tools.sandbox.SlackSandboxUrls`), is stopped
with the sandbox, and stops by itself when the sandbox process dies (its stdin closes).
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.resources import as_file, files
from pathlib import Path
from types import FrameType
from typing import IO, Any

import anyio
from pydantic import BaseModel, SecretStr
from rich.console import Console
from rich.rule import Rule
from rich.table import Table

from server.http_app import MCP_PATH, build_http_app
from server.mcp_server import build_server
from tools.bulk import bulk_import
from tools.customers import import_customer, query_customer
from tools.errors import ConfigurationError, CrmopsError, InputError, Problem
from tools.lookup import lookup_error_code, render_text
from tools.sandbox.simulation import ServedApp, start_server
from tools.sandbox.stack import (
    Sandbox,
    SandboxPortError,
    SlackSandboxUrls,
    self_contained_crmops,
    start_sandbox,
    throwaway_database,
)
from tools.services import Services
from tools.settings import Settings
from tools.staff import list_staff
from tools.storage.audit import Actor
from tools.storage.configured import data_dir
from tools.storage.store import Store, sqlite_store
from tools.tickets import create_ticket, list_tickets

DEFAULT_SIMULATOR_PORTS = (8701, 8702, 8703)
DEFAULT_MCP_PORT = 8700
DEFAULT_SLACK_PORTS = (8704, 8705)
"""The Slack endpoint (`POST /slack/events`) and the fake Slack Web API."""
STATE_FILE = "sandbox.json"
SLACK_START_TIMEOUT = 30.0
SLACK_STOP_TIMEOUT = 10.0
_SETTINGS_PREFIXES = ("SOCIALEPOCH_", "XIAOLANBEN_", "BANGWO8_", "SLACK_", "CRMOPS_")
SAMPLE_CSV = "samples/customers.csv"
"""Package data of `tools`: customers with Chinese headers, three rows of them bad."""


def state_path() -> Path:
    """Where a running sandbox leaves its environment for `crmops sandbox --env`."""
    return data_dir() / STATE_FILE


# --- the Slack side, in a child process --------------------------------------------------


class SlackStartError(CrmopsError):
    """`crmops slack --sandbox` did not come up; its own message is on stderr."""


@dataclass
class SlackProcess:
    """`crmops slack --sandbox` running as a child, and where it listens."""

    process: subprocess.Popen[bytes]
    urls: SlackSandboxUrls

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `SLACK_STOP_TIMEOUT`."""
        _end(self.process)


def start_slack(env: dict[str, str], *, host: str, ports: tuple[int, int] = (0, 0)) -> SlackProcess:
    """Start the bot and the fake Slack (`ports`: endpoint, fake Slack; 0 any free port)."""
    command = [
        sys.executable,
        "-m",
        "server",
        "slack",
        "--sandbox",
        "--host",
        host,
        "--port",
        str(ports[0]),
        "--fake-slack-port",
        str(ports[1]),
    ]
    # The user's own settings (a real workspace, Redis, vendors) stay out of the sandbox.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(_SETTINGS_PREFIXES)}
    # stdin stays a pipe the child reads until EOF: if this process dies, so does the child.
    process = subprocess.Popen(  # noqa: S603 - our own interpreter, arguments we built
        command, env={**inherited, **env}, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        urls = _announced_urls(process)
    except BaseException:
        _end(process)
        raise
    return SlackProcess(process=process, urls=urls)


def _announced_urls(process: subprocess.Popen[bytes]) -> SlackSandboxUrls:
    assert process.stdout is not None  # noqa: S101 - Popen(stdout=PIPE)
    lines: queue.Queue[bytes] = queue.Queue()
    reader = threading.Thread(
        target=_read_lines, args=(process.stdout, lines), daemon=True, name="slack-stdout"
    )
    reader.start()
    deadline = time.monotonic() + SLACK_START_TIMEOUT
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if not line:
            raise SlackStartError(f"the Slack bot exited with status {process.wait()}")
        urls = SlackSandboxUrls.parse(line.decode(errors="replace").strip())
        if urls is not None:
            return urls
    raise SlackStartError(f"the Slack bot did not start within {SLACK_START_TIMEOUT:.0f} s")


def _read_lines(stream: IO[bytes], lines: queue.Queue[bytes]) -> None:
    for line in iter(stream.readline, b""):
        lines.put(line)
    lines.put(b"")


def _end(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(SLACK_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(SLACK_STOP_TIMEOUT)
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            stream.close()


# --- crmops sandbox ----------------------------------------------------------------------


@dataclass
class RunningSandbox:
    """The simulators, the MCP server and the Slack bot, served on loopback."""

    sandbox: Sandbox
    mcp: ServedApp
    token: str
    slack: SlackProcess
    slack_bot_token: str
    signing_secret: str

    @property
    def mcp_url(self) -> str:
        return self.mcp.url + MCP_PATH

    def env(self) -> dict[str, str]:
        """What a client needs: the vendors' sandbox settings, the MCP token, the Slack side."""
        return {
            **self.sandbox.env(),
            "CRMOPS_MCP_TOKEN": self.token,
            "SLACK_API_URL": self.slack.urls.fake_api_url,
            "SLACK_BOT_TOKEN": self.slack_bot_token,
            "SLACK_SIGNING_SECRET": self.signing_secret,
        }


@contextmanager
def run_sandbox(
    *,
    host: str = "127.0.0.1",
    mcp_port: int = DEFAULT_MCP_PORT,
    simulator_ports: tuple[int, int, int] = DEFAULT_SIMULATOR_PORTS,
    slack_ports: tuple[int, int] = DEFAULT_SLACK_PORTS,
) -> Iterator[RunningSandbox]:
    """Serve the seeded simulators, the MCP server (HTTP, fresh bearer token) and the bot."""
    token = secrets.token_urlsafe(24)
    bot_token = "xoxb-sandbox-" + secrets.token_hex(12)
    signing_secret = secrets.token_hex(16)
    with (
        start_sandbox(host=host, ports=simulator_ports) as sandbox,
        throwaway_database() as database,
    ):
        slack = start_slack(
            {
                **sandbox.env(),
                "SLACK_BOT_TOKEN": bot_token,
                "SLACK_SIGNING_SECRET": signing_secret,
                # In the sandbox anyone may try the writes (`/crm ticket`).
                "CRMOPS_SLACK_WRITE_USERS": "*",
            },
            host=host,
            ports=slack_ports,
        )
        try:
            # The MCP server journals into the throwaway database (closed with the server,
            # before the folder goes) and shares nothing with the user's Redis or PostgreSQL.
            crmops = self_contained_crmops(mcp_token=SecretStr(token), db=database)
            settings = sandbox.settings(crmops)
            server = build_server(settings)
            http_app = build_http_app(server, token=settings.crmops.mcp_token, host=host)
            try:
                mcp = start_server(http_app, host=host, port=mcp_port, lifespan="on")
            except OSError as exc:
                raise SandboxPortError(f"MCP server on {host}:{mcp_port}", exc) from exc
            try:
                yield RunningSandbox(sandbox, mcp, token, slack, bot_token, signing_secret)
            finally:
                mcp.stop()
        finally:
            slack.stop()


def serve_until_stopped(console: Console, **options: Any) -> None:
    """Run the sandbox until Ctrl-C or SIGTERM, printing how to reach it."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    with run_sandbox(**options) as running:
        path = state_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {"pid": os.getpid(), "env": running.env()}
        path.write_text(json.dumps(state, indent=2), encoding="utf-8")
        path.chmod(0o600)
        try:
            _print_welcome(console, running)
            while not stop.wait(0.5):
                if running.slack.process.poll() is not None:
                    console.print("the Slack bot stopped unexpectedly; stopping the sandbox")
                    break
        except KeyboardInterrupt:
            pass
        finally:
            path.unlink(missing_ok=True)
    console.print("sandbox stopped")


def parse_ports(text: str) -> tuple[int, int, int]:
    """`8701,8702,8703` → the three simulator ports; `InputError` when malformed."""
    first, second, third = _ports(text, 3, "--simulator-ports")
    return first, second, third


def parse_slack_ports(text: str) -> tuple[int, int]:
    """`8704,8705` → the Slack endpoint's and the fake Slack's ports."""
    endpoint, fake = _ports(text, 2, "--slack-ports")
    return endpoint, fake


def _ports(text: str, count: int, option: str) -> list[int]:
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != count or not all(part.isdigit() and int(part) <= 65535 for part in parts):
        example = ",".join(str(8701 + n) for n in range(count))
        raise InputError([Problem(option, f"{text!r}: give {count} ports, e.g. {example}")])
    return [int(part) for part in parts]


def _print_welcome(console: Console, running: RunningSandbox) -> None:
    sandbox, slack = running.sandbox, running.slack.urls
    console.print(Rule("crmops sandbox"))
    table = Table.grid(padding=(0, 2))
    for label, value in (
        ("MCP (streamable HTTP)", running.mcp_url),
        ("  bearer token", running.token),
        ("Slack endpoint", slack.events_url),
        ("  signing secret", running.signing_secret),
        ("fake Slack Web API", slack.fake_api_url),
        ("  bot replies", slack.hook_url("NAME") + "  (a response_url: GET it to read them)"),
        ("SocialEpoch simulator", sandbox.socialepoch_url),
        ("Xiaolanben simulator", sandbox.xiaolanben_url),
        ("Bangwo8 simulator", sandbox.bangwo8_url),
    ):
        table.add_row(label, value)
    console.print(table, highlight=False)
    console.print("\nEnvironment for `crmops mcp`, `crmops doctor`, ... against this sandbox:")
    console.print(export_lines(running.env()), highlight=False, markup=False)
    console.print(
        "\nSlack: POST a slash command (`command=/crm&text=staff&response_url=...`) to the "
        "endpoint, signed as Slack signs (X-Slack-Signature: v0=HMAC-SHA256 of "
        "v0:{timestamp}:{body} with the signing secret).",
        highlight=False,
        markup=False,
    )
    console.print("\n(also printed by `crmops sandbox --env`; Ctrl-C stops the sandbox)")


def export_lines(env: dict[str, str]) -> str:
    """`export NAME='value'` lines for a POSIX shell."""
    return "\n".join(f"export {name}={_shell_quote(value)}" for name, value in env.items())


def _shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


def read_running_env() -> dict[str, str]:
    """The environment a running sandbox left; `ConfigurationError` if none is running."""
    path = state_path()
    start = "start one with `crmops sandbox` in another terminal"
    if not path.exists():
        raise ConfigurationError(vendor="sandbox", detail=f"no sandbox is running: {start}")
    state = json.loads(path.read_text(encoding="utf-8"))
    if not _alive(int(state["pid"])):
        # Killed without clean-up (kill -9): its ports are gone, the file is stale.
        path.unlink(missing_ok=True)
        raise ConfigurationError(vendor="sandbox", detail=f"the sandbox was killed: {start}")
    env: dict[str, str] = state["env"]
    return env


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


# --- crmops sandbox --tour ---------------------------------------------------------------


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
        TourStop("lookup_error_code", "what SocialEpoch error 502 means", _explain_502, errors),
        TourStop(
            "lookup_error_code",
            "finding a code by its message text",
            _explain_by_text,
            'crmops errors "请求不允许重复执行"',
        ),
        TourStop(
            "list_staff",
            "a wrong signing key: the vendor refuses, crmops explains",
            _wrong_key,
            "crmops doctor  (checks every configured vendor like this)",
            fails_on_purpose=True,
        ),
        TourStop("list_staff", "Xiaolanben staff (the first five)", _first_staff, staff),
        TourStop("list_staff", "searching staff by name", _search_staff, staff),
        TourStop(
            "query_customer",
            "a SocialEpoch customer by WhatsApp number",
            _query,
            "crmops customer 8613800138000  ·  Slack: /crm customer 8613800138000",
        ),
        TourStop(
            "import_customer",
            "a dry run: what would be sent",
            _dry_run_import,
            "MCP tool import_customer with dry_run=true",
        ),
        TourStop(
            "import_customer",
            "bad records are refused before anything is sent",
            _bad_import,
            "MCP tool import_customer",
            fails_on_purpose=True,
        ),
        TourStop(
            "import_customer",
            "importing into SocialEpoch",
            _socialepoch_import,
            "MCP tool import_customer",
        ),
        TourStop(
            "import_customer",
            "importing companies into Xiaolanben",
            _xiaolanben_import,
            "MCP tool import_customer",
        ),
        TourStop(
            "bulk import",
            "a CSV file with Chinese headers and three bad rows (the bundled sample)",
            _bulk_import,
            "crmops import customers.csv --vendor socialepoch  ·  Slack: /crm import",
        ),
        TourStop(
            "create_ticket",
            "a Bangwo8 ticket",
            _new_ticket,
            'crmops ticket "subject" -m "message"  ·  Slack: /crm ticket "subject" "message"',
        ),
        TourStop(
            "list_tickets",
            "the newest Bangwo8 tickets",
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
        "The crmops tour: every tool, called against the bundled simulators of SocialEpoch, "
        "Xiaolanben and Bangwo8 (no account needed). Each step says how to try it yourself.",
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
        "every tool answered as expected" if not unexpected else f"{unexpected} step(s) failed"
    )
    console.print(Rule(f"tour done: {verdict}"))
    if not unexpected:
        console.print(
            "Next: `crmops sandbox` serves all of this to an MCP client and to Slack; "
            "`crmops doctor` checks your own vendor settings.",
            highlight=False,
        )
    return 0 if not unexpected else 1


async def _visit(console: Console, number: int, stop: TourStop, context: TourContext) -> bool:
    """Run one stop and print what it returned; True when it went as planned."""
    console.print()
    console.print(Rule(f"{number}. {stop.tool}: {stop.shows}", align="left"), highlight=False)
    if stop.try_it:
        console.print(f"try it: {stop.try_it}", style="dim", highlight=False, markup=False)
    try:
        result = await stop.call(context)
    except CrmopsError as exc:
        label = "refused, as expected:" if stop.fails_on_purpose else "FAILED:"
        console.print(label, style="bold", highlight=False)
        console.print(str(exc), highlight=False, markup=False)
        return stop.fails_on_purpose
    render(console, result)
    if stop.fails_on_purpose:
        console.print("FAILED: this step should have been refused", style="bold")
    return not stop.fails_on_purpose


# --- showing results ---------------------------------------------------------------------

_WIDEST_TABLE = 7  # columns; a record with more fields is shown as name: value lines
_SHOWN_ITEMS = 10


def render(console: Console, result: object) -> None:
    """Print a tool's result for a person: text as is, records as tables."""
    if isinstance(result, str):
        console.print(result, highlight=False, markup=False)
        return
    data = (
        result.model_dump(mode="json", exclude_none=True)
        if isinstance(result, BaseModel)
        else result
    )
    if isinstance(data, dict):
        _render_mapping(console, data)
    else:
        console.print(repr(data), markup=False)


def _render_mapping(console: Console, data: dict[str, Any]) -> None:
    data = _filled(data)
    scalars = {key: value for key, value in data.items() if not isinstance(value, list | dict)}
    if scalars:
        console.print(_pairs(scalars), highlight=False)
    for key, value in data.items():
        if isinstance(value, dict) and value:
            console.print(f"{key}:", highlight=False)
            console.print(_pairs(value), highlight=False)
        elif isinstance(value, list):
            _render_list(console, key, value)


def _render_list(console: Console, name: str, items: list[Any]) -> None:
    if not items:
        console.print(f"{name}: none", highlight=False)
        return
    if not all(isinstance(item, dict) for item in items):
        console.print(f"{name}: {', '.join(map(_cell, items))}", highlight=False, markup=False)
        return
    shown = [_filled(item) for item in items[:_SHOWN_ITEMS]]
    more = f" (first {_SHOWN_ITEMS} of {len(items)})" if len(items) > _SHOWN_ITEMS else ""
    columns = list(dict.fromkeys(key for item in shown for key in item))
    if len(columns) > _WIDEST_TABLE:
        console.print(f"{name}{more}:", highlight=False)
        for item in shown:
            console.print(_pairs(item), highlight=False)
            console.print()
        return
    table = Table(title=f"{name}{more}", title_justify="left", highlight=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for item in shown:
        table.add_row(*(_cell(item.get(column, "")) for column in columns))
    console.print(table)


def _filled(data: dict[str, Any]) -> dict[str, Any]:
    """`data` without its empty values ("", [], {}): nothing to read there."""
    return {key: value for key, value in data.items() if value not in ("", [], {})}


def _pairs(data: dict[str, Any]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column(overflow="fold")
    for key, value in data.items():
        grid.add_row(key, _cell(value))
    return grid


def _cell(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


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
