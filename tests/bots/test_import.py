"""`/crm import`: modal → upload → preview → confirm → progress → summary, over real HTTP."""

from __future__ import annotations

import asyncio
import json
import re
import stat
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bots.app import build_app
from bots.fake_slack import FakeSlack
from bots.imports import MAX_FILE_BYTES
from bots.serving import EVENTS_PATH, build_http_app
from bots.settings import AccessSettings, SlackSettings
from tests.bots.conftest import (
    CHANNEL,
    TEAM,
    WRITER,
    SlackEndpoint,
    _serve_in_loop,
    audit_entries,
)
from tests.bots.test_http import _confirmation_id, _text
from tests.bots.waiting import wait_until
from tests.sandbox_fixtures import Sandbox
from tools.services import Services
from tools.storage.store import Store

VALID_ROWS = 25
CSV_MIME = "text/csv"


def _customers_csv() -> bytes:
    lines = ["客户名称,企业名称,联系人,手机号"]
    lines += [
        f"蓝本客户{n:02d},蓝本客户{n:02d}有限公司,王芳{n},1380013{n:04d}" for n in range(VALID_ROWS)
    ]
    lines.append(",没有客户名称的公司,李雷,13900139000")  # rejected: customerName is required
    return ("\n".join(lines) + "\n").encode()


async def _open_modal(endpoint: SlackEndpoint) -> dict[str, Any]:
    response = await endpoint.command("import xiaolanben")
    assert response.status_code == 200
    await wait_until(lambda: bool(endpoint.fake.calls_to("views.open")))
    view = endpoint.fake.calls_to("views.open")[0].data["view"]
    return json.loads(view) if isinstance(view, str) else dict(view)


def _submission(
    view: dict[str, Any], file: dict[str, Any] | None, user: str = WRITER
) -> dict[str, Any]:
    """The import form `view` submitted by `user` with `file` (none: the field left empty)."""
    return {
        "type": "view_submission",
        "user": {"id": user, "username": user.lower(), "team_id": TEAM},
        "view": {
            "id": "V0MODAL",
            "type": "modal",
            "callback_id": view["callback_id"],
            "private_metadata": view["private_metadata"],
            "state": {
                "values": {
                    "vendor": {
                        "vendor_select": {
                            "type": "static_select",
                            "selected_option": {"value": "xiaolanben"},
                        }
                    },
                    "file": {"file_input": {"type": "file_input", "files": [file] if file else []}},
                }
            },
        },
    }


def _button(message: dict[str, Any], action_id: str) -> str:
    for block in message["blocks"]:
        for element in block.get("elements", []):
            if element.get("action_id") == action_id:
                return str(element["value"])
    raise AssertionError(f"no {action_id} button")


