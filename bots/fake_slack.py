"""A fake Slack on loopback: Web API, `response_url` hooks, file downloads and uploads, and a
Socket Mode WebSocket. `crmops sandbox` serves it so the Slack bot runs with no workspace;
the tests drive the bot against it. It records every call (`calls`, `hook_posts`, `acks`)::

    fake = FakeSlack(bot_token=BOT_TOKEN, app_token=APP_TOKEN)
    with serve(fake.app) as served:
        fake.url = served.url
        settings = SlackSettings(api_url=fake.api_url, ...)

What the bot posted to a `response_url` made by `hook_url(name)` can be read back over
HTTP too: `GET {url}/hooks/{name}` answers `{"posts": [...]}` (for other processes), as
do `GET {url}/views` (the modals opened, by view id, as last updated) and
`GET {url}/calls/{method}` (`{"calls": [the arguments of each call]}`, e.g. the thread
replies of `chat.postMessage`; tokens are not shown).

Strict where Slack is: a wrong token is `{"ok": false, "error": "invalid_auth"}`; a file
download without the bot token answers Slack's HTML sign-in page with status 200; a
`response_url` takes at most 5 posts.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

HOOK_USES = 5  # Slack: a response_url takes 5 posts within 30 minutes
SIGN_IN_PAGE = "<!DOCTYPE html><html><body>Sign in to Slack</body></html>"
APP_TOKEN_METHODS = frozenset({"apps.connections.open"})


@dataclass
class SlackCall:
    """One request the bot made to the fake."""

    method: str
    token: str | None
    data: dict[str, Any]


@dataclass
class StoredFile:
    """An uploaded file: `content` `repeat` times over (a large file costs no memory here),
    with a `Content-Length` unless `declare_length` is off; `sent` counts bytes handed out."""

    name: str
    content: bytes
    mimetype: str
    repeat: int = 1
    declare_length: bool = True
    sent: int = 0

    @property
    def size(self) -> int:
        return len(self.content) * self.repeat

    async def chunks(self) -> AsyncIterator[bytes]:
        for _ in range(self.repeat):
            self.sent += len(self.content)
            yield self.content
            # Once the client is gone, sending returns at once: yield to the loop, so that
            # Starlette's disconnect listener can stop this stream.
            await asyncio.sleep(0)


@dataclass
class FakeSlack:
    bot_token: str
    app_token: str
    team_id: str = "T0CRMOPS"
    bot_user_id: str = "U0BOT"
    url: str = ""
    calls: list[SlackCall] = field(default_factory=list)
    hook_posts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    files: dict[str, StoredFile] = field(default_factory=dict)
    uploads: dict[str, StoredFile] = field(default_factory=dict)
    usergroups: dict[str, list[str]] = field(default_factory=dict)
    views: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The modals opened (`views.open`), by view id, as last updated (`views.update`)."""
    not_in_channels: set[str] = field(default_factory=set)
    """Channels the bot is not a member of: `chat.postMessage` there is `not_in_channel`."""
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    """`users.info` by user id, e.g. `{"U1": {"locale": "zh-CN", "tz": "Asia/Shanghai"}}`;
    `locale` is answered only with `include_locale=true`, as Slack does."""
    delays: dict[str, float] = field(default_factory=dict)
    """Seconds a Web API method waits before it answers, e.g. `{"usergroups.users.list": 2.5}`."""
    acks: list[dict[str, Any]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _sockets: list[tuple[WebSocket, asyncio.AbstractEventLoop]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def hook_url(self, name: str) -> str:
        """A `response_url` the bot may post to; its posts land in `hook_posts[name]`."""
        self.hook_posts.setdefault(name, [])
        return f"{self.url}/hooks/{name}"

    def add_file(
        self,
        name: str,
        content: bytes,
        mimetype: str,
        *,
        repeat: int = 1,
        declare_length: bool = True,
    ) -> dict[str, Any]:
        """Store an upload as a `file_input` would; returns the file object Slack sends.

        The download serves `content` `repeat` times, streamed: a test of a file of many
        MiB holds only one chunk of it."""
        file_id = f"F{next(self._ids):08d}"
        self.files[file_id] = StoredFile(name, content, mimetype, repeat, declare_length)
        return {
            "id": file_id,
            "name": name,
            "mimetype": mimetype,
            "filetype": name.rsplit(".", 1)[-1],
            "url_private": f"{self.url}/files/{file_id}/{name}",
            "url_private_download": f"{self.url}/files/{file_id}/download/{name}",
        }

    def methods(self) -> list[str]:
        return [call.method for call in self.calls]

    def calls_to(self, method: str) -> list[SlackCall]:
        return [call for call in self.calls if call.method == method]

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/{method}", self._api, methods=["GET", "POST"]),
                Route("/hooks/{name}", self._hook, methods=["POST"]),
                Route("/hooks/{name}", self._hook_posts, methods=["GET"]),
                Route("/views", self._views, methods=["GET"]),
                Route("/calls/{method}", self._calls, methods=["GET"]),
                Route("/files/{file_id}/{rest:path}", self._download, methods=["GET"]),
                Route("/upload/{file_id}", self._upload, methods=["POST"]),
                WebSocketRoute("/socket", self._socket),
            ]
        )

    # --- Web API ---------------------------------------------------------------------------
    async def _api(self, request: Request) -> Response:
        method = request.path_params["method"]
        data = await _params(request)
        token = _bearer(request) or data.get("token")
        self.calls.append(SlackCall(method, token, data))
        if self.delays.get(method):
            await asyncio.sleep(self.delays[method])
        expected = self.app_token if method in APP_TOKEN_METHODS else self.bot_token
        if token != expected:
            return JSONResponse({"ok": False, "error": "invalid_auth"})
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return JSONResponse({"ok": True})
        answer: dict[str, Any] = handler(data)
        return JSONResponse({"ok": "error" not in answer, **answer})

    def _auth_test(self, _: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": "https://crmops-sandbox.slack.com/",
            "team": "crmops sandbox",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": "B0BOT",
        }

    def _usergroups_users_list(self, data: dict[str, Any]) -> dict[str, Any]:
        group = data.get("usergroup", "")
        if group not in self.usergroups:
            return {"error": "no_such_subteam"}
        return {"users": self.usergroups[group]}

    def _users_info(self, data: dict[str, Any]) -> dict[str, Any]:
        user_id = str(data.get("user", ""))
        if user_id not in self.users:
            return {"error": "user_not_found"}
        user = {"id": user_id, "team_id": self.team_id, **self.users[user_id]}
        if str(data.get("include_locale", "")).lower() not in {"true", "1"}:
            user.pop("locale", None)
        return {"user": user}

    def _views_open(self, data: dict[str, Any]) -> dict[str, Any]:
        if not data.get("trigger_id"):
            return {"error": "invalid_trigger_id"}
        view = {"id": f"V{next(self._ids):08d}", **_json_field(data, "view")}
        self.views[view["id"]] = view
        return {"view": view}

    def _views_update(self, data: dict[str, Any]) -> dict[str, Any]:
        view_id = str(data.get("view_id", ""))
        if view_id not in self.views:
            return {"error": "not_found"}
        self.views[view_id] = {"id": view_id, **_json_field(data, "view")}
        return {"view": self.views[view_id]}

    def _views_publish(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"view": {"id": f"V{next(self._ids):08d}", **_json_field(data, "view")}}

    def _chat_postMessage(self, data: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        if data.get("channel") in self.not_in_channels:
            return {"error": "not_in_channel"}
        return {"channel": data.get("channel"), "ts": f"{time.time():.6f}"}

    def _files_getUploadURLExternal(self, data: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        file_id = f"F{next(self._ids):08d}"
        self.uploads[file_id] = StoredFile(str(data.get("filename")), b"", "")
        return {"upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}

    def _files_completeUploadExternal(self, data: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        files = _json_field(data, "files")
        return {"files": [{"id": each["id"], "title": each.get("title")} for each in files]}

    def _apps_connections_open(self, _: dict[str, Any]) -> dict[str, Any]:
        return {"url": self.url.replace("http://", "ws://") + "/socket"}

    # --- response_url, files ---------------------------------------------------------------
    async def _hook(self, request: Request) -> Response:
        name = request.path_params["name"]
        posts = self.hook_posts.setdefault(name, [])
        if len(posts) >= HOOK_USES:
            return JSONResponse({"ok": False, "error": "used_url"}, status_code=404)
        posts.append(json.loads(await request.body()))
        return PlainTextResponse("ok")

    async def _views(self, _: Request) -> Response:
        return JSONResponse({"views": self.views})

    async def _calls(self, request: Request) -> Response:
        calls = self.calls_to(request.path_params["method"])
        shown = [{k: v for k, v in call.data.items() if k != "token"} for call in calls]
        return JSONResponse({"calls": shown})

    async def _hook_posts(self, request: Request) -> Response:
        return JSONResponse({"posts": self.hook_posts.get(request.path_params["name"], [])})

    async def _download(self, request: Request) -> Response:
        stored = self.files.get(request.path_params["file_id"])
        self.calls.append(SlackCall("files.download", _bearer(request), {}))
        if _bearer(request) != self.bot_token or stored is None:
            # Slack answers a missing or wrong token with its sign-in page, status 200.
            return HTMLResponse(SIGN_IN_PAGE)
        length = {"Content-Length": str(stored.size)} if stored.declare_length else {}
        return StreamingResponse(stored.chunks(), media_type=stored.mimetype, headers=length)

    async def _upload(self, request: Request) -> Response:
        stored = self.uploads.get(request.path_params["file_id"])
        if stored is None:
            return PlainTextResponse("no such upload", status_code=404)
        stored.content = await request.body()
        return PlainTextResponse(f"OK - {len(stored.content)}")

    # --- Socket Mode -----------------------------------------------------------------------
    async def _socket(self, websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json({"type": "hello", "num_connections": 1})
        with self._lock:
            self._sockets.append((websocket, asyncio.get_running_loop()))
        try:
            while True:
                self.acks.append(json.loads(await websocket.receive_text()))
        except WebSocketDisconnect:
            pass
        finally:
            with self._lock:
                self._sockets = [each for each in self._sockets if each[0] is not websocket]

    @property
    def socket_connected(self) -> bool:
        return bool(self._sockets)

    def push_envelope(self, envelope: dict[str, Any]) -> None:
        """Send `envelope` to every connected Socket Mode client (callable from any thread)."""
        with self._lock:
            sockets = list(self._sockets)
        for websocket, loop in sockets:
            asyncio.run_coroutine_threadsafe(websocket.send_json(envelope), loop).result(5)


async def _params(request: Request) -> dict[str, Any]:
    data: dict[str, Any] = dict(request.query_params)
    if request.method != "POST":
        return data
    body = await request.body()
    if request.headers.get("content-type", "").startswith("application/json"):
        data.update(json.loads(body or b"{}"))
    else:
        data.update(parse_qsl(body.decode()))
    return data


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    return header.removeprefix("Bearer ") if header.startswith("Bearer ") else None


def _json_field(data: dict[str, Any], name: str) -> Any:
    value = data.get(name)
    return json.loads(value) if isinstance(value, str) else value
