"""Slack settings: the app's credentials (`SLACK_*`) and who may run what (`CRMOPS_SLACK_*`).

    slack = SlackSettings.load()             # environment + ./.env
    slack.require(socket_mode=False)         # ConfigurationError naming what is missing
    access = AccessSettings.load()

Access control, per command, from comma-separated lists of Slack ids::

    CRMOPS_SLACK_WRITE_USERS=U012AB3CD,U045EF6GH     # who may run import / ticket ("*": anyone)
    CRMOPS_SLACK_WRITE_USERGROUPS=S0614TZR7          # ... or members of these user groups
    CRMOPS_SLACK_WRITE_CHANNELS=C0123SALES           # ... and only in these channels (empty: any)
    CRMOPS_SLACK_READ_USERS=*                        # reads: open to the workspace by default
    CRMOPS_SLACK_COMMANDS='{"import": {"users": ["U012AB3CD"], "channels": ["C0IMPORT"]}}'

Writes are closed until a write user or user group is configured: nobody creates tickets
or imports customers by accident of an empty configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tools.errors import ConfigurationError
from tools.settings import read_settings

SLACK_API_URL = "https://slack.com/api/"
SLACK_FILES_HOST = "files.slack.com"
EVERYONE = "*"

_COMMON = {"env_file": ".env", "env_file_encoding": "utf-8", "extra": "ignore"}


class SlackSettings(BaseSettings):
    """`SLACK_*`: the Slack app's tokens, signing secret and Web API base URL."""

    model_config = SettingsConfigDict(env_prefix="SLACK_", **_COMMON)  # type: ignore[typeddict-item]

    bot_token: SecretStr | None = Field(default=None, description="xoxb-… (OAuth & Permissions)")
    signing_secret: SecretStr | None = Field(
        default=None, description="Basic Information → Signing Secret (HTTP mode)"
    )
    app_token: SecretStr | None = Field(
        default=None, description="xapp-… with connections:write (Socket Mode)"
    )
    api_url: str = Field(default=SLACK_API_URL, description="Web API base URL, ends with /")

    @field_validator("api_url")
    @classmethod
    def _ends_with_slash(cls, value: str) -> str:
        if urlsplit(value).scheme not in {"http", "https"}:
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value if value.endswith("/") else value + "/"

    @classmethod
    def load(cls, env_file: Path | None = Path(".env")) -> SlackSettings:
        """Read the environment, then `env_file` (ignored when it does not exist)."""
        return read_settings(cls, env_file, "slack")

    def missing(self, *, socket_mode: bool) -> list[str]:
        """The variables `crmops slack` needs in this mode and that are unset."""
        needed = {"bot_token": self.bot_token}
        if socket_mode:
            needed["app_token"] = self.app_token
        else:
            needed["signing_secret"] = self.signing_secret
        return [
            f"SLACK_{name.upper()}"
            for name, value in needed.items()
            if value is None or not value.get_secret_value()
        ]

    def require(self, *, socket_mode: bool) -> None:
        """Raise `ConfigurationError` naming every variable this mode needs and lacks."""
        names = self.missing(socket_mode=socket_mode)
        if names:
            raise ConfigurationError(vendor="slack", missing=names)

    @property
    def file_hosts(self) -> frozenset[str]:
        """Hosts the bot token may be sent to when downloading an uploaded file."""
        return frozenset({SLACK_FILES_HOST, urlsplit(self.api_url).netloc})


def _id_list(value: object) -> object:
    if isinstance(value, str):
        return frozenset(part.strip() for part in value.split(",") if part.strip())
    return value


IdList = Annotated[frozenset[str], NoDecode]


class AccessRule(BaseModel):
    """Who may run a command, and where: every list empty means anyone, anywhere.

    A user passes when `users` is empty (and `usergroups` too), holds `*`, names the user,
    or one of `usergroups` has the user as a member. The channel passes when `channels`
    is empty or names it. Both must pass.
    """

    model_config = ConfigDict(frozen=True)

    users: frozenset[str] = frozenset()
    usergroups: frozenset[str] = frozenset()
    channels: frozenset[str] = frozenset()
    closed: bool = Field(default=False, description="nobody may run it")

    @field_validator("users", "usergroups", "channels", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return _id_list(value)

    @property
    def anyone(self) -> bool:
        if self.closed:
            return False
        return EVERYONE in self.users or not (self.users or self.usergroups)


class AccessSettings(BaseSettings):
    """`CRMOPS_SLACK_*`: which users, user groups and channels may run reads and writes."""

    model_config = SettingsConfigDict(env_prefix="CRMOPS_SLACK_", **_COMMON)  # type: ignore[typeddict-item]

    write_users: IdList = frozenset()
    write_usergroups: IdList = frozenset()
    write_channels: IdList = frozenset()
    read_users: IdList = frozenset({EVERYONE})
    read_usergroups: IdList = frozenset()
    read_channels: IdList = frozenset()
    commands: dict[str, AccessRule] = Field(
        default_factory=dict,
        description="JSON: per-command rules replacing the read/write default for that command",
    )
    confirmation_ttl: float = Field(default=300.0, gt=0, description="seconds a confirm lasts")

    @field_validator(
        "write_users",
        "write_usergroups",
        "write_channels",
        "read_users",
        "read_usergroups",
        "read_channels",
        mode="before",
    )
    @classmethod
    def _split(cls, value: object) -> object:
        return _id_list(value)

    @classmethod
    def load(cls, env_file: Path | None = Path(".env")) -> AccessSettings:
        """Read the environment, then `env_file` (ignored when it does not exist)."""
        return read_settings(cls, env_file, "slack access")

    @property
    def write_rule(self) -> AccessRule:
        # Writes stay closed until someone is named: an empty rule would mean "anyone".
        return AccessRule(
            users=self.write_users,
            usergroups=self.write_usergroups,
            channels=self.write_channels,
            closed=not (self.write_users or self.write_usergroups),
        )

    @property
    def read_rule(self) -> AccessRule:
        return AccessRule(
            users=self.read_users, usergroups=self.read_usergroups, channels=self.read_channels
        )

    def rule_for(self, command: str, *, writes: bool) -> AccessRule:
        """The rule for `command`: its own from `commands`, else the read or write default."""
        own = self.commands.get(command)
        if own is not None:
            return own
        return self.write_rule if writes else self.read_rule
