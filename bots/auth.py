"""The one place the Slack secrets are unwrapped: for bolt, the Web API client and downloads.

Nothing else in `bots/` calls `.get_secret_value()`; `SlackSettings.require` runs first, so
a missing secret is a `ConfigurationError` naming the variable, not an empty string here.
"""

from __future__ import annotations

from bots.settings import SlackSettings


def bot_token(settings: SlackSettings) -> str | None:
    """`SLACK_BOT_TOKEN` for bolt and the Web API client."""
    return settings.bot_token.get_secret_value() if settings.bot_token else None


def signing_secret(settings: SlackSettings) -> str:
    """`SLACK_SIGNING_SECRET` for bolt's request verification ("" in Socket Mode)."""
    return settings.signing_secret.get_secret_value() if settings.signing_secret else ""


def app_token(settings: SlackSettings) -> str:
    """`SLACK_APP_TOKEN` for the Socket Mode connection."""
    return settings.app_token.get_secret_value() if settings.app_token else ""


def bearer_header(settings: SlackSettings) -> dict[str, str]:
    """The header that downloads a private file with the bot token."""
    return {"Authorization": f"Bearer {bot_token(settings) or ''}"}
