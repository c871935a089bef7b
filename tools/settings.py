"""Configuration, read from the environment and an optional `.env` file.

Each vendor has its own settings class with its own prefix, so a caller that needs only
Bangwo8 never fails because SocialEpoch is unconfigured::

    settings = Settings.load()              # environment + ./.env
    settings = Settings.load(env_file=p)    # tests: a file under tmp_path
    settings.socialepoch.require()          # ConfigurationError naming what is missing

Secrets are `SecretStr`; only the signers call `.get_secret_value()` to send them, and
every settings object registers them with `tools.redaction` when it is built (and again at
`require()`), so no text crmops shows, logs or stores carries one in any form.

A vendor base URL must be `https://` unless it is a loopback address (the sandbox, a local
proxy) or `<VENDOR>_ALLOW_INSECURE_HTTP=true` says so: `require()` refuses plain HTTP, which
would send the credentials unencrypted. `setting_sources(env_file)` tells where each value
came from (the environment, a `.env` file, or the default), for `doctor`.
"""

from __future__ import annotations

import ipaddress
import os
import re
from datetime import UTC, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tools import redaction
from tools.errors import ConfigurationError
from tools.i18n import DEFAULT_LOCALE, Locale, checked_locale

SOCIALEPOCH_DEFAULT_URL = "https://api.socialepoch.com"
# 000 names a separate Indonesian host; its credentials are not valid on the standard one.
SOCIALEPOCH_REGION_URLS = {"std": SOCIALEPOCH_DEFAULT_URL, "id": "http://id.wascrm.socialepoch.com"}
XIAOLANBEN_DEFAULT_URL = "https://api.xiaolanben.com"
BANGWO8_DEFAULT_URL = "https://www.bangwo8.com"

_UTC_OFFSET = re.compile(r"^(?:UTC)?([+-])(\d{1,2}):?(\d{2})?$")


def parse_timezone(value: str) -> tzinfo:
    """Read `+08:00`, `UTC+8`, `-0530` or an IANA name such as `Asia/Shanghai`."""
    text = value.strip()
    if text.upper() in {"UTC", "Z"}:
        return UTC
    match = _UTC_OFFSET.match(text.upper())
    if match:
        sign, hours, minutes = match.groups()
        delta = timedelta(hours=int(hours), minutes=int(minutes or 0))
        return timezone(-delta if sign == "-" else delta)
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{value!r} is neither a UTC offset like +08:00 nor a zone name") from exc


def register_secrets(settings: BaseModel, pairs: tuple[tuple[str, str], ...] = ()) -> None:
    """Register every secret `settings` holds with `tools.redaction`: each `SecretStr` value,
    the password of any URL among its values, and each `(user field, secret field)` of
    `pairs` as the HTTP Basic pair it is sent as."""
    secrets: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name, None)
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not isinstance(text, str):
            continue
        # A URL is secret for its password alone: the rest (the host) may be shown.
        in_url = redaction.url_secrets(text)
        if in_url or "://" in text:
            secrets += in_url
        elif isinstance(value, SecretStr):
            secrets.append(text)
    basic = [(_text(getattr(settings, user)), _text(getattr(settings, key))) for user, key in pairs]
    redaction.register(secrets, pairs=basic)


