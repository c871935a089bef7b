"""Bulk-import fixtures: the simulators behind a request recorder, a journal, input files.

`store` is the journal and audit log on each backend in turn: every test that uses it runs
against SQLite and against PostgreSQL (tests/storage/stores.py).
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.storage.postgres_server import postgres_server
from tests.storage.stores import open_store_again, store
from tools.sandbox.simulation import start_server
from tools.sandbox.stack import Sandbox, build_simulators
from tools.services import Services
from tools.settings import Settings
from tools.storage.audit import Actor
from tools.transport import RetryPolicy

ACTOR = Actor("library", "pytest")

# The session's PostgreSQL and the store fixtures on both backends.
__all__ = ["open_store_again", "postgres_server", "store"]


class RecordRecorder:
    """ASGI middleware in front of a simulator: counts each customer key it is sent.

    SocialEpoch bodies carry `{"data": [{"whatsApp"}]}`, Xiaolanben batches a list of
    customers keyed by entName, else customerName. `received` counts since the last `reset`.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.received: Counter[str] = Counter()

    def reset(self) -> None:
        self.received = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or "import" not in scope.get("path", ""):
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        body = b""
        while True:
            message = await receive()
            messages.append(message)
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.received.update(_keys(json.loads(body or b"null")))

        async def replay() -> Message:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        await self.app(scope, replay, send)


def _keys(body: Any) -> list[str]:
    records = body.get("data", []) if isinstance(body, dict) else body
    return [
        str(r.get("whatsApp") or r.get("entName") or r.get("customerName"))
        for r in records or []
        if isinstance(r, dict)
    ]


class Recorded(Sandbox):
    """The sandbox, with a recorder in front of each import API."""

    recorders: dict[str, RecordRecorder]


@pytest.fixture
def sandbox() -> Iterator[Recorded]:
    socialepoch, xiaolanben, bangwo8 = build_simulators(seed=False)
    recorders = {
        "socialepoch": RecordRecorder(socialepoch.app),
        "xiaolanben": RecordRecorder(xiaolanben.app),
    }
    served = [
        start_server(recorders["socialepoch"]),
        start_server(recorders["xiaolanben"]),
        start_server(bangwo8.app),
    ]
    running = Recorded(
        socialepoch=socialepoch,
        xiaolanben=xiaolanben,
        bangwo8=bangwo8,
        socialepoch_url=served[0].url,
        xiaolanben_url=served[1].url,
        bangwo8_url=served[2].url,
        served=served,
    )
    running.recorders = recorders
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def settings(sandbox: Recorded) -> Settings:
    """Sandbox settings; Xiaolanben at 50 req/s like SocialEpoch (003 names no limit)."""
    settings = sandbox.settings()
    settings.xiaolanben.rate_limit = 50
    return settings


@pytest.fixture
async def services(settings: Settings, no_wait_retry: RetryPolicy) -> AsyncIterator[Services]:
    async with Services(settings, retry=no_wait_retry) as services:
        yield services


def write_csv(
    path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]], encoding: str = "utf-8"
) -> Path:
    with path.open("w", newline="", encoding=encoding) as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def xiaolanben_rows(count: int, start: int = 0) -> list[list[str]]:
    """`count` companies with one contact each, for the header XLB_HEADER."""
    return [
        [f"客户{n}", f"上海第{n}科技有限公司", f"联系人{n}", f"139{n:08d}"]
        for n in range(start, start + count)
    ]


XLB_HEADER = ["客户名称", "企业名称", "联系人", "手机号"]


def socialepoch_rows(count: int, start: int = 0) -> list[list[str]]:
    """`count` customers for the header SE_HEADER."""
    return [[f"86138{n:08d}", f"客户{n}", "女"] for n in range(start, start + count)]


SE_HEADER = ["手机号", "姓名", "性别"]
