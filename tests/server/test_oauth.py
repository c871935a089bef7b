"""`/mcp` as an OAuth 2.1 resource server: JWT access tokens, scopes, protected-resource metadata.

Tokens come from a real authorization server (oidc-provider, on loopback) and from an issuer
of the tests' own that mints every kind of bad token; the MCP server is the whole HTTP app
(in this process, or a real `crmops mcp --http`), driven by a real MCP client.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from pydantic import SecretStr
from typer.testing import CliRunner

from server.cli import app as cli_app
from server.http_app import build_http_app
from server.identity import SCOPES, tool_scope
from server.mcp_server import TOOL_NAMES, build_server
from server.oauth import JwtVerifier, OAuthConfig, claim_strings, metadata_urls, token_scopes
from tests.sandbox_fixtures import Sandbox
from tests.server.authorization_server import (
    MintingIssuer,
    OAuthClient,
    SigningKey,
    hmac_signed_with,
    serve_minting_issuer,
    start_oidc_provider,
    tampered,
    unsigned,
)
from tests.server.mcp_http import INITIALIZE, MCP_HEADERS
from tools.errors import ConfigurationError
from tools.exit_codes import EXIT_CONFIG
from tools.identity import Principal
from tools.sandbox.simulation import serve
from tools.services import Services
from tools.settings import CrmopsSettings, Settings
from tools.table import TOOLS

AUDIENCE = "https://crmops.example.com/mcp"
METADATA_URL = "https://crmops.example.com/.well-known/oauth-protected-resource/mcp"
STATIC_TOKEN = "static-token-5b0f3c9e8d7a-1c2e4a6b8d0f"
READ_ONLY_TOOLS = sorted(row.name for row in TOOLS if row.read_only)
WAIT = 30
ROOT = Path(__file__).parents[2]


# --- the app in this process ---------------------------------------------------------------


@dataclass
class Refused:
    """What the `on_refused` hook was told."""

    calls: list[tuple[Principal, str, str]] = field(default_factory=list)

    async def __call__(self, principal: Principal, tool: str, arguments: Any, reason: str) -> None:
        self.calls.append((principal, tool, reason))


@contextmanager
def serve_oauth_app(
    settings: Settings,
    issuer: str,
    *,
    static_token: str | None = None,
    refused: Refused | None = None,
    verifier: JwtVerifier | None = None,
) -> Iterator[str]:
    """The whole HTTP app accepting `issuer`'s tokens for AUDIENCE, served on loopback."""
    config = OAuthConfig(issuer=issuer, audience=AUDIENCE)
    app = build_http_app(
        build_server(settings),
        token=SecretStr(static_token) if static_token else None,
        host="127.0.0.1",
        oauth=config,
        verifier=verifier,
        on_refused=refused,
    )
    with serve(app, lifespan="on") as served:
        yield served.url


@pytest.fixture
def issuer() -> Iterator[MintingIssuer]:
    with serve_minting_issuer() as running:
        yield running


@pytest.fixture
def refused() -> Refused:
    return Refused()


@pytest.fixture
def mcp_url(settings: Settings, issuer: MintingIssuer, refused: Refused) -> Iterator[str]:
    with serve_oauth_app(
        settings, issuer.issuer, static_token=STATIC_TOKEN, refused=refused
    ) as url:
        yield url


def _post(url: str, token: str | None, body: Any = INITIALIZE) -> httpx.Response:
    headers = dict(MCP_HEADERS)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    with httpx.Client(timeout=WAIT) as http:
        return http.post(f"{url}/mcp", json=body, headers=headers)


def _call(tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    }


@asynccontextmanager
async def _session(url: str, token: str) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=WAIT) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client,
    ):
        yield client


def _challenge(answer: httpx.Response) -> dict[str, str]:
    """The parameters of a `WWW-Authenticate: Bearer k="v", ...` challenge."""
    scheme, _, rest = answer.headers["WWW-Authenticate"].partition(" ")
    assert scheme == "Bearer"
    parameters = {}
    for part in rest.split('", '):
        key, _, value = part.partition("=")
        parameters[key.strip()] = value.strip().strip('"')
    return parameters