def _text(value: object) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return "" if value is None else str(value)


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address) is this machine: `localhost`, 127.0.0.0/8, ::1."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class VendorSettings(BaseSettings):
    """What every vendor's settings have: a base URL, a rate limit, the variables a call
    needs (`missing()`, `require()`) and those any of which make it configured at all."""

    required: ClassVar[tuple[str, ...]] = ()
    credentials: ClassVar[tuple[str, ...]] = ()
    """The settings any one of which, set, make the vendor "configured at all" (doctor)."""
    basic_pairs: ClassVar[tuple[tuple[str, str], ...]] = ()
    """`(user, secret)` settings sent together as HTTP Basic auth: redacted in that form too."""
    documented_http_urls: ClassVar[frozenset[str]] = frozenset()
    """Plain-http base URLs the vendor's own documents name as its host: allowed as they are."""

    rate_limit: float = Field(default=10.0, gt=0, description="requests per second per API")
    allow_insecure_http: bool = Field(
        default=False,
        description="allow a plain http:// base URL that is not a loopback address "
        "(the credentials then travel unencrypted)",
    )

    def model_post_init(self, context: Any, /) -> None:
        register_secrets(self, self.basic_pairs)

    @property
    def url(self) -> str:
        """The vendor's base URL in force."""
        raise NotImplementedError

    @classmethod
    def env_prefix(cls) -> str:
        """The prefix of this vendor's environment variables, e.g. `BANGWO8_`."""
        return str(cls.model_config.get("env_prefix", ""))

    def has_credentials(self) -> bool:
        """Whether any of `credentials` is set (an empty secret counts as unset)."""
        return any(_is_set(getattr(self, name)) for name in self.credentials)

    def missing(self) -> list[str]:
        """Environment variable names that a call to this vendor needs and that are unset."""
        prefix = self.env_prefix()
        return [
            f"{prefix}{name}".upper() for name in self.required if not _is_set(getattr(self, name))
        ]

    def require(self) -> None:
        """Raise `ConfigurationError` naming every unset variable this vendor needs, or a
        plain-HTTP base URL that is neither loopback nor allowed (`insecure_url`)."""
        register_secrets(self, self.basic_pairs)  # values assigned after construction too
        vendor = type(self).__name__.removesuffix("Settings").lower()
        names = self.missing()
        if names:
            raise ConfigurationError(vendor=vendor, missing=names)
        refused = self.insecure_url()
        if refused is not None:
            raise refused

    def insecure_url(self) -> ConfigurationError | None:
        """The error for a base URL that must not be used, or None when it may: plain
        `http://` to a host that is not loopback, unless `allow_insecure_http`."""
        parts = urlsplit(self.url)
        if parts.scheme.lower() != "http" or self.allow_insecure_http:
            return None
        if self.url.rstrip("/") in self.documented_http_urls:
            return None
        if is_loopback(parts.hostname or ""):
            return None
        prefix = self.env_prefix()
        action = (
            f"use the vendor's https:// URL in {prefix}BASE_URL, or set "
            f"{prefix}ALLOW_INSECURE_HTTP=true if this host really has no TLS"
        )
        return ConfigurationError(
            vendor=type(self).__name__.removesuffix("Settings").lower(),
            detail=f"{prefix}BASE_URL is {redaction.shown_url(self.url)}: plain http:// would "
            f"send the credentials unencrypted; {action}",
            action=action,
        )


def _is_set(value: object) -> bool:
    if isinstance(value, SecretStr):
        return bool(value.get_secret_value())
    return value is not None and value != ""


_COMMON = {"env_file": ".env", "env_file_encoding": "utf-8", "extra": "ignore"}


class SocialEpochSettings(VendorSettings):
    """`SOCIALEPOCH_*`: one region's tenant, key and accounts (they differ per region)."""

    model_config = SettingsConfigDict(env_prefix="SOCIALEPOCH_", **_COMMON)  # type: ignore[typeddict-item]
    required = ("tenant_id", "api_key")
    credentials = required
    # 000 names only http:// for the Indonesian production host. Its requests carry an md5
    # token, never the ApiKey itself; any other plain-http URL still needs the allow-setting.
    documented_http_urls = frozenset({SOCIALEPOCH_REGION_URLS["id"]})

    base_url: str | None = None
    region: Literal["std", "id"] = "std"
    tenant_id: str | None = None
    api_key: SecretStr | None = None
    user_name: str | None = Field(default=None, description="admin account, legacy import only")
    agent_account: str | None = Field(default=None, description="owner of imported customers")
    import_api: Literal["batch", "legacy"] = "batch"
    # 000 gives the createTime format but no zone; the vendor runs on China time.
    timezone: str = "+08:00"
    rate_limit: float = Field(default=50.0, gt=0, description="001: 50 requests/s per API")
    # 001/002 give no batch size, only 507 "data size big": 100 is crmops's guess, and a
    # tenant the vendor refuses at that size can lower it.
    batch_size: int = Field(default=100, ge=1, le=100, description="customers per import call")

    @field_validator("timezone")
    @classmethod
    def _timezone_parses(cls, value: str) -> str:
        parse_timezone(value)
        return value

    @property
    def url(self) -> str:
        """The base URL in force: `SOCIALEPOCH_BASE_URL`, else the region's host."""
        return self.base_url or SOCIALEPOCH_REGION_URLS[self.region]

    @property
    def tz(self) -> tzinfo:
        return parse_timezone(self.timezone)

    def missing(self) -> list[str]:
        names = super().missing()
        if self.import_api == "legacy" and not self.user_name:
            names.append("SOCIALEPOCH_USER_NAME")
        return names


class XiaolanbenSettings(VendorSettings):
    """`XIAOLANBEN_*`: the company id and signing key the account manager hands out."""

    model_config = SettingsConfigDict(env_prefix="XIAOLANBEN_", **_COMMON)  # type: ignore[typeddict-item]
    required = ("company_id", "sign_key")
    credentials = required

    base_url: str = XIAOLANBEN_DEFAULT_URL
    company_id: str | None = None
    sign_key: SecretStr | None = None

    @property
    def url(self) -> str:
        return self.base_url


