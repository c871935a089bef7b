"""Authorization servers for the OAuth tests, on loopback.

    with start_oidc_provider([FULL, READER]) as provider:   # the real one: oidc-provider (Node)
        token = provider.token(FULL, scope="crmops:read", resource=AUDIENCE)

    with serve_minting_issuer() as issuer:                   # our own keys, for refusals
        token = issuer.mint(aud=AUDIENCE, scope="crmops:read")
        issuer.rotate()                                       # publish a new signing key

`oidc-provider` (OpenID Certified) runs from tests/server/oidc (`npm ci` there; `./dev test`
does it): without Node.js or its packages the test is skipped, saying how to get them,
except under CI (`CI` set), where it fails.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tools.sandbox.simulation import serve

OIDC_DIR = Path(__file__).parent / "oidc"
START_TIMEOUT = 20.0


@dataclass(frozen=True)
class OAuthClient:
    """A client registered with the authorization server (client_credentials grant)."""

    client_id: str
    client_secret: str
    scope: str


# --- oidc-provider -------------------------------------------------------------------------


@dataclass
class OidcProvider:
    """A running oidc-provider; `token(...)` asks it for a JWT access token over HTTP."""

    issuer: str
    process: subprocess.Popen[bytes]

    def token(self, client: OAuthClient, *, scope: str, resource: str) -> str:
        """A client_credentials access token for `resource` (its `aud`) with `scope`."""
        answer = httpx.post(
            f"{self.issuer}/token",
            data={"grant_type": "client_credentials", "scope": scope, "resource": resource},
            auth=(client.client_id, client.client_secret),
            timeout=10,
        )
        answer.raise_for_status()
        token: str = answer.json()["access_token"]
        return token


def node_and_provider() -> tuple[str, Path]:
    """`node` and the launcher script; skips the test (fails under CI) when either Node.js
    or the installed oidc-provider package is missing."""
    node = shutil.which("node")
    installed = (OIDC_DIR / "node_modules" / "oidc-provider" / "package.json").is_file()
    if node is not None and installed:
        return node, OIDC_DIR / "provider.mjs"
    reason = (
        "oidc-provider is not installed: install Node.js 20+ and npm, then "
        "`npm ci --prefix tests/server/oidc` (./dev test does it when npm is there)"
        if node is not None
        else "Node.js is not installed: install Node.js 20+ and npm (apt-get install nodejs "
        "npm), then `npm ci --prefix tests/server/oidc` (./dev test does that part)"
    )
    if os.environ.get("CI"):
        pytest.fail(f"CI: {reason}")
    pytest.skip(reason)


@contextmanager
def start_oidc_provider(clients: Sequence[OAuthClient]) -> Iterator[OidcProvider]:
    """oidc-provider on a port the OS picks, knowing `clients`; stopped after the block."""
    node, script = node_and_provider()
    options = {
        "clients": [
            {"client_id": c.client_id, "client_secret": c.client_secret, "scope": c.scope}
            for c in clients
        ]
    }
    process = subprocess.Popen(
        [node, str(script), json.dumps(options)],
        cwd=OIDC_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        issuer = _first_line(process)["issuer"]
        yield OidcProvider(issuer=issuer, process=process)
    finally:
        process.terminate()
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate(timeout=10)


def _first_line(process: subprocess.Popen[bytes]) -> dict[str, Any]:
    """The JSON line the launcher prints once it listens (read with a deadline)."""
    lines: list[bytes] = []
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()))  # type: ignore[union-attr]
    reader.start()
    reader.join(START_TIMEOUT)
    if not lines or not lines[0]:
        process.kill()
        _, err = process.communicate(timeout=10)
        raise AssertionError(f"oidc-provider did not start: {err.decode(errors='replace')}")
    parsed: dict[str, Any] = json.loads(lines[0])
    return parsed


# --- an issuer minting tokens with keys of its own -----------------------------------------


@dataclass
class SigningKey:
    """A private key, its algorithm and its `kid`, and its public half as a JWK."""

    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    algorithm: str
    kid: str = field(default_factory=lambda: uuid.uuid4().hex)

    @classmethod
    def rsa(cls) -> SigningKey:
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256")

    @classmethod
    def ec(cls) -> SigningKey:
        return cls(ec.generate_private_key(ec.SECP256R1()), "ES256")

    def public_jwk(self) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.algorithm)
        jwk: dict[str, Any] = json.loads(algorithm.to_jwk(self.private.public_key()))
        return {**jwk, "kid": self.kid, "use": "sig", "alg": self.algorithm}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@dataclass
class MintingIssuer:
    """An authorization server of the tests' own: RFC 8414 metadata and a JWKS on loopback
    (`jwks_fetches` counts the JWKS requests), and `mint(...)` for any token at all."""

    keys: list[SigningKey] = field(default_factory=lambda: [SigningKey.rsa(), SigningKey.ec()])
    issuer: str = ""
    jwks_fetches: int = 0

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/.well-known/oauth-authorization-server", self._metadata),
                Route("/jwks", self._jwks),
            ]
        )

    async def _metadata(self, _: Request) -> JSONResponse:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
            }
        )

    async def _jwks(self, _: Request) -> JSONResponse:
        self.jwks_fetches += 1
        return JSONResponse({"keys": [key.public_jwk() for key in self.keys]})

    def rotate(self) -> SigningKey:
        """A new RSA signing key, published from now on (the old ones stay)."""
        key = SigningKey.rsa()
        self.keys.append(key)
        return key

    def claims(self, **claims: Any) -> dict[str, Any]:
        """A valid token's claims for now (`None` drops a claim), overridden by `claims`."""
        now = int(time.time())
        base: dict[str, Any] = {
            "iss": self.issuer,
            "sub": "248289761001",
            "aud": "https://crmops.example.com/mcp",
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "scope": "crmops:read crmops:import crmops:ticket",
            "client_id": "test-client",
            "email": "ana@example.com",
            "preferred_username": "ana",
            "groups": ["support"],
        }
        merged = base | claims
        return {name: value for name, value in merged.items() if value is not None}

    def mint(
        self,
        *,
        key: SigningKey | None = None,
        headers: Mapping[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A JWT signed by `key` (the first RSA key by default) with `claims` over a valid set."""
        signer = key or self.keys[0]
        return jwt.encode(
            self.claims(**claims),
            signer.private,
            algorithm=signer.algorithm,
            headers={"kid": signer.kid, "typ": "at+jwt", **(headers or {})},
        )


def unsigned(claims: Mapping[str, Any], *, kid: str) -> str:
    """A token with `alg: none` and no signature."""
    return ".".join(
        [_b64(json.dumps({"alg": "none", "typ": "JWT", "kid": kid})), _b64(json.dumps(claims)), ""]
    )


def hmac_signed_with(secret: bytes, claims: Mapping[str, Any], *, kid: str) -> str:
    """An HS256 token whose HMAC key is `secret` (the algorithm-confusion attack: an RSA
    public key, which anyone has, used as the shared secret). PyJWT refuses to make one."""
    signing_input = ".".join(
        [_b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid})), _b64(json.dumps(claims))]
    )
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def tampered(token: str, **claims: Any) -> str:
    """`token` with its payload changed (`claims` merged in) and its signature kept."""
    header, payload, signature = token.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return ".".join([header, _b64(json.dumps(decoded | claims)), signature])


def _b64(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@contextmanager
def serve_minting_issuer() -> Iterator[MintingIssuer]:
    """A `MintingIssuer` served on loopback, its `issuer` its base URL."""
    issuer = MintingIssuer()
    with serve(issuer.app) as served:
        issuer.issuer = served.url
        yield issuer