async def test_the_whole_import_flow(
    endpoint: SlackEndpoint, fake_slack: FakeSlack, sandbox: Sandbox, store: Store
) -> None:
    view = await _open_modal(endpoint)
    assert view["callback_id"] == "crm_import"
    assert json.loads(view["private_metadata"])["response_url"] == fake_slack.hook_url("cmd")

    file = fake_slack.add_file("customers.csv", _customers_csv(), CSV_MIME)
    submitted = await endpoint.interaction(_submission(view, file))
    assert submitted.status_code == 200
    await wait_until(lambda: bool(fake_slack.hook_posts["cmd"]), within=10)
    preview = fake_slack.hook_posts["cmd"][0]
    text = _text(preview)
    assert f"{VALID_ROWS} valid row(s), 1 rejected of {VALID_ROWS + 1}" in text
    assert f"row {VALID_ROWS + 2}: customerName" in text
    assert sandbox.xiaolanben.customers == {}
    download = fake_slack.calls_to("files.download")[0]
    assert download.token == fake_slack.bot_token

    confirmation = _confirmation_id(preview)
    await endpoint.press("crm_confirm", confirmation, user="U0INTRUDER", hook="intruder")
    await wait_until(lambda: bool(fake_slack.hook_posts["intruder"]))
    assert f"Only <@{WRITER}>" in _text(fake_slack.hook_posts["intruder"][0])
    assert sandbox.xiaolanben.customers == {}

    await endpoint.press("crm_confirm", confirmation, hook="run")
    posts = fake_slack.hook_posts.setdefault("run", [])
    await wait_until(lambda: any("Imported" in _text(post) for post in posts), within=20)
    texts = [_text(post) for post in posts]
    assert texts[0].startswith("Importing")
    assert any(f"of {VALID_ROWS} row(s) done" in text for text in texts[1:-1])
    assert f"{VALID_ROWS} created" in texts[-1]
    assert all(post.get("replace_original") is True for post in posts)
    assert len(posts) <= 4  # a response_url takes 5 posts
    assert len(sandbox.xiaolanben.customers) == VALID_ROWS

    await endpoint.press("crm_confirm", confirmation, hook="again")
    await wait_until(lambda: bool(fake_slack.hook_posts["again"]))
    assert "already confirmed" in _text(fake_slack.hook_posts["again"][0])
    assert len(sandbox.xiaolanben.customers) == VALID_ROWS

    # One writer: the engine, with the Slack user as its actor; the bot adds no entry.
    entries = await audit_entries(store)
    assert {e.actor.name for e in entries} == {f"{TEAM}/{CHANNEL}/{WRITER}"}
    assert {e.operation for e in entries} == {"import_customer", "bulk_import"}
    run = next(e for e in entries if e.operation == "bulk_import")
    assert (run.vendor, run.outcome) == ("xiaolanben", "partial")
    assert run.sent["confirmed"] == VALID_ROWS

    await endpoint.press("crm_rejected_csv", _button(posts[-1], "crm_rejected_csv"))
    await wait_until(lambda: bool(fake_slack.calls_to("files.completeUploadExternal")))
    (upload,) = fake_slack.uploads.values()
    assert "没有客户名称的公司" in upload.content.decode("utf-8-sig")
    assert fake_slack.calls_to("conversations.open")[0].data["users"] == WRITER


async def test_cancel_imports_nothing(
    endpoint: SlackEndpoint, fake_slack: FakeSlack, sandbox: Sandbox
) -> None:
    view = await _open_modal(endpoint)
    file = fake_slack.add_file("customers.csv", _customers_csv(), CSV_MIME)
    await endpoint.interaction(_submission(view, file))
    await wait_until(lambda: bool(fake_slack.hook_posts["cmd"]), within=10)
    confirmation = _confirmation_id(fake_slack.hook_posts["cmd"][0])
    await endpoint.press("crm_cancel", confirmation, hook="cancel")
    await wait_until(lambda: bool(fake_slack.hook_posts["cancel"]))
    await endpoint.press("crm_confirm", confirmation, hook="late")
    await wait_until(lambda: bool(fake_slack.hook_posts["late"]))
    assert "already confirmed or cancelled" in _text(fake_slack.hook_posts["late"][0])
    assert sandbox.xiaolanben.customers == {}


async def test_a_submission_without_a_file_keeps_the_modal_open(
    endpoint: SlackEndpoint,
) -> None:
    view = await _open_modal(endpoint)
    response = await endpoint.interaction(_submission(view, None))
    answer = response.json()
    assert answer["response_action"] == "errors"
    assert "file" in answer["errors"]


async def test_a_sign_in_page_instead_of_the_file_is_reported(
    endpoint: SlackEndpoint, fake_slack: FakeSlack
) -> None:
    view = await _open_modal(endpoint)
    file = fake_slack.add_file("customers.csv", _customers_csv(), CSV_MIME)
    fake_slack.files.clear()  # Slack answers its HTML sign-in page, status 200
    await endpoint.interaction(_submission(view, file))
    await wait_until(lambda: bool(fake_slack.hook_posts["cmd"]), within=10)
    text = _text(fake_slack.hook_posts["cmd"][0])
    assert "Could not check the file" in text
    assert "files:read" in text


async def test_the_bot_token_is_not_sent_off_slack(
    endpoint: SlackEndpoint, fake_slack: FakeSlack
) -> None:
    view = await _open_modal(endpoint)
    file = fake_slack.add_file("customers.csv", _customers_csv(), CSV_MIME)
    file["url_private_download"] = "https://evil.example.com/steal/customers.csv"
    await endpoint.interaction(_submission(view, file))
    await wait_until(lambda: bool(fake_slack.hook_posts["cmd"]), within=10)
    assert "not on Slack" in _text(fake_slack.hook_posts["cmd"][0])
    assert fake_slack.calls_to("files.download") == []


async def test_import_is_refused_to_users_not_allowed(endpoint: SlackEndpoint) -> None:
    response = await endpoint.command("import", user="U0READER")
    assert "not allowed to run `/crm import`" in _text(response.json())
    assert endpoint.fake.calls_to("views.open") == []