class Bangwo8Settings(VendorSettings):
    """`BANGWO8_*`: OAuth2 client credentials (preferred) or Basic account and password."""

    model_config = SettingsConfigDict(env_prefix="BANGWO8_", **_COMMON)  # type: ignore[typeddict-item]
    credentials = ("client_id", "client_secret", "account", "password")
    basic_pairs = (("client_id", "client_secret"), ("account", "password"))

    base_url: str = BANGWO8_DEFAULT_URL
    account: str | None = None
    password: SecretStr | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None

    @property
    def url(self) -> str:
        return self.base_url

    @property
    def uses_oauth(self) -> bool:
        return bool(self.client_id) and _is_set(self.client_secret)

    def missing(self) -> list[str]:
        """The unset half of the credential begun, else the OAuth client (the preferred one)."""
        if self.uses_oauth or (self.account and _is_set(self.password)):
            return []
        oauth_begun = bool(self.client_id) or _is_set(self.client_secret)
        if not oauth_begun and (self.account or _is_set(self.password)):
            pairs = [("account", self.account), ("password", self.password)]
        else:
            pairs = [("client_id", self.client_id), ("client_secret", self.client_secret)]
        return [f"BANGWO8_{name.upper()}" for name, value in pairs if not _is_set(value)]

    def require(self) -> None:
        """As `VendorSettings.require`; with no credential at all, the error names the OAuth
        client first and HTTP Basic as the alternative."""
        if not self.has_credentials():
            raise ConfigurationError(
                vendor="bangwo8",
                missing=self.missing(),
                detail="or, without an OAuth client, BANGWO8_ACCOUNT and BANGWO8_PASSWORD "
                "for HTTP Basic auth",
                action="set the variables named (environment or .env), then run crmops "
                "doctor again",
            )
        super().require()


class CrmopsSettings(BaseSettings):
    """`CRMOPS_*`: what is not about one vendor."""

    model_config = SettingsConfigDict(env_prefix="CRMOPS_", **_COMMON)  # type: ignore[typeddict-item]

    http_timeout: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=5, ge=1, le=20)
    # Run the client's limiter a little under the vendor's ceiling: requests sent 1/rate
    # apart reach the vendor's counter up to tens of ms closer together (event-loop and
    # server jitter) and trip a strict sliding window. 0.96 leaves two requests a second
    # (about 40 ms) of slack; bench/bulk_import.py saw refusals at 0.98 but none at 0.96.
    rate_headroom: float = Field(default=0.96, gt=0, le=1)
    mcp_token: SecretStr | None = Field(
        default=None,
        description="bearer token the MCP server requires over HTTP (at least 32 characters)",
    )
    oauth_issuer: str | None = Field(
        default=None,
        description="issuer URL of the OAuth authorization server whose JWT access tokens "
        "the MCP server accepts over HTTP (server.oauth)",
    )
    oauth_audience: str | None = Field(
        default=None,
        description="this MCP server's resource identifier, the `aud` its access tokens "
        "carry, e.g. https://crmops.example.com/mcp",
    )
    oauth_jwks_url: str | None = Field(
        default=None, description="JWKS URL of the issuer's signing keys (default: discovered)"
    )
    oauth_groups_claim: str = Field(
        default="groups", min_length=1, description="access-token claim listing the groups"
    )
    mcp_max_sessions: int = Field(
        default=1000, ge=1, description="MCP sessions open at once over HTTP, all clients together"
    )
    mcp_sessions_per_client: int = Field(
        default=32, ge=1, description="MCP sessions one client address may hold open over HTTP"
    )
    mcp_session_idle: float = Field(
        default=300.0,
        gt=0,
        le=86400,
        description="seconds an MCP session with no request in flight stays open over HTTP",
    )
    mcp_sessions: Literal["stateless", "sticky"] = Field(
        default="stateless",
        description="stateless: any MCP HTTP request may reach any replica; sticky: clients "
        "of protocol 2025-11-25 and older keep a session on one replica (the balancer must "
        "stick to it) so they can be asked to confirm a write",
    )
    mcp_state_key: SecretStr | None = Field(
        default=None,
        description="secret (32+ characters) every MCP replica shares to seal the state of a "
        "confirmation between its two HTTP requests (default: derived from CRMOPS_MCP_TOKEN, "
        "else one key per process)",
    )
    mcp_confirm_writes: Literal["ask", "require", "off"] = Field(
        default="ask",
        description="ask: an MCP client that can elicit is asked to confirm each write, the "
        "others write unasked; require: a client that cannot be asked may not write; off",
    )
    read_only: bool = Field(default=False, description="expose only the read-only MCP tools")
    tools: str | None = Field(
        default=None, description="comma-separated MCP tool names to expose (default: all)"
    )
    db: Path | None = Field(
        default=None,
        description="SQLite file of the import journal and the audit log "
        "(default: crmops.db in the user's data directory)",
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="postgresql://user:password@host:port/dbname: the import journal and the "
        "audit log in PostgreSQL, shared by replicas (default: the SQLite file CRMOPS_DB); "
        "secret because it may carry the password",
    )
    import_lease: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="seconds a replica's claim on the rows it is sending lasts without a "
        "heartbeat: after a crash, another run takes the rows over this much later",
    )
    redis_url: SecretStr | None = Field(
        default=None,
        description="redis:// or rediss:// URL of the Redis that replicas share for rate "
        "limits, the Bangwo8 token, Slack dedupe and confirmations (default: in-process); "
        "checked when first used (tools.storage.shared), so its password never reaches an error",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="bearer token GET /metrics requires on both HTTP servers (at least 32 "
        "characters; unset: /metrics is not served)",
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="how the servers log to stderr: text, or json (one object a line)",
    )
    locale: Locale = Field(
        default=DEFAULT_LOCALE,
        description="language of what crmops shows a person when nobody's own is known: "
        "zh-CN, en or id (zh_CN.UTF-8, id_ID... are read too); the Slack bot's channel posts, "
        "and the CLI's default before LC_ALL / LC_MESSAGES / LANG (tools.i18n)",
    )

    @field_validator("locale", mode="before")
    @classmethod
    def _known_locale(cls, value: object) -> object:
        return checked_locale(value, source="CRMOPS_LOCALE") if isinstance(value, str) else value

    def model_post_init(self, context: Any, /) -> None:
        register_secrets(self)


