"""JWT access tokens from an OAuth 2.1 authorization server, verified for `/mcp`.

    config = OAuthConfig.of(settings.crmops)          # None when CRMOPS_OAUTH_ISSUER is unset
    verifier = JwtVerifier(config)
    access = await verifier.verify(token)             # AccessToken, or TokenRefusedError(reason)
    access = await verifier.verify_token(token)       # the SDK's TokenVerifier: None if refused

The issuer's signing keys come from its JWKS: `CRMOPS_OAUTH_JWKS_URL`, or the `jwks_uri` of
its metadata (RFC 8414 `/.well-known/oauth-authorization-server`, then OpenID Connect
`/.well-known/openid-configuration`, in the order the MCP authorization spec gives), whose
`issuer` must be the configured one. The JWKS is cached for `jwks_ttl` seconds; a token
signed by a key it does not hold (an unknown `kid`: the issuer rotated its keys) makes one
refetch, and refetches for unknown keys happen at most once every `refetch_interval`
seconds, so a flood of made-up `kid`s costs the issuer nothing. An issuer that cannot be
reached is `KeysUnavailableError` (tried again after `retry_after` seconds), not a refusal.

A token is accepted when it is a JWS signed with RS256 or ES256 (never `none`, never an
HMAC algorithm: the algorithm is taken from this list, not from the token) by a key in the
JWKS, and its `iss` is the issuer, its `aud` holds the audience, it has a `sub`, and `exp`
and `nbf` hold with `LEEWAY` seconds of clock skew. PyJWT does the parsing and the checks.
Its scopes are the `scope` claim (RFC 9068, space separated) or `scp` (a list: Entra ID,
Okta); its groups the claim `CRMOPS_OAUTH_GROUPS_CLAIM` names (a list or one string; a
dotted name such as `realm_access.roles` is followed into objects).

`TokenRefusedError.reason` says why in a few fixed words, safe to log: it never quotes the token.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
from mcp.server.auth.provider import AccessToken

from server.identity import GROUPS_CLAIM_KEY
from tools.errors import ConfigurationError
from tools.settings import CrmopsSettings

log = logging.getLogger("crmops.oauth")

ALGORITHMS: tuple[str, ...] = ("RS256", "ES256")
"""The signature algorithms accepted; anything else (`none`, `HS256`, ...) is refused."""
LEEWAY = 30.0
"""Seconds of clock skew allowed on `exp` and `nbf`."""
JWKS_TTL = 3600.0
REFETCH_INTERVAL = 10.0
RETRY_AFTER = 5.0
FETCH_TIMEOUT = 10.0
MAX_DOCUMENT_BYTES = 512 * 1024
"""The largest metadata or JWKS document read from the issuer."""


class TokenRefusedError(Exception):
    """A bearer token that is not a valid access token for this server; `reason` is safe
    to log and to send back (it never quotes the token)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeysUnavailableError(Exception):
    """The issuer's metadata or JWKS cannot be fetched: no token can be checked right now."""


@dataclass(frozen=True)
class OAuthConfig:
    """Which authorization server's tokens `/mcp` accepts, and for which resource."""

    issuer: str
    audience: str
    jwks_url: str | None = None
    groups_claim: str = "groups"

    @classmethod
    def of(cls, settings: CrmopsSettings) -> OAuthConfig | None:
        """The OAuth settings (`CRMOPS_OAUTH_*`); None when no issuer is set.

        `ConfigurationError` for an issuer without an audience, or a URL that is not one:
        the issuer and the JWKS URL must be https (plain http only to loopback), the
        audience an http(s) URL (the public URL of `/mcp`: MCP clients compare the two).
        """
        issuer = (settings.oauth_issuer or "").strip()
        if not issuer:
            return None
        audience = (settings.oauth_audience or "").strip()
        if not audience:
            raise ConfigurationError(
                vendor="crmops",
                missing=["CRMOPS_OAUTH_AUDIENCE"],
                detail="CRMOPS_OAUTH_ISSUER is set, so CRMOPS_OAUTH_AUDIENCE must say which "
                "audience (aud) this server's access tokens carry: its public /mcp URL, "
                "e.g. https://crmops.example.com/mcp",
            )
        jwks_url = (settings.oauth_jwks_url or "").strip() or None
        _require_secure_url("CRMOPS_OAUTH_ISSUER", issuer)
        if jwks_url is not None:
            _require_secure_url("CRMOPS_OAUTH_JWKS_URL", jwks_url)
        parts = urlsplit(audience)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(
                vendor="crmops",
                detail=f"CRMOPS_OAUTH_AUDIENCE must be this server's public /mcp URL, e.g. "
                f"https://crmops.example.com/mcp (MCP clients check it), not {audience!r}",
            )
        return cls(issuer, audience, jwks_url, settings.oauth_groups_claim.strip() or "groups")