def _assert_no_token_logged(caplog: pytest.LogCaptureFixture, *tokens: str) -> None:
    text = caplog.text + "".join(record.getMessage() for record in caplog.records)
    for token in tokens:
        for part in token.split("."):
            if len(part) > 8:
                assert part not in text


# --- accepted tokens -------------------------------------------------------------------------


async def test_a_valid_token_lists_and_calls_every_tool(
    mcp_url: str, issuer: MintingIssuer, sandbox: Sandbox
) -> None:
    sandbox.xiaolanben.seed()
    with anyio.fail_after(WAIT):
        async with _session(mcp_url, issuer.mint(aud=AUDIENCE)) as client:
            tools = await client.list_tools()
            staff = await client.call_tool("list_staff", {"limit": 2})
    assert sorted(tool.name for tool in tools.tools) == sorted(TOOL_NAMES)
    assert not staff.is_error


async def test_an_es256_token_is_accepted(mcp_url: str, issuer: MintingIssuer) -> None:
    answer = _post(mcp_url, issuer.mint(key=issuer.keys[1], aud=AUDIENCE))
    assert answer.status_code == 200


async def test_a_read_token_sees_and_calls_only_the_read_tools(
    mcp_url: str, issuer: MintingIssuer, refused: Refused
) -> None:
    token = issuer.mint(aud=AUDIENCE, scope="crmops:read")
    with anyio.fail_after(WAIT):
        async with _session(mcp_url, token) as client:
            tools = await client.list_tools()
            lookup = await client.call_tool("lookup_error_code", {"code": "invalid_client"})
    assert sorted(tool.name for tool in tools.tools) == READ_ONLY_TOOLS
    assert not lookup.is_error
    assert refused.calls == []


def test_the_static_token_still_works_beside_oauth(mcp_url: str) -> None:
    assert _post(mcp_url, STATIC_TOKEN).status_code == 200


async def test_the_static_token_sees_every_tool(mcp_url: str) -> None:
    with anyio.fail_after(WAIT):
        async with _session(mcp_url, STATIC_TOKEN) as client:
            tools = await client.list_tools()
    assert sorted(tool.name for tool in tools.tools) == sorted(TOOL_NAMES)


# --- refused tokens --------------------------------------------------------------------------


def _bad_tokens(issuer: MintingIssuer) -> dict[str, str]:
    """Every kind of token that must be refused, by what is wrong with it."""
    now = int(time.time())
    valid = issuer.mint(aud=AUDIENCE)
    rsa_key = issuer.keys[0]
    return {
        "expired": issuer.mint(aud=AUDIENCE, iat=now - 900, nbf=now - 900, exp=now - 120),
        "not yet valid": issuer.mint(aud=AUDIENCE, nbf=now + 600, exp=now + 900),
        "wrong issuer": issuer.mint(aud=AUDIENCE, iss="https://evil.example"),
        "wrong audience": issuer.mint(aud="https://other.example.com/mcp"),
        "no audience": issuer.mint(aud=None),
        "no expiry": issuer.mint(aud=AUDIENCE, exp=None),
        "no subject": issuer.mint(aud=AUDIENCE, sub=None),
        "unknown kid": issuer.mint(key=SigningKey.rsa(), aud=AUDIENCE),
        "alg none": unsigned(issuer.claims(aud=AUDIENCE), kid=rsa_key.kid),
        "HS256 with the public key": hmac_signed_with(
            rsa_key.public_pem(), issuer.claims(aud=AUDIENCE), kid=rsa_key.kid
        ),
        "tampered payload": tampered(valid, sub="admin"),
        "another key's kid": issuer.mint(
            key=SigningKey.rsa(), aud=AUDIENCE, headers={"kid": rsa_key.kid}
        ),
        "ES256 header on an RSA key": issuer.mint(
            key=issuer.keys[1], aud=AUDIENCE, headers={"kid": rsa_key.kid}
        ),
        "not a JWT": "not-a-jwt-at-all-0123456789",
    }