class Settings(BaseModel):
    """Everything, per vendor. Build it with `Settings.load()`.

    One attribute per vendor, named as the vendor is in `tools.vendors.registry` (a test
    holds the two together), and `crmops` for the rest.
    """

    crmops: CrmopsSettings
    socialepoch: SocialEpochSettings
    xiaolanben: XiaolanbenSettings
    bangwo8: Bangwo8Settings

    @classmethod
    def load(cls, env_file: Path | None = Path(".env")) -> Settings:
        """Read the environment, then `env_file` (ignored when it does not exist).

        A malformed value (`SOCIALEPOCH_BATCH_SIZE=500`) is a `ConfigurationError` naming
        the variable and what it must be.
        """
        parts = cls.parts()
        return cls(**{name: read_settings(part, env_file, name) for name, part in parts.items()})

    @classmethod
    def parts(cls) -> dict[str, type[BaseSettings]]:
        """Each attribute's settings class: `crmops` first, then one per vendor."""
        return {name: _settings_class(field.annotation) for name, field in cls.model_fields.items()}


def _settings_class(annotation: object) -> type[BaseSettings]:
    if isinstance(annotation, type) and issubclass(annotation, BaseSettings):
        return annotation
    raise TypeError(f"a Settings attribute must be a BaseSettings class, not {annotation!r}")


_Read = TypeVar("_Read", bound=BaseSettings)


def read_settings(settings: type[_Read], env_file: Path | None, name: str) -> _Read:
    """`settings` from the environment, then `env_file`; `ConfigurationError` for a value
    that does not parse, naming the variable but never the value (it may be a secret)."""
    try:
        loaded = settings(_env_file=env_file)
    except ValidationError as exc:
        problems = [f"{variable}: {why}" for variable, why in unparsed_values(exc, settings)]
        raise ConfigurationError(
            vendor=name, detail="; ".join(problems) + " (fix it in the environment or .env)"
        ) from None
    register_secrets(loaded)  # settings of other parts (Slack) hold secrets too
    return loaded


Origin = str
"""Where a setting's value came from: "environment", ".env file <path>" or "default"."""


def setting_sources(settings: type[BaseSettings], env_file: Path | None) -> dict[str, Origin]:
    """Each variable of `settings` (e.g. `BANGWO8_BASE_URL`) and where its value comes from,
    by the precedence pydantic-settings reads them in: the environment, then `env_file`,
    then the default. Never a value: only names and places."""
    prefix = str(settings.model_config.get("env_prefix", "")).upper()
    environment = {name.upper() for name in os.environ}
    in_file: set[str] = set()
    if env_file is not None and env_file.is_file():
        in_file = {name.upper() for name in dotenv_values(env_file)}
    sources: dict[str, Origin] = {}
    for field in settings.model_fields:
        variable = f"{prefix}{field.upper()}"
        if variable in environment:
            sources[variable] = "environment"
        elif variable in in_file:
            sources[variable] = f".env file {env_file}"
        else:
            sources[variable] = "default"
    return sources


def unparsed_values(error: ValidationError, settings: type[BaseSettings]) -> list[tuple[str, str]]:
    """`(variable, what is wrong with it)` for each value of `settings` in `error`."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    return [
        (
            prefix + "_".join(str(part) for part in problem["loc"]).upper(),
            problem["msg"].removeprefix("Value error, "),
        )
        for problem in error.errors()
    ]
