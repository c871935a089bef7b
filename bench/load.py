"""Load test (issue 7): many MCP sessions at once, and Slack commands during a bulk import.

    .venv/bin/python bench/load.py                  # 50 sessions for 30 s, then 20 Slack users
    .venv/bin/python bench/load.py --seconds 5      # a quicker look

Everything runs on loopback in this process: the three vendor simulators (seeded), the MCP
server over streamable HTTP (bearer token), the Slack bot over HTTP with a fake Slack.

1. MCP: `--sessions` (50) clients each open their own MCP session and call tools in a loop
   for `--seconds` (30): list_staff (Xiaolanben), query_customer (SocialEpoch), list_tickets
   (Bangwo8), lookup_error_code (local), and every tenth call an import_customer into
   Xiaolanben. Every vendor call goes through crmops's per-API rate limiter (at the
   vendors' limits times CRMOPS_RATE_HEADROOM), so under this load latency is queueing.
2. Slack: a bulk import of `--rows` (3,000) Xiaolanben customers (300 calls of 10, paced at
   10/s: about 30 s) runs in the bot's event loop while `--users` (20) users each send a
   signed `/crm` command (help, error, staff, customer, ticket) every `--pace` seconds (1;
   0: back to back), so 20 commands are in flight together, until the import ends. Each
   ack (the HTTP answer Slack waits for, at most 3 s) is timed, and every answer posted to
   a response_url is counted.

Printed: calls, errors, p50/p95/p99/max latency per tool and over all, acks over 3 s.
Loops are bounded by time and count, every wait by a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import hashlib
import hmac
import logging
import os
import socket
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import httpx2
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from pydantic import SecretStr

from bots.app import build_app
from bots.fake_slack import FakeSlack
from bots.serving import EVENTS_PATH
from bots.serving import build_http_app as build_slack_app
from bots.settings import AccessSettings, SlackSettings
from server.http_app import build_http_app
from server.mcp_server import build_server
from tools.bulk import bulk_import
from tools.sandbox.simulation import start_server
from tools.sandbox.stack import serve_sandbox
from tools.services import Services
from tools.storage.audit import Actor
from tools.storage.store import sqlite_store

TOKEN = "load-test-token-7d1c4e9a2b6f8d3c5a1e"  # noqa: S105 - a throwaway token for this run only
SIGNING_SECRET = "load-test-signing-secret"  # noqa: S105
BOT_TOKEN = "xoxb-load-test"  # noqa: S105
APP_TOKEN = "xapp-load-test"  # noqa: S105
ACK_LIMIT = 3.0
CALL_TIMEOUT = 60.0


@dataclass
class Timings:
    """Latencies (seconds) per operation, and the errors seen."""

    seconds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    examples: list[str] = field(default_factory=list)

    async def time(self, name: str, call: Callable[[], Awaitable[bool]]) -> None:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                ok = await call()
        except Exception as exc:  # a load test counts every failure, whatever it is
            ok = False
            if len(self.examples) < 5:
                self.examples.append(f"{name}: {type(exc).__name__}: {exc}"[:300])
        self.seconds[name].append(time.perf_counter() - started)
        if not ok:
            self.errors[name] += 1

    def report(self, title: str) -> None:
        print(f"\n{title}")
        print(
            f"  {'operation':<22}{'calls':>7}{'errors':>8}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}"
        )
        everything = [s for values in self.seconds.values() for s in values]
        for name, values in [*sorted(self.seconds.items()), ("all", everything)]:
            errors = sum(self.errors.values()) if name == "all" else self.errors[name]
            p50, p95, p99 = _percentiles(values)
            print(
                f"  {name:<22}{len(values):>7}{errors:>8}"
                f"{p50:>8.3f}s{p95:>8.3f}s{p99:>8.3f}s{max(values, default=0):>8.3f}s"
            )
        for example in self.examples:
            print(f"  error: {example}")


def _percentiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        only = values[0] if values else 0.0
        return only, only, only
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[94], cuts[98]


# --- 1. MCP sessions ----------------------------------------------------------------------


async def mcp_load(url: str, sessions: int, seconds: float, numbers: list[str]) -> Timings:
    timings = Timings()
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(_session(url, n, deadline, numbers, timings) for n in range(sessions)))
    return timings


async def _session(
    url: str, number: int, deadline: float, numbers: list[str], timings: Timings
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    calls: list[tuple[str, dict[str, Any]]] = [
        ("list_staff", {"limit": 5}),
        ("query_customer", {"whatsapp": numbers[number % len(numbers)]}),
        ("list_tickets", {"per_page": 5}),
        ("lookup_error_code", {"code": "401"}),
    ]
    async with (
        httpx2.AsyncClient(headers=headers, timeout=CALL_TIMEOUT) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client,
    ):
        count = 0
        while time.monotonic() < deadline:
            count += 1
            if count % 10 == 0:
                name = "import_customer"
                arguments: dict[str, Any] = {
                    "vendor": "xiaolanben",
                    "customers": [{"customerName": f"负载{number}-{count}"}],
                }
            else:
                name, arguments = calls[count % len(calls)]

            async def call(name: str = name, arguments: dict[str, Any] = arguments) -> bool:
                result = await client.call_tool(name, arguments)
                return not result.is_error

            await timings.time(name, call)


# --- 2. Slack during a bulk import ---------------------------------------------------------


def _signed(body: str) -> dict[str, str]:
    ts = str(int(time.time()))
    digest = hmac.new(SIGNING_SECRET.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256)
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest.hexdigest()}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


@contextlib.asynccontextmanager
async def _bot(fake: FakeSlack, services: Services, folder: Path) -> AsyncIterator[str]:
    slack = SlackSettings(
        bot_token=SecretStr(BOT_TOKEN),
        signing_secret=SecretStr(SIGNING_SECRET),
        api_url=fake.api_url,
    )
    bolt = build_app(
        slack,
        services,
        access=AccessSettings(write_users=frozenset({"U0LOAD"})),
        workdir=folder / "files",
    )
    # IPPROTO_TCP, as `crmops slack` binds (uvicorn, by host and port): asyncio turns Nagle off
    # only on sockets of that protocol, and with Nagle on every answer with a body waits 40 ms
    # for the client's delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    app = build_slack_app(bolt, settings=slack)
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    async with asyncio.timeout(10):
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no event for it
            await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}{EVENTS_PATH}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def _settled_posts(fake: FakeSlack, within: float = 15.0) -> int:
    """The response_url posts, once no new one came for a second (at most `within` s)."""
    deadline = time.monotonic() + within
    count = -1
    while time.monotonic() < deadline:
        now = sum(len(p) for p in fake.hook_posts.values())
        if now == count:
            break
        count = now
        await asyncio.sleep(1.0)
    return count


async def slack_load(  # noqa: PLR0917 - the run's knobs
    settings: Any, fake: FakeSlack, users: int, rows: int, numbers: list[str], pace: float
) -> tuple[Timings, int, int, str]:
    timings = Timings()
    with tempfile.TemporaryDirectory(prefix="crmops-load-") as name:
        folder = Path(name)
        source = folder / "customers.csv"
        with source.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["客户名称", "联系人", "手机号"])
            writer.writerows([f"负载客户{n}", f"联系人{n}", f"139{n:08d}"] for n in range(rows))
        async with (
            sqlite_store(folder / "bot.db") as bot_store,
            Services(settings, store=bot_store) as services,
            sqlite_store(folder / "journal.db") as journal,
            _bot(fake, services, folder) as url,
            httpx.AsyncClient(timeout=CALL_TIMEOUT) as http,
        ):
            importing = asyncio.create_task(
                bulk_import(
                    services,
                    source=source,
                    vendor="xiaolanben",
                    store=journal,
                    actor=Actor("slack", "load"),
                )
            )
            texts = ["help", "error 401 xiaolanben", "staff 王", f"customer {numbers[0]}",
                     'ticket "负载" "测试"']  # fmt: skip
            await asyncio.gather(
                *(_user(http, url, fake, n, texts, importing, timings, pace) for n in range(users))
            )
            report = await asyncio.wait_for(importing, 600)
            posts = await _settled_posts(fake)
        commands = sum(len(v) for v in timings.seconds.values())
        summary = (
            f"bulk import ({report.vendor}): {report.confirmed}/{report.rows_read} rows "
            f"confirmed in {report.seconds:.1f} s, {report.requests} calls"
        )
        return timings, commands, posts, summary


async def _user(  # noqa: PLR0917 - one user's loop and what it shares
    http: httpx.AsyncClient,
    url: str,
    fake: FakeSlack,
    number: int,
    texts: list[str],
    importing: asyncio.Task[Any],
    timings: Timings,
    pace: float,
) -> None:
    count = 0
    while not importing.done() and count < 10_000:
        count += 1
        started = time.monotonic()
        text = texts[(number + count) % len(texts)]
        body = urlencode(
            {
                "command": "/crm",
                "text": text,
                "team_id": "T0LOAD",
                "user_id": "U0LOAD",
                "channel_id": "C0LOAD",
                "response_url": fake.hook_url(f"u{number}-{count}"),
                "trigger_id": f"trigger-{number}-{count}-{time.monotonic_ns()}",
            }
        )

        async def ack(body: str = body) -> bool:
            response = await http.post(url, content=body, headers=_signed(body))
            return response.status_code == 200

        await timings.time(f"/crm {text.split()[0]}", ack)
        await asyncio.sleep(max(0.0, pace - (time.monotonic() - started)))


# --- running it -------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> None:
    os.environ.pop("SLACK_BOT_TOKEN", None)
    print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    sandbox = serve_sandbox(seed=True)
    try:
        settings = sandbox.settings()
        settings.crmops.mcp_token = SecretStr(TOKEN)
        numbers = list(sandbox.socialepoch.customers)
        server = build_server(settings)
        app = build_http_app(server, token=settings.crmops.mcp_token, host="127.0.0.1")
        # The MCP server and httpx log every call at INFO: thousands of lines here.
        logging.getLogger().setLevel(logging.WARNING)
        logging.getLogger("httpx").setLevel(logging.WARNING)
        served = start_server(app, lifespan="on")
        try:
            mcp = await mcp_load(served.url, args.sessions, args.seconds, numbers)
        finally:
            served.stop()
        mcp.report(f"1. MCP over HTTP: {args.sessions} sessions for {args.seconds:.0f} s")

        fake = FakeSlack(bot_token=BOT_TOKEN, app_token=APP_TOKEN)
        fake_served = start_server(fake.app)
        fake.url = fake_served.url
        try:
            slack, commands, posts, summary = await slack_load(
                settings, fake, args.users, args.rows, numbers, args.pace
            )
        finally:
            fake_served.stop()
        every = f"one each {args.pace:g} s" if args.pace else "back to back"
        slack.report(f"2. Slack: {args.users} users sending /crm ({every}) during a bulk import")
        late = sum(s > ACK_LIMIT for values in slack.seconds.values() for s in values)
        slow = sum(s > 1.0 for values in slack.seconds.values() for s in values)
        print(
            f"  acks over {ACK_LIMIT:.0f} s: {late} of {commands}, over 1 s: {slow}; "
            f"response_url posts: {posts}"
        )
        print(f"  {summary}")
    finally:
        sandbox.stop()
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument(
        "--pace", type=float, default=1.0, help="seconds between one user's commands (0: none)"
    )
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(_arguments()))
