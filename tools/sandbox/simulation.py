"""What the three vendor simulators share: fault switches, rate limit, replay guard, serving.

A simulator is a `Simulator` subclass: it declares its routes and how its vendor words an
error, and gets for free
- the vendor's rate limit per API (a sliding one-second window, answered the vendor's way);
- fault switches, set in code (`sim.faults.fail_next = 3`) or over HTTP by another process
  (`PUT /__sandbox__/faults` with the same fields as JSON; `GET` reads them and the counters);
- `serve(app)`: run it on loopback over real HTTP in a background thread;
- a `Date` header on every vendor answer, from the simulator's clock (`server_time`), which
  `faults.clock_skew` sets ahead or behind; `faults.stall_next` answers late after acting;
- a caller that hangs up before its request is read (a cancelled call) is counted
  (`counters["client_gone"]`), not logged as a server error: a real vendor never notices.

Faults apply to vendor requests only, never to `/__sandbox__/`.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import uvicorn
from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Clock = Callable[[], float]
ADMIN_PREFIX = "/__sandbox__"


class Faults(BaseModel):
    """Switches that make the next requests misbehave; each `*_next` counts down to zero.

    `path` limits all of them to one API path (exact match); None means every path.
    """

    latency: float = Field(default=0.0, ge=0, description="seconds added to every request")
    fail_next: int = Field(default=0, ge=0, description="answer 5xx in the vendor's format")
    fail_status: int = Field(default=503, ge=500, le=599)
    drop_next: int = Field(default=0, ge=0, description="close the connection, no answer")
    drop_after_processing: bool = Field(
        default=False, description="drop after the vendor acted (the answer is lost in flight)"
    )
    rate_limit_next: int = Field(default=0, ge=0, description="answer as over the rate limit")
    malformed_next: int = Field(default=0, ge=0, description="answer 200 with an HTML page")
    stall_next: int = Field(
        default=0, ge=0, description="act, then hold the answer `stall_seconds` (read timeout)"
    )
    stall_seconds: float = Field(default=5.0, ge=0, le=300)
    clock_skew: float = Field(
        default=0.0, description="seconds the server's clock is ahead (negative: behind)"
    )
    path: str | None = None

    def take(self, switch: str, path: str) -> bool:
        """Use up one count of `switch` if it is on for `path`."""
        if self.path is not None and self.path != path:
            return False
        left: int = getattr(self, switch)
        if left <= 0:
            return False
        setattr(self, switch, left - 1)
        return True


class SlidingWindowLimit:
    """At most `rate` requests per key in any one-second window."""

    def __init__(self, rate: float, clock: Clock = time.monotonic) -> None:
        self.rate = rate
        self._clock = clock
        self._seen: dict[str, deque[float]] = {}

    def allow(self, key: str) -> bool:
        now = self._clock()
        seen = self._seen.setdefault(key, deque())
        while seen and seen[0] <= now - 1.0:
            seen.popleft()
        if len(seen) >= self.rate:
            return False
        seen.append(now)
        return True


class ConnectionDropped(Exception):  # noqa: N818 - names what the simulator does, not a failure
    """Raised after the response started: the server closes the socket mid-answer."""


class Simulator:
    """Base of a vendor simulator. Subclasses set `vendor` and implement the two hooks."""

    vendor: ClassVar[str] = ""

    def __init__(self, *, rate_limit: float | None = None, clock: Clock = time.time) -> None:
        self.clock = clock
        self.faults = Faults()
        self.counters: Counter[str] = Counter()
        self._rate_limit = SlidingWindowLimit(rate_limit) if rate_limit else None
        self._app: ASGIApp | None = None

    def server_time(self) -> float:
        """The server's clock: `clock` off by `faults.clock_skew`; its `Date` header shows it."""
        return self.clock() + self.faults.clock_skew

    # --- what a vendor simulator provides -------------------------------------------
    def routes(self) -> list[BaseRoute]:
        """The vendor's API routes."""
        raise NotImplementedError

    def error_response(self, status: int, code: str, message: str) -> Response:
        """An error answer exactly as the vendor words it."""
        raise NotImplementedError

    def rate_limited_response(self) -> Response:
        """The vendor's answer to a request over its rate limit."""
        return self.error_response(429, "429", "Too Many Requests")

    # --- shared ------------------------------------------------------------------------
    @property
    def app(self) -> ASGIApp:
        """The ASGI app: vendor routes behind the rate limit and the fault switches."""
        if self._app is None:
            admin = [
                Route(f"{ADMIN_PREFIX}/faults", self._faults_endpoint, methods=["GET", "PUT"]),
            ]
            self._app = _FaultLayer(self, Starlette(routes=[*admin, *self.routes()]))
        return self._app

    async def _faults_endpoint(self, request: Request) -> Response:
        if request.method == "PUT":
            try:
                changes = await request.json()
                self.faults = Faults.model_validate({**self.faults.model_dump(), **changes})
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"faults": self.faults.model_dump(), "counters": dict(self.counters)})


