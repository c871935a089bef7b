"""A round-robin reverse proxy with no affinity, as a load balancer without sticky sessions::

    with serve_round_robin([replica_a_url, replica_b_url]) as proxy:
        client_url = f"{proxy.url}/mcp"
        ...
        proxy.served            # [Forwarded(upstream=0, method="initialize", status=200), ...]

Each HTTP request (not each connection: clients keep connections alive) goes to the next
upstream in turn, whatever it carries (an `Mcp-Session-Id` too). The answer is streamed back
as it comes, so a tool call's SSE stream (progress notifications, then the result) reaches
the client event by event. The client's `Host` is kept and `X-Forwarded-For` added, as a
proxy in front of `crmops mcp --http` does.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field

import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tools.sandbox.simulation import serve

# RFC 9110 7.6.1: meaningful for one connection only, never forwarded.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
METHODS = ["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"]


@dataclass(frozen=True)
class Forwarded:
    """One request the proxy passed on: to which upstream (its index), the JSON-RPC method
    of its body (None for a GET, a DELETE, a response or a notification batch), the answer's
    status."""

    upstream: int
    method: str | None
    status: int


@dataclass
class RoundRobin:
    """The proxy's state: the upstreams, whose turn it is, and what it has forwarded."""

    upstreams: Sequence[str]
    served: list[Forwarded] = field(default_factory=list)
    url: str = ""
    _turns: Iterator[int] = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._turns = itertools.cycle(range(len(self.upstreams)))

    def next_upstream(self) -> int:
        with self._lock:
            return next(self._turns)

    def upstreams_of(self, method: str) -> list[int]:
        """The upstream of each forwarded request of JSON-RPC `method`, in order."""
        return [each.upstream for each in self.served if each.method == method]

    def app(self) -> Starlette:
        """The proxy as an ASGI app (its upstream client lives with the app's lifespan)."""
        client: httpx.AsyncClient | None = None

        @asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            nonlocal client
            # No read timeout: an SSE answer may stay quiet while a long tool call runs.
            async with httpx.AsyncClient(timeout=httpx.Timeout(30, read=None)) as opened:
                client = opened
                yield

        async def forward(request: Request) -> Response:
            assert client is not None
            index = self.next_upstream()
            body = await request.body()
            upstream = client.build_request(
                request.method,
                self.upstreams[index] + request.url.path,
                params=request.query_params,
                headers=_forwarded_headers(request),
                content=body,
            )
            answer = await client.send(upstream, stream=True)
            self.served.append(Forwarded(index, _method(body), answer.status_code))
            headers = {
                name: value
                for name, value in answer.headers.items()
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length"
            }
            return StreamingResponse(
                answer.aiter_raw(),
                status_code=answer.status_code,
                headers=headers,
                background=BackgroundTask(answer.aclose),
            )

        return Starlette(
            routes=[Route("/{path:path}", forward, methods=METHODS)], lifespan=lifespan
        )


def _forwarded_headers(request: Request) -> dict[str, str]:
    headers = {
        name: value
        for name, value in request.headers.items()
        if name.lower() not in HOP_BY_HOP and name.lower() != "content-length"
    }
    client = request.client.host if request.client else "unknown"
    forwarded_for = request.headers.get("x-forwarded-for")
    headers["x-forwarded-for"] = f"{forwarded_for}, {client}" if forwarded_for else client
    return headers


def _method(body: bytes) -> str | None:
    try:
        message = json.loads(body)
    except ValueError:
        return None
    method = message.get("method") if isinstance(message, dict) else None
    return method if isinstance(method, str) else None


@contextmanager
def serve_round_robin(upstreams: Sequence[str]) -> Iterator[RoundRobin]:
    """The proxy in front of `upstreams` (base URLs), on a free loopback port."""
    proxy = RoundRobin(upstreams)
    with serve(proxy.app(), lifespan="on") as served:
        proxy.url = served.url
        yield proxy
