"""Who is asking, on every surface: the one shape the access policy and the audit log read.

    principal = Principal.slack(user_id="U1", team_id="T1", channel_id="C1", groups=...)
    principal = Principal.static_token(client_name="claude-ai")     # CRMOPS_MCP_TOKEN
    principal = Principal(surface="mcp", subject="248289761001", issuer="https://idp...",
                          email="ana@example.com", groups=frozenset({"support"}),
                          scopes=frozenset({"crmops:read"}), verified=True)

`verified` says the identity was proven (a Slack signature, a JWT checked against the
issuer's keys); a client's self-reported name (`clientInfo.name`) never is, and is kept only
as `self_reported_name`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Surface = Literal["cli", "mcp", "slack"]

STATIC_TOKEN_SUBJECT = "static-token"  # noqa: S105 - a name for the caller, not a secret
"""The subject of a call authenticated with the shared `CRMOPS_MCP_TOKEN`."""

STDIO_SUBJECT = "stdio"
"""The subject of an MCP call over stdio: the local user who started `crmops mcp`."""


@dataclass(frozen=True)
class Principal:
    """One caller: a surface, a subject unique on it, and what is known of them."""

    surface: Surface
    subject: str
    issuer: str | None = None
    email: str | None = None
    username: str | None = None
    groups: frozenset[str] = field(default_factory=frozenset)
    channel: str | None = None
    """The Slack channel the request came from (None elsewhere)."""
    team: str | None = None
    """The Slack workspace (team id) the request came from (None elsewhere)."""
    scopes: frozenset[str] | None = None
    """OAuth scopes granted; None when the credential is not scoped (Slack, the CLI)."""
    verified: bool = True
    self_reported_name: str | None = None

    @classmethod
    def static_token(cls, *, client_name: str | None = None) -> Principal:
        """An MCP call made with the shared static token: all scopes, nobody in particular."""
        return cls(
            surface="mcp",
            subject=STATIC_TOKEN_SUBJECT,
            scopes=None,
            verified=True,
            self_reported_name=client_name or None,
        )

    @classmethod
    def slack(
        cls,
        *,
        user_id: str,
        team_id: str,
        channel_id: str,
        groups: frozenset[str] = frozenset(),
    ) -> Principal:
        """A Slack user (the request's signature proves it), in a channel of a workspace."""
        return cls(
            surface="slack",
            subject=user_id,
            team=team_id,
            channel=channel_id,
            groups=groups,
        )

    def may_use_scope(self, scope: str) -> bool:
        """Whether the credential grants `scope` (an unscoped credential grants every one)."""
        return self.scopes is None or scope in self.scopes