BAD_TOKENS = [
    "expired", "not yet valid", "wrong issuer", "wrong audience", "no audience", "no expiry",
    "no subject", "unknown kid", "alg none", "HS256 with the public key", "tampered payload",
    "another key's kid", "ES256 header on an RSA key", "not a JWT",
]  # fmt: skip


@pytest.mark.parametrize("kind", BAD_TOKENS)
def test_a_bad_token_is_refused_with_invalid_token(
    mcp_url: str, issuer: MintingIssuer, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    token = _bad_tokens(issuer)[kind]
    caplog.set_level(logging.DEBUG)

    answer = _post(mcp_url, token)

    assert answer.status_code == 401, kind
    challenge = _challenge(answer)
    assert challenge["error"] == "invalid_token"
    assert challenge["resource_metadata"] == METADATA_URL
    assert answer.json()["error"] == "invalid_token"
    refusals = [r for r in caplog.records if r.getMessage().startswith("refused a request")]
    assert len(refusals) == 1
    _assert_no_token_logged(caplog, token)
    assert token not in answer.text


def test_the_reasons_say_what_is_wrong(mcp_url: str, issuer: MintingIssuer) -> None:
    tokens = _bad_tokens(issuer)
    reasons = {
        kind: _challenge(_post(mcp_url, tokens[kind]))["error_description"]
        for kind in ("expired", "not yet valid", "wrong issuer", "wrong audience", "alg none")
    }
    assert "expired" in reasons["expired"]
    assert "not valid yet" in reasons["not yet valid"]
    assert "issuer" in reasons["wrong issuer"]
    assert "audience" in reasons["wrong audience"]
    assert "RS256, ES256" in reasons["alg none"]


def test_a_small_clock_skew_is_tolerated(mcp_url: str, issuer: MintingIssuer) -> None:
    now = int(time.time())
    answer = _post(mcp_url, issuer.mint(aud=AUDIENCE, nbf=now + 10, exp=now - 10 + 300))
    assert answer.status_code == 200
    just_expired = issuer.mint(aud=AUDIENCE, iat=now - 300, nbf=now - 300, exp=now - 10)
    assert _post(mcp_url, just_expired).status_code == 200


def test_no_token_gets_a_challenge_without_an_error_code(
    mcp_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    answer = _post(mcp_url, None)
    assert answer.status_code == 401
    assert _challenge(answer) == {"realm": "crmops", "resource_metadata": METADATA_URL}
    assert sum(r.getMessage().startswith("refused a request") for r in caplog.records) == 1


# --- scopes ----------------------------------------------------------------------------------


WRITES: dict[str, dict[str, Any]] = {
    "import_customer": {"vendor": "xiaolanben", "records": [], "dry_run": True},
    "create_ticket": {"subject": "s", "message": "m"},
}


@pytest.mark.parametrize("tool", sorted(WRITES))
def test_a_write_without_its_scope_is_403_and_reported(
    mcp_url: str,
    issuer: MintingIssuer,
    refused: Refused,
    tool: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    arguments, scope = WRITES[tool], tool_scope(tool)
    token = issuer.mint(aud=AUDIENCE, scope="crmops:read")

    answer = _post(mcp_url, token, _call(tool, arguments))

    assert answer.status_code == 403
    challenge = _challenge(answer)
    assert challenge["error"] == "insufficient_scope"
    assert challenge["scope"] == scope
    assert challenge["resource_metadata"] == METADATA_URL
    [(principal, refused_tool, reason)] = refused.calls
    assert (principal.subject, principal.email, refused_tool) == (
        "248289761001",
        "ana@example.com",
        tool,
    )
    assert principal.groups == frozenset({"support"})
    assert scope in reason
    _assert_no_token_logged(caplog, token)


def test_a_read_tool_needs_the_read_scope(
    mcp_url: str, issuer: MintingIssuer, refused: Refused
) -> None:
    token = issuer.mint(aud=AUDIENCE, scope="crmops:import")
    answer = _post(mcp_url, token, _call("lookup_error_code", {"code": "502"}))
    assert answer.status_code == 403
    assert _challenge(answer)["scope"] == "crmops:read"
    assert refused.calls == []  # a refused read is not a write: nothing to audit


def test_scopes_in_an_scp_list_count(mcp_url: str, issuer: MintingIssuer) -> None:
    token = issuer.mint(aud=AUDIENCE, scope=None, scp=["crmops:read"])
    assert _post(mcp_url, token, _call("lookup_error_code", {"code": "502"})).status_code == 200


def test_every_tool_has_one_of_the_published_scopes() -> None:
    assert {tool_scope(row.name) for row in TOOLS} == set(SCOPES)
    assert tool_scope("import_customer") == "crmops:import"
    assert tool_scope("create_ticket") == "crmops:ticket"


# --- keys ------------------------------------------------------------------------------------


def test_a_rotated_key_is_fetched_once_and_a_flood_of_kids_is_not(
    mcp_url: str, issuer: MintingIssuer
) -> None:
    assert _post(mcp_url, issuer.mint(aud=AUDIENCE)).status_code == 200
    assert issuer.jwks_fetches == 1

    new_key = issuer.rotate()
    assert _post(mcp_url, issuer.mint(key=new_key, aud=AUDIENCE)).status_code == 200
    assert issuer.jwks_fetches == 2  # refetched once for the unknown kid

    stranger = SigningKey.rsa()
    for _ in range(20):
        forged = issuer.mint(key=stranger, aud=AUDIENCE, headers={"kid": uuid.uuid4().hex})
        assert _post(mcp_url, forged).status_code == 401
    assert issuer.jwks_fetches == 2  # refetches for unknown kids are rate-limited
    assert _post(mcp_url, issuer.mint(aud=AUDIENCE)).status_code == 200


def test_an_unreachable_issuer_is_503_not_401(settings: Settings) -> None:
    with serve_minting_issuer() as gone:
        issuer = gone.issuer
        token = gone.mint(aud=AUDIENCE)
    with serve_oauth_app(settings, issuer) as url:
        answer = _post(url, token)
    assert answer.status_code == 503
    assert "Retry-After" in answer.headers


def test_an_issuer_whose_metadata_names_another_issuer_is_not_trusted(settings: Settings) -> None:
    with serve_minting_issuer() as issuer:
        configured = issuer.issuer
        token = issuer.mint(aud=AUDIENCE)
        issuer.issuer = "https://impostor.example"  # what its metadata says from now on
        with serve_oauth_app(settings, configured) as url:
            answer = _post(url, token)
    assert answer.status_code == 503


async def test_the_keys_held_outlive_an_issuer_gone_away() -> None:
    with serve_minting_issuer() as issuer:
        verifier = JwtVerifier(OAuthConfig(issuer.issuer, AUDIENCE), jwks_ttl=0)
        token = issuer.mint(aud=AUDIENCE)
        assert (await verifier.verify(token)).subject == "248289761001"
    # The JWKS is stale at once (ttl 0) and its issuer unreachable: the key held still verifies.
    assert (await verifier.verify(token)).subject == "248289761001"
    assert await verifier.verify_token(tampered(token, sub="admin")) is None


def test_groups_and_scopes_are_read_from_the_claims_idps_use() -> None:
    claims = {
        "realm_access": {"roles": ["crm-ops", 7]},
        "https://example.com/groups": ["a"],
        "scp": "crmops:read crmops:ticket",
    }
    assert claim_strings(claims, "realm_access.roles") == ["crm-ops"]
    assert claim_strings(claims, "https://example.com/groups") == ["a"]
    assert claim_strings(claims, "groups") == []
    assert token_scopes(claims) == ["crmops:read", "crmops:ticket"]
    assert token_scopes({"scp": ["crmops:read"]}) == ["crmops:read"]
    assert token_scopes({}) == []


def test_metadata_urls_follow_the_mcp_spec_order() -> None:
    assert metadata_urls("https://idp.example.com") == [
        "https://idp.example.com/.well-known/oauth-authorization-server",
        "https://idp.example.com/.well-known/openid-configuration",
    ]
    assert metadata_urls("https://kc.example.com/realms/acme") == [
        "https://kc.example.com/.well-known/oauth-authorization-server/realms/acme",
        "https://kc.example.com/.well-known/openid-configuration/realms/acme",
        "https://kc.example.com/realms/acme/.well-known/openid-configuration",
    ]


# --- protected-resource metadata -------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"]
)
def test_the_protected_resource_metadata_is_published(
    mcp_url: str, issuer: MintingIssuer, path: str
) -> None:
    answer = httpx.get(f"{mcp_url}{path}", timeout=WAIT)
    assert answer.status_code == 200
    metadata = answer.json()
    assert metadata["resource"] == AUDIENCE
    assert metadata["authorization_servers"] == [issuer.issuer]
    assert metadata["scopes_supported"] == list(SCOPES)
    assert metadata["bearer_methods_supported"] == ["header"]


@pytest.mark.parametrize(
    "path",
    [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ],
)
def test_without_oauth_the_well_known_paths_are_a_quiet_404(
    settings: Settings, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = build_http_app(build_server(settings), token=SecretStr(STATIC_TOKEN), host="127.0.0.1")
    with serve(app, lifespan="on") as served:
        caplog.clear()
        answer = httpx.get(f"{served.url}{path}", timeout=WAIT)
    assert answer.status_code == 404
    assert "WWW-Authenticate" not in answer.headers
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


# --- configuration ---------------------------------------------------------------------------


def test_an_issuer_needs_an_audience() -> None:
    with pytest.raises(ConfigurationError, match="CRMOPS_OAUTH_AUDIENCE"):
        OAuthConfig.of(CrmopsSettings(oauth_issuer="https://idp.example.com"))


@pytest.mark.parametrize(
    ("issuer", "audience", "jwks"),
    [
        ("http://idp.example.com", AUDIENCE, None),
        ("https://idp.example.com", AUDIENCE, "http://idp.example.com/jwks"),
        ("https://idp.example.com", "api://crmops", None),
    ],
)
def test_insecure_or_malformed_urls_are_refused(
    issuer: str, audience: str, jwks: str | None
) -> None:
    settings = CrmopsSettings(oauth_issuer=issuer, oauth_audience=audience, oauth_jwks_url=jwks)
    with pytest.raises(ConfigurationError):
        OAuthConfig.of(settings)


def test_no_issuer_no_oauth() -> None:
    assert OAuthConfig.of(CrmopsSettings()) is None


def test_http_refuses_to_start_with_an_issuer_but_no_audience(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRMOPS_OAUTH_ISSUER", "https://idp.example.com")
    result = CliRunner().invoke(cli_app, ["mcp", "--http", "--port", "8765"])
    assert result.exit_code == EXIT_CONFIG
    assert "CRMOPS_OAUTH_AUDIENCE" in result.stderr
    assert "Traceback" not in result.stderr


def test_http_without_token_or_issuer_names_both() -> None:
    result = CliRunner().invoke(cli_app, ["mcp", "--http", "--port", "8765"])
    assert result.exit_code == EXIT_CONFIG
    assert "CRMOPS_MCP_TOKEN" in result.stderr
    assert "CRMOPS_OAUTH_ISSUER" in result.stderr


# --- a real `crmops mcp --http` --------------------------------------------------------------


@contextmanager
def crmops_mcp_http(env: dict[str, str], directory: Path) -> Iterator[tuple[str, Path]]:
    """A real `crmops mcp --http` process with `env`; yields its URL and its stderr file."""
    port = _free_port()
    stderr = directory / "mcp-stderr.log"
    command = [sys.executable, "-m", "server", "mcp", "--http", "--port", str(port)]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    with stderr.open("wb") as err:
        process = subprocess.Popen(
            command, env=full_env, cwd=directory, stdout=subprocess.DEVNULL, stderr=err
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process, stderr)
        yield url, stderr
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_up(url: str, process: subprocess.Popen[bytes], stderr: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, stderr.read_text()
        try:
            httpx.get(f"{url}/healthz", timeout=5)
        except httpx.TransportError:
            assert time.monotonic() < deadline, "crmops mcp --http did not start"
            time.sleep(0.1)
        else:
            return


async def _recent_audit() -> list[Any]:
    async with Services(Settings.load(env_file=None)) as services:
        return await services.store.audit.recent()


def _assert_not_in(path: Path, tokens: Sequence[str]) -> None:
    text = path.read_text(errors="replace")
    for token in tokens:
        for part in token.split("."):
            if len(part) > 8:
                assert part not in text, "a token reached the server's log"


async def test_a_real_server_audits_a_write_refused_for_its_scope(
    sandbox: Sandbox, issuer: MintingIssuer, tmp_path: Path
) -> None:
    env = {**sandbox.env(), "CRMOPS_OAUTH_ISSUER": issuer.issuer, "CRMOPS_OAUTH_AUDIENCE": AUDIENCE}
    reader = issuer.mint(aud=AUDIENCE, scope="crmops:read")
    with crmops_mcp_http(env, tmp_path) as (url, stderr):
        answer = await anyio.to_thread.run_sync(
            lambda: _post(url, reader, _call("create_ticket", {"subject": "s", "message": "m"}))
        )
    assert answer.status_code == 403
    [entry] = [e for e in await _recent_audit() if e.operation == "create_ticket"]
    assert entry.outcome == "failed"
    assert (entry.error or "").startswith("refused")
    assert "248289761001" in entry.actor.name
    _assert_not_in(stderr, [reader])


FULL = OAuthClient("crmops-full", "full-secret-8c1d7e2b9a4f6035", " ".join(SCOPES))
READER = OAuthClient("crmops-reader", "reader-secret-3f9a1c7e5b2d8046", "crmops:read")


async def test_tokens_from_a_real_authorization_server(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.xiaolanben.seed()
    with start_oidc_provider([FULL, READER]) as provider:
        full = provider.token(FULL, scope=" ".join(SCOPES), resource=AUDIENCE)
        reader = provider.token(READER, scope="crmops:read", resource=AUDIENCE)
        other = provider.token(FULL, scope="crmops:read", resource="https://other.example.com/mcp")
        env = {
            **sandbox.env(),
            "CRMOPS_OAUTH_ISSUER": provider.issuer,
            "CRMOPS_OAUTH_AUDIENCE": AUDIENCE,
        }
        with crmops_mcp_http(env, tmp_path) as (url, stderr):
            with anyio.fail_after(WAIT):
                async with _session(url, full) as client:
                    every = await client.list_tools()
                    staff = await client.call_tool("list_staff", {"limit": 2})
                    ticket = await client.call_tool(
                        "create_ticket", {"subject": "Printer on fire", "message": "Help"}
                    )
                async with _session(url, reader) as client:
                    some = await client.list_tools()
            refused, foreign, metadata = await anyio.to_thread.run_sync(
                lambda: (
                    _post(
                        url,
                        reader,
                        _call("import_customer", {"vendor": "xiaolanben", "records": []}),
                    ),
                    _post(url, other),
                    httpx.get(f"{url}/.well-known/oauth-protected-resource/mcp", timeout=WAIT),
                )
            )
    assert sorted(tool.name for tool in every.tools) == sorted(TOOL_NAMES)
    assert not staff.is_error
    assert not ticket.is_error
    [written] = [e for e in await _recent_audit() if e.operation == "create_ticket"]
    assert written.outcome == "ok"
    assert FULL.client_id in written.actor.name  # the token's sub (client_credentials: the client)
    assert provider.issuer in written.actor.name
    assert sorted(tool.name for tool in some.tools) == READ_ONLY_TOOLS
    assert refused.status_code == 403
    assert _challenge(refused)["error"] == "insufficient_scope"
    assert _challenge(refused)["scope"] == "crmops:import"
    assert foreign.status_code == 401
    assert _challenge(foreign)["error"] == "invalid_token"
    assert metadata.json()["authorization_servers"] == [provider.issuer]
    _assert_not_in(stderr, [full, reader, other])
    assert "Traceback" not in stderr.read_text()
    assert metadata.json()["resource"] == AUDIENCE
