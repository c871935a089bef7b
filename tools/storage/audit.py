"""The audit log: every write to a vendor, from any surface, who asked and what came of it::

    await store.audit.record(AuditEntry(
        actor=Actor("slack", "U024BE7LH"), vendor="xiaolanben", operation="import_customer",
        target="customers.xlsx", sent={"rows": [2, 3]}, outcome="ok",
    ))

One writer per write: the tool function (or, for imports, the bulk engine) that makes the
write records it, with the `Actor` its surface passed down, under the tool table's name
(`tools.table`: `create_ticket`, `import_customer`, ...) whichever surface asked.

`sent` is redacted before it is stored (`redact`): a key that names a secret keeps only
`"***"`, so a log reader never sees a key, token or password even if a caller passes one;
every text in it, and the `target` and `error` columns, pass `tools.redaction.redact`
(a vendor's error may echo the request's credentials).
"""

from __future__ import annotations

import getpass
import json
import re
import sqlite3
import time
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from tools.identity import STATIC_TOKEN_SUBJECT, STDIO_SUBJECT, Principal
from tools.redaction import redact as redact_text
from tools.storage.sqlite import SqliteThread

Surface = Literal["cli", "mcp", "slack", "http", "library"]
Outcome = Literal["ok", "partial", "failed", "unknown"]

REDACTED = "***"
MAX_ACTOR_NAME = 200
"""Characters of an actor's name kept (an MCP client names itself: it may send megabytes)."""
# Control, format (bidi overrides, zero-width) and line/paragraph separators: in a name they
# only forge lines in a log or reorder what a reader sees.
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp"})
_SECRET_KEY = re.compile(r"(secret|password|passwd|token|api_?key|sign|authori[sz]ation)", re.I)


@dataclass(frozen=True)
class Actor:
    """Who asked: the surface and its user, one sanitised string (`Actor.of(principal)`
    writes it: `team/channel/user` for Slack, `sub=… email=… iss=…` for an OAuth MCP
    caller, `static-token (client says "…")` for the shared MCP token, `stdio user=…` for
    a stdio MCP server, the OS user for the CLI)."""

    surface: Surface
    name: str

    def __post_init__(self) -> None:
        # Every surface's name passes here: bound and cleaned once, before it is stored.
        object.__setattr__(self, "name", actor_name(self.name))

    @classmethod
    def local_user(cls, surface: Surface = "cli") -> Actor:
        """The person logged in to this machine (the CLI's actor)."""
        try:
            return cls(surface, getpass.getuser())
        except (OSError, KeyError):  # no login name (a container without a passwd entry)
            return cls(surface, "unknown")

    @classmethod
    def slack_user(cls, user_id: str, *, team_id: str, channel_id: str) -> Actor:
        """A Slack user, named `team/channel/user`: who asked, and where."""
        return cls("slack", f"{team_id}/{channel_id}/{user_id}")

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        """Who `principal` is, as the audit log keeps it (see the class).

        A proven identity comes first; what a client says of itself (`clientInfo.name`) is
        kept after it, marked `client says`, so no reader takes it for an identity.
        """
        if principal.surface == "slack":
            return cls.slack_user(
                principal.subject,
                team_id=principal.team or "",
                channel_id=principal.channel or "",
            )
        return cls(principal.surface, _principal_name(principal))


def _principal_name(principal: Principal) -> str:
    """`sub=… email=… iss=…` for a token's subject; `static-token` for the shared token;
    `… (unverified)` for a name nobody proved; then what the client says of itself."""
    if principal.subject == STATIC_TOKEN_SUBJECT and principal.issuer is None:
        name = STATIC_TOKEN_SUBJECT
    elif is_local_mcp(principal):
        name = f"{STDIO_SUBJECT} user={_word(Actor.local_user().name)}"
    elif principal.surface == "mcp" and principal.verified:
        name = f"sub={_word(principal.subject)}"
        contact = principal.email or principal.username
        if contact:
            name += f" {'email' if principal.email else 'username'}={_word(contact)}"
        if principal.issuer:
            name += f" iss={_word(principal.issuer)}"
    else:
        name = principal.subject if principal.verified else f"{principal.subject} (unverified)"
    said = principal.self_reported_name
    if said is None:
        return name
    # The client's words take whatever room is left, so the identity before them survives.
    room = max(MAX_ACTOR_NAME - len(name) - len(' (client says "")'), 0)
    return f'{name} (client says "{actor_name(said).replace(chr(34), chr(39))[:room]}")'


