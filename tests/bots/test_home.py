"""App Home over real HTTP: signed `app_home_opened` events (JSON) and Home buttons
(`payload=` form bodies) in, `views.publish` and direct messages out, from the audit log
and the import journal: an interrupted import resumed from its button."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from bots.app import build_app
from bots.fake_slack import FakeSlack
from bots.home import IMPORT_ACTION, NEW_TICKET_ACTION, RESUME_ACTION
from bots.serving import EVENTS_PATH, build_http_app
from bots.settings import AccessSettings, SlackSettings
from tests.bots.conftest import (
    READER,
    TEAM,
    WRITER,
    SlackEndpoint,
    _serve_in_loop,
    audit_entries,
    sign,
)
from tests.bots.test_http import _confirmation_id
from tests.bots.test_import import CSV_MIME, VALID_ROWS, _customers_csv, _open_modal, _submission
from tests.bots.waiting import wait_until
from tests.sandbox_fixtures import Sandbox
from tools.services import Services
from tools.storage.store import Store

ADMIN = "U0ADMIN"
WAIT = 20


@pytest.fixture
def access() -> AccessSettings:
    return AccessSettings(write_users=frozenset({WRITER, ADMIN}), admin_users=frozenset({ADMIN}))


async def _open_home(endpoint: SlackEndpoint, user: str) -> dict[str, Any]:
    """Send `app_home_opened` as Slack does (signed JSON) and return the view published."""
    before = len(_published(endpoint.fake, user))
    body = json.dumps(
        {
            "token": "deprecated-verification-token",
            "team_id": TEAM,
            "api_app_id": "A0CRMOPS",
            "type": "event_callback",
            "event_id": f"Ev{time.monotonic_ns()}",
            "event_time": int(time.time()),
            "event": {
                "type": "app_home_opened",
                "user": user,
                "channel": "D0HOME",
                "tab": "home",
                "event_ts": f"{time.time():.6f}",
            },
        }
    )
    response = await endpoint.post(body, sign(body) | {"Content-Type": "application/json"})
    assert response.status_code == 200
    await wait_until(lambda: len(_published(endpoint.fake, user)) > before, within=WAIT)
    return _published(endpoint.fake, user)[-1]


def _published(fake: FakeSlack, user: str) -> list[dict[str, Any]]:
    views = []
    for call in fake.calls_to("views.publish"):
        if call.data.get("user_id") == user:
            view = call.data["view"]
            views.append(json.loads(view) if isinstance(view, str) else dict(view))
    return views


def _home_text(view: dict[str, Any]) -> str:
    parts = []
    for block in view["blocks"]:
        text = block.get("text")
        if isinstance(text, dict):
            parts.append(text["text"])
        for element in block.get("elements", []):
            inner = element.get("text")
            parts.append(inner["text"] if isinstance(inner, dict) else str(inner or ""))
    return "\n".join(parts)


def _buttons(view: dict[str, Any], action_id: str) -> list[str]:
    found = []
    for block in view["blocks"]:
        for element in [block.get("accessory") or {}, *block.get("elements", [])]:
            if element.get("action_id") == action_id:
                found.append(str(element["value"]))
    return found


async def _press_home(endpoint: SlackEndpoint, user: str, action_id: str, value: str) -> None:
    """A Home tab button, as Slack sends it: no channel, no response_url."""
    response = await endpoint.interaction(
        {
            "type": "block_actions",
            "user": {"id": user, "username": user.lower(), "team_id": TEAM},
            "container": {"type": "view", "view_id": "V0HOME"},
            "view": {"id": "V0HOME", "type": "home", "blocks": []},
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": "home",
                    "value": value,
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
    )
    assert response.status_code == 200


async def _interrupted_import(endpoint: SlackEndpoint, sandbox: Sandbox) -> None:
    """An import whose vendor fails at every call: it stops with every row left to send."""
    view = await _open_modal(endpoint)
    file = endpoint.fake.add_file("customers.csv", _customers_csv(), CSV_MIME)
    await endpoint.interaction(_submission(view, file))
    await wait_until(lambda: bool(endpoint.fake.hook_posts["cmd"]), within=WAIT)
    sandbox.xiaolanben.faults.fail_next = 1_000_000
    sandbox.xiaolanben.faults.fail_status = 500
    await endpoint.press(
        "crm_confirm", _confirmation_id(endpoint.fake.hook_posts["cmd"][0]), hook="run"
    )
    posts = endpoint.fake.hook_posts.setdefault("run", [])
    await wait_until(lambda: len(posts) >= 2, within=WAIT)
    assert sandbox.xiaolanben.customers == {}
    sandbox.xiaolanben.faults.fail_next = 0


async def test_an_interrupted_import_is_resumed_from_app_home(
    endpoint: SlackEndpoint, sandbox: Sandbox, store: Store
) -> None:
    await _interrupted_import(endpoint, sandbox)
    home = await _open_home(endpoint, WRITER)
    text = _home_text(home)
    assert "Your recent imports" in text
    assert "*customers.csv* → Xiaolanben" in text
    assert "*interrupted*" in text
    assert f"0 of {VALID_ROWS} rows sent · 0 failed · {VALID_ROWS} not sent yet" in text
    (resume,) = _buttons(home, RESUME_ACTION)

    await _press_home(endpoint, WRITER, RESUME_ACTION, resume)
    await wait_until(lambda: len(sandbox.xiaolanben.customers) == VALID_ROWS, within=WAIT)
    await wait_until(
        lambda: "*done*" in _home_text(_published(endpoint.fake, WRITER)[-1]), within=WAIT
    )
    done = _home_text(_published(endpoint.fake, WRITER)[-1])
    assert f"{VALID_ROWS} of {VALID_ROWS} rows sent · 0 failed" in done
    assert not _buttons(_published(endpoint.fake, WRITER)[-1], RESUME_ACTION)
    # The progress and the summary came as direct messages (a Home button has no response_url).
    dms = [c.data for c in endpoint.fake.calls if c.method in {"chat.postMessage", "chat.update"}]
    assert dms[0]["channel"] == WRITER
    assert any(
        f"{VALID_ROWS} created" in str(dm.get("text", "")) + str(dm.get("blocks", "")) for dm in dms
    )
    # Resumed as the same person: the engine audits the run with the Slack user.
    runs = [e for e in await audit_entries(store) if e.operation == "bulk_import"]
    assert [run.sent["confirmed"] for run in runs] == [0, VALID_ROWS]
    assert [run.sent["pending"] + run.sent["unknown"] for run in runs] == [VALID_ROWS, 0]
    assert {run.actor.name.rsplit("/", 1)[-1] for run in runs} == {WRITER}


async def test_a_user_sees_only_their_own_work_and_an_admin_everyone(
    endpoint: SlackEndpoint, sandbox: Sandbox
) -> None:
    ask = (await endpoint.command('ticket "主页工单" "在主页可见"', user=WRITER)).json()
    await endpoint.press("crm_confirm", _confirmation_id(ask), hook="made")
    await wait_until(lambda: len(sandbox.bangwo8.tickets) == 1, within=WAIT)
    (ticket_id,) = sandbox.bangwo8.tickets
    await _interrupted_import(endpoint, sandbox)
    await wait_until(lambda: len(endpoint.fake.hook_posts["made"]) >= 3, within=WAIT)

    mine = _home_text(await _open_home(endpoint, WRITER))
    assert f"`#{ticket_id}` 主页工单" in mine
    assert "customers.csv" in mine

    theirs = await _open_home(endpoint, READER)
    text = _home_text(theirs)
    assert "No imports yet" in text
    assert "No tickets yet" in text
    assert _buttons(theirs, NEW_TICKET_ACTION)
    assert _buttons(theirs, IMPORT_ACTION)

    everyone = await _open_home(endpoint, ADMIN)
    text = _home_text(everyone)
    assert "Everyone's recent imports" in text
    assert "*customers.csv* → Xiaolanben" in text
    assert "*interrupted*" in text
    assert f"by <@{WRITER}>" in text
    assert f"`#{ticket_id}` 主页工单" in text


async def test_only_the_owner_can_resume(endpoint: SlackEndpoint, sandbox: Sandbox) -> None:
    await _interrupted_import(endpoint, sandbox)
    (resume,) = _buttons(await _open_home(endpoint, WRITER), RESUME_ACTION)
    before = len(_published(endpoint.fake, READER))
    await _press_home(endpoint, READER, RESUME_ACTION, resume)
    await wait_until(lambda: len(_published(endpoint.fake, READER)) > before, within=WAIT)
    assert "Only the person who ran this import" in _home_text(
        _published(endpoint.fake, READER)[-1]
    )
    assert sandbox.xiaolanben.customers == {}


async def test_the_home_buttons_open_the_modals(endpoint: SlackEndpoint) -> None:
    await _press_home(endpoint, WRITER, IMPORT_ACTION, "import")
    await _press_home(endpoint, WRITER, NEW_TICKET_ACTION, "new")
    opened = endpoint.fake.calls_to("views.open")
    await wait_until(lambda: len(opened) >= 2, within=WAIT)
    callbacks = set()
    for call in opened:
        view = call.data["view"]
        callbacks.add((json.loads(view) if isinstance(view, str) else view)["callback_id"])
    assert callbacks == {"crm_import", "crm_ticket"}


async def test_after_a_restart_resume_asks_for_the_file_again(
    *,
    endpoint: SlackEndpoint,
    sandbox: Sandbox,
    services: Services,
    slack_settings: SlackSettings,
    access: AccessSettings,
    tmp_path: Path,
) -> None:
    """Another bot process (a restart, or a replica) knows the import from the audit log and
    the journal, but not its file: Resume says to give /crm import the same file."""
    await _interrupted_import(endpoint, sandbox)
    again = build_app(slack_settings, services, access=access, workdir=tmp_path / "restarted")
    server, task, url = await _serve_in_loop(build_http_app(again, settings=slack_settings))
    try:
        restarted = SlackEndpoint(url=url + EVENTS_PATH, fake=endpoint.fake, http=endpoint.http)
        home = await _open_home(restarted, WRITER)
        assert "*interrupted*" in _home_text(home)
        (resume,) = _buttons(home, RESUME_ACTION)
        await _press_home(restarted, WRITER, RESUME_ACTION, resume)
        await wait_until(
            lambda: "no longer kept" in _home_text(_published(endpoint.fake, WRITER)[-1]),
            within=WAIT,
        )
        text = _home_text(_published(endpoint.fake, WRITER)[-1])
        assert "Run `/crm import` with the same file" in text
        assert sandbox.xiaolanben.customers == {}
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
