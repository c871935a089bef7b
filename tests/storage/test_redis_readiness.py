"""`/readyz` of both HTTP servers: 200 while Redis answers, 503 (naming no secret) when not;
`/healthz` stays 200 either way. One real `crmops mcp --http` process checks the wiring."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from starlette.types import ASGIApp

from bots.app import build_app
from bots.serving import build_http_app as slack_http_app
from bots.settings import SlackSettings
from server.http_app import build_http_app as mcp_http_app
from server.mcp_server import build_server
from tests.storage.redis_server import _free_port, start_redis
from tools.services import Services
from tools.settings import CrmopsSettings, Settings
from tools.storage.shared import ReadinessCheck, check_readiness, readiness_checks

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "mcp-token-for-readiness-tests-7e2c9a"
PASSWORD = "hunter2-readiness"


def _settings(redis_url: str) -> Settings:
    settings = Settings.load(env_file=None)
    settings.crmops = CrmopsSettings(redis_url=SecretStr(redis_url), mcp_token=SecretStr(TOKEN))
    return settings


def _dead_redis_url() -> str:
    return f"redis://:{PASSWORD}@127.0.0.1:{_free_port()}/0"


async def _get(app: ASGIApp, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        return await http.get(path)


@pytest.mark.parametrize("alive", [True, False])
async def test_mcp_readyz_follows_redis(redis_url: str, alive: bool) -> None:
    settings = _settings(redis_url if alive else _dead_redis_url())
    app = mcp_http_app(
        build_server(settings),
        token=settings.crmops.mcp_token,
        host="127.0.0.1",
        checks=readiness_checks(settings.crmops),
    )
    ready, healthy = await _get(app, "/readyz"), await _get(app, "/healthz")

    assert healthy.status_code == 200
    assert ready.status_code == (200 if alive else 503)
    assert ready.json() == {
        "status": "ready" if alive else "not ready",
        "checks": {"redis": "ok" if alive else "failed"},
    }
    assert PASSWORD not in ready.text


@pytest.mark.parametrize("alive", [True, False])
async def test_slack_readyz_follows_redis(redis_url: str, alive: bool) -> None:
    settings = _settings(redis_url if alive else _dead_redis_url())
    slack = SlackSettings(bot_token=SecretStr("xoxb-1"), signing_secret=SecretStr("s"))
    async with Services(settings) as services:
        app = slack_http_app(
            build_app(slack, services), settings=slack, checks=readiness_checks(settings.crmops)
        )
        ready, healthy = await _get(app, "/readyz"), await _get(app, "/healthz")

    assert healthy.status_code == 200
    assert ready.status_code == (200 if alive else 503)
    assert ready.json()["checks"] == {"redis": "ok" if alive else "failed"}


async def test_without_redis_there_is_nothing_to_check_and_the_server_is_ready() -> None:
    assert readiness_checks(CrmopsSettings()) == []
    assert await check_readiness([]) == {}


async def test_a_probe_that_hangs_is_not_ready_within_the_bound() -> None:
    async def hangs() -> None:
        await asyncio.sleep(60)

    began = time.monotonic()
    results = await check_readiness([ReadinessCheck("slow", hangs)], seconds=0.2)
    assert results == {"slow": False}
    assert time.monotonic() - began < 2


def test_a_running_mcp_server_reports_losing_redis(tmp_path: Path) -> None:
    redis = start_redis(tmp_path / "redis")
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CRMOPS_MCP_TOKEN": TOKEN,
        "CRMOPS_REDIS_URL": redis.url,
    }
    command = [sys.executable, "-m", "server", "mcp", "--http", "--port", str(port)]
    server = subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}/readyz"
    try:
        first = _poll(url, server)
        redis.kill()
        second = httpx.get(url, timeout=10)
    finally:
        server.terminate()
        _, err = server.communicate(timeout=20)
        redis.stop()
    assert (first.status_code, second.status_code) == (200, 503)
    assert b"Traceback" not in err


def _poll(url: str, process: subprocess.Popen[bytes], within: float = 20) -> httpx.Response:
    deadline = time.monotonic() + within
    while True:
        assert process.poll() is None, process.stderr.read() if process.stderr else b""
        try:
            return httpx.get(url, timeout=5)
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the MCP server did not start"
            time.sleep(0.1)
