"""`manifest.yml` declares exactly what the bot handles and uses.

Every slash command, shortcut and event in the manifest has a listener, and every listener
an entry: the listeners are those `build_app` registers, recorded as it calls bolt's
decorators. Each manifest entry is also sent, signed, over HTTP: bolt answers 404 when no
listener takes a request. View callbacks are not in manifests: the view listeners are
compared with the modals the bot opens from its entry points. The bot scopes are exactly
those of the Web API methods the bot's code calls.
"""

from __future__ import annotations

import ast
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bots.app import build_app
from bots.settings import AccessSettings, SlackSettings
from tests.bots.conftest import CHANNEL, TEAM, WRITER, SlackEndpoint, sign
from tests.bots.waiting import wait_until
from tools.services import Services

ROOT = Path(__file__).parents[2]
MANIFEST = ROOT / "manifest.yml"
BOTS = ROOT / "bots"
NOT_THE_BOT = {"fake_slack.py", "sandbox.py"}  # the fake Slack's own code

DECORATORS = (
    "command",
    "shortcut",
    "global_shortcut",
    "message_shortcut",
    "event",
    "view",
    "view_submission",
    "view_closed",
    "action",
    "block_action",
    "options",
)

SCOPE_OF: dict[str, str | None] = {
    # Web API method (as AsyncWebClient spells it) → the bot scope it needs (None: none).
    "auth_test": None,
    "views_open": None,
    "views_update": None,
    "views_push": None,
    "views_publish": None,
    "chat_postMessage": "chat:write",
    "chat_postEphemeral": "chat:write",
    "chat_update": "chat:write",
    "chat_delete": "chat:write",
    "chat_getPermalink": None,
    "conversations_open": "im:write",
    "usergroups_users_list": "usergroups:read",
    "users_info": "users:read",
    "files_upload_v2": "files:write",
    "files_info": "files:read",
}


def _manifest() -> dict[str, Any]:
    loaded = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _manifest_shortcuts() -> set[tuple[str, str]]:
    return {(s["type"], s["callback_id"]) for s in _manifest()["features"].get("shortcuts", [])}


def _manifest_events() -> set[str]:
    subscriptions = _manifest()["settings"].get("event_subscriptions") or {}
    return set(subscriptions.get("bot_events") or [])


@pytest.fixture
def registered(
    monkeypatch: pytest.MonkeyPatch, slack_settings: SlackSettings, services: Services
) -> set[tuple[str, str]]:
    """(decorator, what it listens for) of every listener `build_app` registers."""
    seen: set[tuple[str, str]] = set()
    for name in DECORATORS:
        original = getattr(AsyncApp, name)

        def recording(
            self: AsyncApp,
            constraint: Any,
            *args: Any,
            _name: str = name,
            _o: Any = original,
            **kwargs: Any,
        ) -> Any:
            seen.add((_name, _constraint_text(constraint)))
            return _o(self, constraint, *args, **kwargs)

        monkeypatch.setattr(AsyncApp, name, recording)
    build_app(slack_settings, services, access=AccessSettings())
    return seen


def _constraint_text(constraint: Any) -> str:
    if isinstance(constraint, dict):
        return str(constraint.get("callback_id") or constraint.get("type") or constraint)
    return str(getattr(constraint, "pattern", constraint))


def _of(registered: set[tuple[str, str]], *names: str) -> set[str]:
    return {what for name, what in registered if name in names}


def test_every_command_in_the_manifest_has_a_listener_and_back(
    registered: set[tuple[str, str]],
) -> None:
    commands = {each["command"] for each in _manifest()["features"]["slash_commands"]}
    assert commands == _of(registered, "command")


def test_every_shortcut_in_the_manifest_has_a_listener_and_back(
    registered: set[tuple[str, str]],
) -> None:
    shortcuts = _manifest_shortcuts()
    assert shortcuts, "the manifest declares no shortcut"
    listened = {("message", each) for each in _of(registered, "message_shortcut")}
    listened |= {("global", each) for each in _of(registered, "global_shortcut")}
    either = _of(registered, "shortcut")  # app.shortcut(id) takes both kinds
    assert {s for s in shortcuts if s[1] not in either} == listened
    assert either <= {callback_id for _, callback_id in shortcuts}


def test_every_event_in_the_manifest_has_a_listener_and_back(
    registered: set[tuple[str, str]],
) -> None:
    assert _manifest_events() == _of(registered, "event")
    home = _manifest()["features"].get("app_home") or {}
    assert bool(home.get("home_tab_enabled")) == ("app_home_opened" in _manifest_events())