def is_local_mcp(principal: Principal) -> bool:
    """Whether `principal` is an MCP call over stdio: the local user who started
    `crmops mcp` (`server.identity` makes it), trusted as the CLI is."""
    return (
        principal.surface == "mcp"
        and principal.subject == STDIO_SUBJECT
        and principal.issuer is None
        and principal.verified
    )


def _word(value: str) -> str:
    """`value` as one word of a `key=value` name: no space can fake the next key."""
    return "_".join(actor_name(value).split())


def actor_name(name: str) -> str:
    """`name` as an `Actor` keeps it: control and bidi characters dropped, runs of spaces
    made one, at most `MAX_ACTOR_NAME` characters; "unknown" when nothing is left."""
    # Only a bounded prefix is looked at, so a name of megabytes costs no more than a short one.
    kept = "".join(
        " " if char.isspace() else char
        for char in name[: MAX_ACTOR_NAME * 4]
        if char.isspace() or unicodedata.category(char) not in _HIDDEN
    )
    return " ".join(kept.split())[:MAX_ACTOR_NAME] or "unknown"


@dataclass(frozen=True)
class AuditEntry:
    """One write: what was sent to whom, and how it ended."""

    actor: Actor
    vendor: str
    operation: str
    target: str
    sent: Mapping[str, Any]
    outcome: Outcome
    error: str | None = None
    at: float = field(default_factory=time.time)

    @classmethod
    def from_columns(cls, row: Sequence[Any]) -> AuditEntry:
        """The entry of a row selected in the order of `columns`, `sent` decoded already."""
        at, surface, actor, vendor, operation, target, sent, outcome, error = row
        return cls(
            actor=Actor(surface, actor),
            vendor=vendor,
            operation=operation,
            target=target,
            sent=sent,
            outcome=outcome,
            error=error,
            at=float(at),
        )

    def columns(self, sent: object) -> tuple[object, ...]:
        """Values for `INSERT INTO audit_log (at, surface, actor, vendor, operation, target,
        sent, outcome, error)`, with `sent` as the backend stores it (already redacted)."""
        return (
            self.at,
            self.actor.surface,
            self.actor.name,
            self.vendor,
            self.operation,
            redact_text(self.target),
            sent,
            self.outcome,
            None if self.error is None else redact_text(self.error),
        )


class AuditLog(Protocol):
    """Append-only record of writes."""

    async def record(self, entry: AuditEntry) -> None: ...

    async def recent(self, limit: int = 100) -> list[AuditEntry]:
        """The latest entries, newest first."""
        ...


def redact(value: Any) -> Any:
    """`value` with every mapping key that names a secret replaced by `"***"`, and every
    text without a secret (`tools.redaction.redact`), recursively."""
    if isinstance(value, Mapping):
        return {
            str(k): REDACTED if _SECRET_KEY.search(str(k)) else redact(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    surface TEXT NOT NULL,
    actor TEXT NOT NULL,
    vendor TEXT NOT NULL,
    operation TEXT NOT NULL,
    target TEXT NOT NULL,
    sent TEXT NOT NULL,
    outcome TEXT NOT NULL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS audit_log_by_time ON audit_log (at);
"""


class SqliteAuditLog:
    """`AuditLog` in the same SQLite database (and thread) as the journal."""

    def __init__(self, database: SqliteThread) -> None:
        self._db = database
        database.connection.executescript(_SCHEMA)

    async def record(self, entry: AuditEntry) -> None:
        sent = json.dumps(redact(entry.sent), ensure_ascii=False, separators=(",", ":"))
        await self._db.run(_insert, entry.columns(sent))

    async def recent(self, limit: int = 100) -> list[AuditEntry]:
        return await self._db.run(_latest, limit)


def _insert(db: sqlite3.Connection, columns: tuple[object, ...]) -> None:
    with db:
        db.execute(
            "INSERT INTO audit_log (at, surface, actor, vendor, operation, target, sent,"
            " outcome, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            columns,
        )


def _latest(db: sqlite3.Connection, limit: int) -> list[AuditEntry]:
    rows = db.execute(
        "SELECT at, surface, actor, vendor, operation, target, sent, outcome, error"
        " FROM audit_log ORDER BY id DESC LIMIT ?",
        (limit,),
    )
    return [AuditEntry.from_columns(_sent_decoded(row)) for row in rows]


def _sent_decoded(row: Sequence[Any]) -> tuple[Any, ...]:
    """The row with its `sent` column (stored as JSON text) decoded."""
    *before, sent, outcome, error = row
    return (*before, json.loads(sent), outcome, error)
