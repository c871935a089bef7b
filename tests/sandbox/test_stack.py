"""The sandbox stack: what `crmops sandbox --env` hands a user, and that it works as printed."""

from __future__ import annotations

import base64

import httpx

from tools.sandbox.stack import start_sandbox


def test_the_environment_carries_both_bangwo8_sign_ins_and_basic_auth_works() -> None:
    """004's own sample client signs in with Basic account:password, so --env prints those
    as well as the OAuth client crmops prefers; the printed pair is the one the simulator takes."""
    with start_sandbox() as sandbox:
        env = sandbox.env()
        assert {"BANGWO8_CLIENT_ID", "BANGWO8_CLIENT_SECRET"} <= env.keys()
        pair = f"{env['BANGWO8_ACCOUNT']}:{env['BANGWO8_PASSWORD']}".encode()
        basic = {"Authorization": "Basic " + base64.b64encode(pair).decode()}
        answer = httpx.get(f"{env['BANGWO8_BASE_URL']}/api/v1/tickets.json", headers=basic)
        wrong = httpx.get(
            f"{env['BANGWO8_BASE_URL']}/api/v1/tickets.json",
            headers={"Authorization": "Basic " + base64.b64encode(b"x:y").decode()},
        )
    assert answer.status_code == 200
    assert wrong.status_code == 401


def test_crmops_itself_keeps_oauth_when_both_are_set() -> None:
    with start_sandbox(seed=False) as sandbox:
        assert sandbox.settings().bangwo8.uses_oauth
