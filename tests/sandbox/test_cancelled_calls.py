"""A call cancelled while a simulator still holds it (issue 15): the caller hangs up before
its body is read, and the simulator logs nothing (it used to log a `ClientDisconnect`
traceback as "Exception in ASGI application"). Real vendor clients over loopback HTTP."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator

import pytest

from tools.customers import import_customer, query_customer
from tools.sandbox.simulation import Simulator
from tools.sandbox.stack import Sandbox, start_sandbox
from tools.services import Services
from tools.staff import list_staff
from tools.tickets import create_ticket, list_tickets
from tools.transport import RetryPolicy

LATENCY = 0.5
"""What the simulator waits before it reads the request: the caller gives up first."""
GIVE_UP = 0.15
Call = Callable[[Services], Awaitable[object]]
CALLS: dict[str, tuple[str, Call]] = {
    "xiaolanben import": (
        "xiaolanben",
        lambda s: import_customer(s, vendor="xiaolanben", customers=[{"customerName": "甲"}]),
    ),
    "xiaolanben staff": ("xiaolanben", list_staff),
    "socialepoch query": ("socialepoch", lambda s: query_customer(s, whatsapp="8613800138000")),
    "socialepoch import": (
        "socialepoch",
        lambda s: import_customer(
            s, vendor="socialepoch", customers=[{"whatsApp": "8613800138009"}]
        ),
    ),
    "bangwo8 ticket": ("bangwo8", lambda s: create_ticket(s, subject="s", message="m")),
    "bangwo8 tickets": ("bangwo8", list_tickets),
}


class Collected(logging.Handler):
    """Every record of the loggers it is attached to."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def server_log() -> Iterator[Collected]:
    """What uvicorn logs for the simulators (its loggers do not reach the root logger)."""
    handler = Collected()
    loggers = [logging.getLogger(name) for name in ("uvicorn", "uvicorn.error", "uvicorn.asgi")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with start_sandbox(seed=True) as running:
        yield running


@pytest.mark.parametrize("name", CALLS)
async def test_a_cancelled_call_leaves_no_traceback_in_the_simulators_log(
    name: str, sandbox: Sandbox, server_log: Collected, no_wait_retry: RetryPolicy
) -> None:
    vendor, call = CALLS[name]
    simulator: Simulator = getattr(sandbox, vendor)
    simulator.faults.latency = LATENCY
    async with Services(sandbox.settings(), retry=no_wait_retry) as services:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(call(services), GIVE_UP)
        for _ in range(100):  # the simulator reads the body once its latency is over
            if simulator.counters["client_gone"]:
                break
            await asyncio.sleep(0.05)
        assert simulator.counters["client_gone"] >= 1
        simulator.faults.latency = 0
        # The simulator serves the next call as before.
        await call(services)
    problems = [r for r in server_log.records if r.levelno >= logging.WARNING or r.exc_info]
    assert not problems, [r.getMessage() for r in problems]