def test_interactivity_and_events_are_switched_on_exactly_when_used(
    registered: set[tuple[str, str]],
) -> None:
    settings = _manifest()["settings"]
    interactive = {"shortcut", "global_shortcut", "message_shortcut", "view", "view_submission"}
    interactive |= {"view_closed", "action", "block_action", "options"}
    assert settings["interactivity"]["is_enabled"] == any(n in interactive for n, _ in registered)
    subscriptions = settings.get("event_subscriptions") or {}
    assert bool(subscriptions.get("request_url")) == bool(_manifest_events())


async def test_every_manifest_entry_is_answered_over_http(endpoint: SlackEndpoint) -> None:
    """Bolt answers 404 for a request no listener takes."""
    for kind, callback_id in sorted(_manifest_shortcuts()):
        response = await endpoint.interaction(_shortcut(endpoint, kind, callback_id))
        assert response.status_code == 200, callback_id
    for number, event in enumerate(sorted(_manifest_events())):
        body = json.dumps(
            {
                "type": "event_callback",
                "team_id": TEAM,
                "api_app_id": "A0CRMOPS",
                "event_id": f"Ev0MANIFEST{number}",
                "event_time": int(time.time()),
                "event": {"type": event, "user": WRITER, "channel": "D0HOME", "tab": "home"},
            }
        )
        headers = sign(body) | {"Content-Type": "application/json"}
        response = await endpoint.post(body, headers)
        assert response.status_code == 200, event


def _shortcut(endpoint: SlackEndpoint, kind: str, callback_id: str) -> dict[str, Any]:
    user = {"id": WRITER, "username": "writer", "team_id": TEAM}
    if kind == "global":
        return {"type": "shortcut", "callback_id": callback_id, "user": user}
    ts = f"{time.time():.6f}"
    return {
        "type": "message_action",
        "callback_id": callback_id,
        "team": {"id": TEAM, "domain": "crmops-sandbox"},
        "user": user,
        "channel": {"id": CHANNEL, "name": "sales"},
        "message": {"type": "message", "user": "U0CUSTOMER", "ts": ts, "text": "你好\n请回电"},
        "response_url": endpoint.fake.hook_url(f"manifest-{callback_id}"),
    }


async def test_every_view_listener_is_a_modal_the_bot_opens_and_back(
    endpoint: SlackEndpoint, registered: set[tuple[str, str]]
) -> None:
    """The modals: those the manifest's shortcuts and `/crm ticket`, `/crm import` open."""
    for kind, callback_id in sorted(_manifest_shortcuts()):
        await endpoint.interaction(_shortcut(endpoint, kind, callback_id))
    for text in ("ticket", "import"):
        await endpoint.command(text, hook=f"manifest-{text}")
    opened = endpoint.fake.calls_to("views.open")
    await wait_until(lambda: len(opened) >= len(_manifest_shortcuts()) + 2)
    callbacks = {_view(call.data)["callback_id"] for call in opened}
    assert callbacks == _of(registered, "view", "view_submission")


def _view(data: dict[str, Any]) -> dict[str, Any]:
    view = data["view"]
    return json.loads(view) if isinstance(view, str) else dict(view)


# --- scopes --------------------------------------------------------------------------------


def _bot_sources() -> Iterator[Path]:
    return (path for path in sorted(BOTS.glob("*.py")) if path.name not in NOT_THE_BOT)


def _web_api_calls() -> set[str]:
    """The AsyncWebClient methods the bot's code calls (`client.views_open(...)` & co)."""
    called = set()
    for path in _bot_sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                method = node.func.attr
                if callable(getattr(AsyncWebClient, method, None)) and not method.startswith("_"):
                    called.add(method)
    return called


def test_the_manifest_asks_for_exactly_the_scopes_used() -> None:
    calls = _web_api_calls()
    unknown = calls - set(SCOPE_OF)
    assert not unknown, f"add the scope of {sorted(unknown)} to SCOPE_OF"
    used = {scope for method in calls if (scope := SCOPE_OF[method]) is not None}
    features = _manifest()["features"]
    if features.get("slash_commands") or features.get("shortcuts"):
        used.add("commands")
    if any("url_private" in path.read_text(encoding="utf-8") for path in _bot_sources()):
        used.add("files:read")  # bots/imports.py downloads uploads with the bot token
    assert set(_manifest()["oauth_config"]["scopes"]["bot"]) == used