class _FaultLayer:
    """ASGI middleware applying the rate limit and the fault switches around the vendor app."""

    def __init__(self, sim: Simulator, app: ASGIApp) -> None:
        self.sim = sim
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._serve(scope, receive, send)
        except ClientDisconnect:
            # The caller hung up before its body was read (its call was cancelled, or timed
            # out during `faults.latency`): there is no one to answer, and nothing went wrong.
            self.sim.counters["client_gone"] += 1

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        sim, faults = self.sim, self.sim.faults
        sim.counters["requests"] += 1
        # A vendor's gateway counts a request against the rate limit when it arrives; the
        # added latency stands for the network and the vendor's work, so it comes after.
        early = self._early_answer(path)
        if faults.latency:
            await asyncio.sleep(faults.latency)
        send = _dated(send, sim.server_time)
        if early is not None:
            await early(scope, receive, send)
            return
        if faults.take("drop_next", path):
            sim.counters["dropped"] += 1
            if faults.drop_after_processing:
                await self.app(scope, receive, _discard)
            await _drop_connection(send)
        if faults.take("stall_next", path):
            sim.counters["stalled"] += 1
            await self.app(scope, receive, _held(send, faults.stall_seconds))
            return
        await self.app(scope, receive, send)

    def _early_answer(self, path: str) -> Response | None:
        sim, faults = self.sim, self.sim.faults
        if faults.take("rate_limit_next", path) or (
            sim._rate_limit is not None and not sim._rate_limit.allow(path)
        ):
            sim.counters["rate_limited"] += 1
            return sim.rate_limited_response()
        if faults.take("fail_next", path):
            sim.counters["failed"] += 1
            return sim.error_response(faults.fail_status, str(faults.fail_status), "server error")
        if faults.take("malformed_next", path):
            sim.counters["malformed"] += 1
            return HTMLResponse("<html><body><h1>502 Bad Gateway</h1></body></html>")
        return None


def _dated(send: Send, server_time: Clock) -> Send:
    """A `send` stamping the answer with the server clock's `Date` (RFC 9110 IMF-fixdate)."""

    async def dated(message: Message) -> None:
        if message["type"] == "http.response.start":
            stamp = email.utils.formatdate(server_time(), usegmt=True).encode("ascii")
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"date"]
            message = {**message, "headers": [*headers, (b"date", stamp)]}
        await send(message)

    return dated


def _held(send: Send, seconds: float) -> Send:
    """A `send` that holds the answer back: the vendor acted, the answer comes late."""

    async def held(message: Message) -> None:
        if message["type"] == "http.response.start":
            await asyncio.sleep(seconds)
        await send(message)

    return held


async def _discard(message: Message) -> None:
    """A `send` that throws the answer away: the vendor acted, the client never hears."""


async def _drop_connection(send: Send) -> None:
    # An exception after the response started makes the ASGI server close the socket, so
    # the client sees the connection die mid-answer (httpx: RemoteProtocolError).
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"64")]}
    )
    raise ConnectionDropped


# --- serving over real HTTP --------------------------------------------------------------


@dataclass
class ServedApp:
    """An app being served on loopback; `url` has no trailing slash."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)


def start_server(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    lifespan: Literal["on", "off", "auto"] = "off",
) -> ServedApp:
    """Serve `app` over HTTP in a daemon thread; returns once it accepts connections.

    `lifespan="on"` for apps that start work at start-up (the MCP HTTP app does).
    """
    # IPPROTO_TCP: asyncio turns Nagle off only on sockets of that protocol; with Nagle on,
    # an answer whose body goes out in a second write waits 40 ms for the delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    # No uvicorn `Date`: a simulator stamps its own, from its (possibly skewed) clock.
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan=lifespan, date_header=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True, name="sim"
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"the server on {host}:{port} did not start")
        time.sleep(0.01)
    bound_port = sock.getsockname()[1]
    return ServedApp(url=f"http://{host}:{bound_port}", server=server, thread=thread)


@contextlib.contextmanager
def serve(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    lifespan: Literal["on", "off", "auto"] = "off",
) -> Iterator[ServedApp]:
    """`with serve(sim.app) as served: ...` — the app on loopback for the block's duration."""
    served = start_server(app, host=host, port=port, lifespan=lifespan)
    try:
        yield served
    finally:
        served.stop()


JsonDict = dict[str, Any]
Handler = Callable[[Request], Awaitable[Response]]
State = MutableMapping[str, Any]
