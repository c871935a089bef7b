"""Reliability fixtures: fresh simulators for each test, served on loopback.

Three uvicorn servers start once per module and each test gets new simulators behind them
(`sandbox`), which saves starting and stopping three servers for each of the many rows.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.sandbox_fixtures import services, settings
from tools.sandbox.simulation import ServedApp, start_server
from tools.sandbox.stack import Sandbox, build_simulators

__all__ = ["sandbox", "services", "settings"]


class Swappable:
    """An ASGI app passing every request to `app`, which a test may replace."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "no simulator behind this server"
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def _servers() -> Iterator[list[tuple[Swappable, ServedApp]]]:
    fronts = [Swappable() for _ in range(3)]
    served: list[tuple[Swappable, ServedApp]] = []
    try:
        for front in fronts:
            served.append((front, start_server(front)))
        yield served
    finally:
        for _, each in served:
            each.server.should_exit = True
        for _, each in served:
            each.stop()


@pytest.fixture
def sandbox(_servers: list[tuple[Swappable, ServedApp]]) -> Sandbox:
    """New, empty simulators (sandbox credentials) behind the module's three servers."""
    simulators = build_simulators(seed=False)
    for (front, _), sim in zip(_servers, simulators, strict=True):
        front.app = sim.app
    socialepoch, xiaolanben, bangwo8 = simulators
    return Sandbox(
        socialepoch=socialepoch,
        xiaolanben=xiaolanben,
        bangwo8=bangwo8,
        socialepoch_url=_servers[0][1].url,
        xiaolanben_url=_servers[1][1].url,
        bangwo8_url=_servers[2][1].url,
    )
