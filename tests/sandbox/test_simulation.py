"""The shared simulator machinery, driven over real HTTP by the shared transport."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tools.errors import (
    MalformedResponseError,
    RateLimitedError,
    ServerError,
    VendorAPIError,
    VendorUnavailableError,
)
from tools.sandbox.simulation import ServedApp, Simulator, serve
from tools.transport import (
    Endpoint,
    LocalRateLimiter,
    RetryPolicy,
    VendorTransport,
    read_json,
)

NO_WAIT = RetryPolicy(attempts=4, wait_initial=0, wait_max=0, wait_jitter=0, timeout=10)
WRITE = Endpoint("write", "POST", "/things", idempotent=False)
UPSERT = Endpoint("upsert", "POST", "/things", idempotent=True)


class EchoSimulator(Simulator):
    """Stores what it is sent; answers errors as `{"error": code}`."""

    vendor = "echo"

    def __init__(self, rate_limit: float | None = None) -> None:
        super().__init__(rate_limit=rate_limit)
        self.things: list[object] = []

    def routes(self) -> list[BaseRoute]:
        return [Route("/things", self._create, methods=["POST"])]

    async def _create(self, request: Request) -> Response:
        self.things.append(await request.json())
        return JSONResponse({"count": len(self.things)})

    def error_response(self, status: int, code: str, message: str) -> Response:
        return JSONResponse({"error": code, "message": message}, status_code=status)


def check_answer(response: httpx.Response, endpoint: Endpoint) -> None:
    body = read_json(response, vendor="echo", operation=endpoint.name)
    if response.is_success:
        return
    kind = {429: "rate_limited", 400: "invalid"}.get(response.status_code, "server")
    raise VendorAPIError.build(
        kind=kind,
        vendor="echo",
        operation=endpoint.name,
        http_status=response.status_code,
        code=str(body["error"]),
        message=body["message"],
    )


@pytest.fixture
def sim() -> EchoSimulator:
    return EchoSimulator()


@pytest.fixture
def served(sim: EchoSimulator) -> Iterator[ServedApp]:
    with serve(sim.app) as served:
        yield served


def make_transport(url: str, rate: float = 1000) -> VendorTransport:
    return VendorTransport(
        vendor="echo",
        base_url=url,
        auth=None,
        check_answer=check_answer,
        rate_limiter=LocalRateLimiter(rate),
        retry=NO_WAIT,
        timeout=5,
    )


async def test_fail_burst_then_success_retries_an_idempotent_call(
    sim: EchoSimulator, served: ServedApp
) -> None:
    sim.faults.fail_next = 2
    transport = make_transport(served.url)
    response = await transport.request(UPSERT, json={"n": 1})
    await transport.aclose()
    assert response.json() == {"count": 1}
    assert sim.counters["failed"] == 2


async def test_a_5xx_is_not_retried_for_a_non_idempotent_call(
    sim: EchoSimulator, served: ServedApp
) -> None:
    sim.faults.fail_next = 1
    transport = make_transport(served.url)
    with pytest.raises(ServerError):
        await transport.request(WRITE, json={"n": 1})
    await transport.aclose()
    assert sim.counters["requests"] == 1


async def test_rate_limit_answers_are_retried_even_for_writes(
    sim: EchoSimulator, served: ServedApp
) -> None:
    sim.faults.rate_limit_next = 2
    transport = make_transport(served.url)
    await transport.request(WRITE, json={"n": 1})
    await transport.aclose()
    assert sim.counters["rate_limited"] == 2
    assert len(sim.things) == 1


async def test_rate_limit_retries_are_bounded(sim: EchoSimulator, served: ServedApp) -> None:
    sim.faults.rate_limit_next = 10
    transport = make_transport(served.url)
    with pytest.raises(RateLimitedError):
        await transport.request(WRITE, json={"n": 1})
    await transport.aclose()
    assert sim.counters["requests"] == NO_WAIT.attempts


async def test_a_drop_after_processing_is_an_unknown_outcome(
    sim: EchoSimulator, served: ServedApp
) -> None:
    sim.faults.drop_next = 1
    sim.faults.drop_after_processing = True
    transport = make_transport(served.url)
    with pytest.raises(VendorUnavailableError) as caught:
        await transport.request(WRITE, json={"n": 1})
    assert caught.value.request_sent is True
    assert len(sim.things) == 1  # the vendor acted; the client could not know
    await transport.request(UPSERT, json={"n": 2})  # the connection pool recovers
    await transport.aclose()


async def test_malformed_answer_is_a_clear_error(sim: EchoSimulator, served: ServedApp) -> None:
    sim.faults.malformed_next = 1
    transport = make_transport(served.url)
    with pytest.raises(MalformedResponseError, match="not JSON"):
        await transport.request(WRITE, json={"n": 1})
    await transport.aclose()


async def test_connection_refused_never_reached_the_vendor() -> None:
    with serve(EchoSimulator().app) as served:
        url = served.url
    transport = make_transport(url)
    with pytest.raises(VendorUnavailableError) as caught:
        await transport.request(WRITE, json={"n": 1})
    await transport.aclose()
    assert caught.value.request_sent is False


async def test_simulator_rate_limit_refuses_a_burst_and_client_limit_avoids_it() -> None:
    sim = EchoSimulator(rate_limit=5)
    with serve(sim.app) as served:
        burst = make_transport(served.url, rate=1000)
        refused = 0
        for n in range(8):
            try:
                await burst._send_once(WRITE, None, b'{"n":%d}' % n, {})
            except RateLimitedError:
                refused += 1
        await burst.aclose()
        assert refused == 3


async def test_faults_can_be_switched_over_http(sim: EchoSimulator, served: ServedApp) -> None:
    async with httpx.AsyncClient(base_url=served.url) as client:
        answer = await client.put("/__sandbox__/faults", json={"fail_next": 1, "path": "/things"})
        assert answer.json()["faults"]["fail_next"] == 1
        bad = await client.put("/__sandbox__/faults", json={"fail_next": -1})
        assert bad.status_code == 400
    assert sim.faults.fail_next == 1