# --- hostile files ---------------------------------------------------------------------------

MiB = 1024 * 1024


def _memory(field: str) -> int:
    """A memory figure of this process (the bot's: it is served in this test's loop)."""
    found = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    assert found, field
    return int(found[1]) * 1024


def _reset_peak() -> int:
    """Reset the peak RSS (VmHWM) to the current RSS (Linux clear_refs 5); that RSS."""
    Path("/proc/self/clear_refs").write_text("5")
    return _memory("VmRSS")


async def _preview_text(endpoint: SlackEndpoint, file: dict[str, Any]) -> str:
    view = await _open_modal(endpoint)
    await endpoint.interaction(_submission(view, file))
    await wait_until(lambda: bool(endpoint.fake.hook_posts["cmd"]), within=20)
    return _text(endpoint.fake.hook_posts["cmd"][0])


@pytest.mark.parametrize("declared", [False, True], ids=["chunked", "content-length"])
async def test_a_file_over_the_limit_is_refused_as_its_bytes_arrive(
    endpoint: SlackEndpoint, fake_slack: FakeSlack, tmp_path: Path, declared: bool
) -> None:
    piece = (_customers_csv() * 64 * 1024)[: 64 * 1024]
    served = 40 * MiB
    file = fake_slack.add_file(
        "big.csv", piece, CSV_MIME, repeat=served // len(piece), declare_length=declared
    )
    before = _reset_peak()
    text = await _preview_text(endpoint, file)
    growth = _memory("VmHWM") - before

    (stored,) = fake_slack.files.values()
    assert stored.sent <= MAX_FILE_BYTES + 8 * MiB, "the bot read on past the limit"
    assert growth < 12 * MiB, f"the bot's peak RSS grew {growth / MiB:.0f} MiB"
    assert "big.csv is over 20 MB" in text
    assert list((tmp_path / "slack-files").rglob("big.csv")) == []


@pytest.fixture
async def default_endpoint(
    *,
    services: Services,
    slack_settings: SlackSettings,
    access: AccessSettings,
    fake_slack: FakeSlack,
    sandbox: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[SlackEndpoint]:
    """The bot as `crmops slack` makes it: no `workdir`; the system's temporary folder is
    this test's `tmp/`."""
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    bolt_app = build_app(slack_settings, services, access=access, progress_interval=0)
    server, task, url = await _serve_in_loop(build_http_app(bolt_app, settings=slack_settings))
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            yield SlackEndpoint(url=url + EVENTS_PATH, fake=fake_slack, http=http)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def test_import_files_live_in_a_private_folder_of_this_process(
    default_endpoint: SlackEndpoint, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    file = fake_slack.add_file("customers.csv", _customers_csv(), CSV_MIME)
    assert "valid row(s)" in await _preview_text(default_endpoint, file)

    (workdir,) = (tmp_path / "tmp").iterdir()
    assert workdir.name.startswith("crmops-slack-")
    assert workdir.name != "crmops-slack"  # a fixed name another user could make first
    (saved,) = workdir.rglob("customers.csv")
    for folder in (workdir, saved.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


async def test_import_refuses_a_file_swapped_after_its_preview(
    endpoint: SlackEndpoint, fake_slack: FakeSlack, sandbox: Sandbox, tmp_path: Path
) -> None:
    file = fake_slack.add_file("customers.csv", _customers_csv(), CSV_MIME)
    assert f"{VALID_ROWS} valid row(s)" in await _preview_text(endpoint, file)
    (saved,) = (tmp_path / "slack-files").rglob("customers.csv")
    saved.write_text(
        "客户名称,企业名称,联系人,手机号\n"
        "别人的客户1,别人的公司1,张三,13800138001\n"
        "别人的客户2,别人的公司2,李四,13800138002\n",
        encoding="utf-8",
    )

    await endpoint.press(
        "crm_confirm", _confirmation_id(fake_slack.hook_posts["cmd"][0]), hook="run"
    )
    await wait_until(lambda: bool(fake_slack.hook_posts.get("run")), within=10)
    text = _text(fake_slack.hook_posts["run"][-1])
    assert "customers.csv is no longer the file that was previewed" in text
    assert "run /crm import again" in text
    assert sandbox.xiaolanben.customers == {}