def _require_secure_url(name: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
        return
    raise ConfigurationError(
        vendor="crmops",
        detail=f"{name} must be an https:// URL (plain http only to a loopback address), "
        f"not {url!r}",
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def metadata_urls(issuer: str) -> list[str]:
    """Where the issuer's metadata may be, in the order the MCP authorization spec tries:
    RFC 8414 (the well-known path inserted before the issuer's path), then OpenID Connect
    (inserted, then appended, for an issuer with a path such as a Keycloak realm)."""
    parts = urlsplit(issuer)
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    if not path:
        return [
            f"{origin}/.well-known/oauth-authorization-server",
            f"{origin}/.well-known/openid-configuration",
        ]
    return [
        f"{origin}/.well-known/oauth-authorization-server{path}",
        f"{origin}/.well-known/openid-configuration{path}",
        f"{origin}{path}/.well-known/openid-configuration",
    ]


class JwtVerifier:
    """Verifies access tokens against the issuer's JWKS: the SDK's `TokenVerifier`."""

    def __init__(
        self,
        config: OAuthConfig,
        *,
        leeway: float = LEEWAY,
        jwks_ttl: float = JWKS_TTL,
        refetch_interval: float = REFETCH_INTERVAL,
        retry_after: float = RETRY_AFTER,
        timeout: float = FETCH_TIMEOUT,
    ) -> None:
        self.config = config
        self.leeway = leeway
        self.jwks_ttl = jwks_ttl
        self.refetch_interval = refetch_interval
        self.retry_after = retry_after
        self.timeout = timeout
        self._jwks_url = config.jwks_url
        self._keys: list[jwt.PyJWK] = []
        self._fetched_at: float | None = None
        self._refetched_at = float("-inf")
        self._failed_at = float("-inf")
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(issuer={self.config.issuer!r})"

    async def verify_token(self, token: str) -> AccessToken | None:
        """The SDK's `TokenVerifier`: the access token, or None when it is refused."""
        try:
            return await self.verify(token)
        except (TokenRefusedError, KeysUnavailableError):
            return None

    async def verify(self, token: str) -> AccessToken:
        """The verified access token; `TokenRefusedError` (why, in words safe to log) or
        `KeysUnavailableError` (the issuer cannot be reached to fetch its keys)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRefusedError("not a signed JWT") from None
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise TokenRefusedError(
                f"signature algorithm not accepted (only {', '.join(ALGORITHMS)})"
            )
        kid = header.get("kid")
        key = await self._signing_key(kid if isinstance(kid, str) else None, algorithm)
        claims = self._decode(token, key, algorithm)
        return self._access_token(claims)

    async def _signing_key(self, kid: str | None, algorithm: str) -> jwt.PyJWK:
        if self._fetched_at is None:
            await self._refresh(reason="first use")
        elif time.monotonic() - self._fetched_at > self.jwks_ttl:
            # The keys held still verify the tokens they signed: keep them, try again later.
            with contextlib.suppress(KeysUnavailableError):
                await self._refresh(reason="expiry")
        key = self._find(kid, algorithm)
        if key is None and time.monotonic() - self._refetched_at >= self.refetch_interval:
            self._refetched_at = time.monotonic()
            await self._refresh(reason="a token signed by an unknown key")
            key = self._find(kid, algorithm)
        if key is None:
            raise TokenRefusedError("signed by a key the issuer does not publish (unknown kid)")
        return key

    def _find(self, kid: str | None, algorithm: str) -> jwt.PyJWK | None:
        fitting = [key for key in self._keys if key.algorithm_name == algorithm]
        if kid is not None:
            return next((key for key in fitting if key.key_id == kid), None)
        return fitting[0] if len(fitting) == 1 else None  # no kid: only an unambiguous key

    def _decode(self, token: str, key: jwt.PyJWK, algorithm: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud", "sub"], "strict_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRefusedError("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenRefusedError(
                "the token is not valid yet (nbf or iat in the future)"
            ) from None
        except jwt.InvalidAudienceError:
            raise TokenRefusedError("the token is for another audience (aud)") from None
        except jwt.InvalidIssuerError:
            raise TokenRefusedError("the token is from another issuer (iss)") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenRefusedError(f"the token has no {exc.claim} claim") from None
        except jwt.InvalidSignatureError:
            raise TokenRefusedError("the signature does not verify") from None
        except jwt.PyJWTError:
            raise TokenRefusedError("not a valid JWT for this server") from None
        return claims

    def _access_token(self, claims: Mapping[str, Any]) -> AccessToken:
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise TokenRefusedError("the token's sub claim is not a string")
        client_id = claims.get("client_id") or claims.get("azp") or subject
        expires = claims.get("exp")
        return AccessToken(
            token="",  # the bearer itself is not kept with the request
            client_id=str(client_id),
            scopes=token_scopes(claims),
            expires_at=int(expires) if isinstance(expires, int | float) else None,
            resource=self.config.audience,
            subject=subject,
            claims={
                "iss": claims.get("iss"),
                "email": claims.get("email"),
                "preferred_username": claims.get("preferred_username"),
                GROUPS_CLAIM_KEY: claim_strings(claims, self.config.groups_claim),
            },
        )

    async def _refresh(self, *, reason: str) -> None:
        """Fetch the JWKS (discovering its URL first if need be), one fetch at a time."""
        started = time.monotonic()
        async with self._lock:
            if self._fetched_at is not None and self._fetched_at >= started:
                return  # another request fetched it while this one waited
            if time.monotonic() - self._failed_at < self.retry_after:
                raise KeysUnavailableError(f"the issuer {self.config.issuer} could not be reached")
            try:
                async with httpx.AsyncClient(timeout=self.timeout) as http:
                    if self._jwks_url is None:
                        self._jwks_url = await self._discover(http)
                    document = await _fetch_json(http, self._jwks_url)
                keys = _signing_keys(document)
            except KeysUnavailableError as exc:
                self._failed_at = time.monotonic()
                log.warning("cannot fetch the signing keys of %s: %s", self.config.issuer, exc)
                raise
            self._keys = keys
            self._fetched_at = time.monotonic()
            log.info("fetched %d signing key(s) of %s (%s)", len(keys), self.config.issuer, reason)

    async def _discover(self, http: httpx.AsyncClient) -> str:
        for url in metadata_urls(self.config.issuer):
            try:
                metadata = await _fetch_json(http, url)
            except KeysUnavailableError as exc:
                log.info("no issuer metadata at %s: %s", url, exc)
                continue
            if metadata.get("issuer") != self.config.issuer:
                log.warning(
                    "%s names the issuer %r, not CRMOPS_OAUTH_ISSUER %r: ignored",
                    url,
                    metadata.get("issuer"),
                    self.config.issuer,
                )
                continue
            jwks_uri = metadata.get("jwks_uri")
            if isinstance(jwks_uri, str):
                try:
                    _require_secure_url("the issuer's jwks_uri", jwks_uri)
                except ConfigurationError as exc:
                    raise KeysUnavailableError(str(exc)) from None
                return jwks_uri
        raise KeysUnavailableError(
            f"no metadata with a jwks_uri for issuer {self.config.issuer} at "
            f"{', '.join(metadata_urls(self.config.issuer))} (set CRMOPS_OAUTH_JWKS_URL)"
        )


async def _fetch_json(http: httpx.AsyncClient, url: str) -> dict[str, Any]:
    """The JSON object at `url`; `KeysUnavailableError` saying why for anything else."""
    try:
        document = json.loads(await _download(http, url))
    except (httpx.HTTPError, ValueError) as exc:
        raise KeysUnavailableError(f"cannot read {url} ({type(exc).__name__})") from None
    if not isinstance(document, dict):
        raise KeysUnavailableError(f"{url} is not a JSON object")
    return document


async def _download(http: httpx.AsyncClient, url: str) -> bytes:
    async with http.stream("GET", url, headers={"Accept": "application/json"}) as answer:
        if answer.status_code != 200:
            raise KeysUnavailableError(f"{url} answered HTTP {answer.status_code}")
        body = bytearray()
        async for chunk in answer.aiter_bytes():
            body.extend(chunk)
            if len(body) > MAX_DOCUMENT_BYTES:
                raise KeysUnavailableError(f"{url} is larger than {MAX_DOCUMENT_BYTES} bytes")
    return bytes(body)


def _signing_keys(document: Mapping[str, Any]) -> list[jwt.PyJWK]:
    """The JWKS's keys usable to verify RS256 or ES256 signatures (others are skipped)."""
    candidates = [
        key
        for key in document.get("keys", [])
        if isinstance(key, dict) and key.get("use", "sig") == "sig"
    ]
    try:
        keys = jwt.PyJWKSet(candidates).keys if candidates else []
    except jwt.PyJWTError:
        keys = []
    usable = [key for key in keys if key.algorithm_name in ALGORITHMS]
    if not usable:
        raise KeysUnavailableError("the issuer's JWKS holds no RS256 or ES256 signing key")
    return usable


def token_scopes(claims: Mapping[str, Any]) -> list[str]:
    """The scopes a token grants: `scope` (a space-separated string) or `scp` (a list)."""
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            return value.split()
        if value is not None:
            return _strings(value)
    return []


def claim_strings(claims: Mapping[str, Any], name: str) -> list[str]:
    """The strings in the claim `name` (a list or one string); a dotted name that is not a
    claim itself is followed into objects (`realm_access.roles`)."""
    if name in claims:
        return _strings(claims[name])
    value: Any = claims
    for part in name.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return _strings(value)


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, Sequence):
        return [item for item in value if isinstance(item, str) and item]
    return []
