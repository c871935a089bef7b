"""Slack settings: the app's credentials (`SLACK_*`) and who may run what (`CRMOPS_SLACK_*`).

    slack = SlackSettings.load()             # environment + ./.env
    slack.require(socket_mode=False)         # ConfigurationError naming what is missing
    access = AccessSettings.load()

Access control, per command, from comma-separated lists of Slack ids::

    CRMOPS_SLACK_WRITE_USERS=U012AB3CD,U045EF6GH     # who may run import / ticket ("*": anyone)
    CRMOPS_SLACK_WRITE_USERGROUPS=S0614TZR7          # ... or members of these user groups
    CRMOPS_SLACK_WRITE_CHANNELS=C0123SALES           # ... and only in these channels (empty: any)
    CRMOPS_SLACK_READ_USERS=*                        # reads: open to the workspace by default
    CRMOPS_SLACK_ADMIN_USERS=U012AB3CD               # /crm audit; everyone's work in App Home
    CRMOPS_SLACK_COMMANDS='{"import": {"users": ["U012AB3CD"], "channels": ["C0IMPORT"]}}'

Writes are closed until a write user or user group is configured: nobody creates tickets
or imports customers by accident of an empty configuration. The rules are `tools.policy`'s,
the one policy Slack and MCP consult.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tools.errors import ConfigurationError
from tools.policy import SlackAccessSettings
from tools.settings import read_settings

SLACK_API_URL = "https://slack.com/api/"
SLACK_FILES_HOST = "files.slack.com"

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


class AccessSettings(SlackAccessSettings):
    """`CRMOPS_SLACK_*`: the access rules (`tools.policy.SlackAccessSettings`, one policy
    with MCP's) and how long a Confirm button lasts."""

    confirmation_ttl: float = Field(default=300.0, gt=0, description="seconds a confirm lasts")
    admin_users: Annotated[frozenset[str], NoDecode] = Field(
        default=frozenset(),
        description="Slack user ids who may run /crm audit and see everyone's work in App Home",
    )

    @field_validator("admin_users", mode="before")
    @classmethod
    def _user_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(part.strip() for part in value.split(",") if part.strip())
        return value

    @classmethod
    def load(cls, env_file: Path | None = Path(".env")) -> AccessSettings:
        """Read the environment, then `env_file` (ignored when it does not exist)."""
        return read_settings(cls, env_file, "slack access")
