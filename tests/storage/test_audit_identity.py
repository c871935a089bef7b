"""Who acted, in the audit log: `Actor.of(principal)` for each surface, kept through a real
store on each backend (SQLite file, PostgreSQL) and read back as it was written."""

from __future__ import annotations

import pytest

from tools.identity import Principal
from tools.storage.audit import MAX_ACTOR_NAME, Actor, AuditEntry
from tools.storage.store import Store

ISSUER = "https://login.example.com/realms/crm"


@pytest.mark.parametrize(
    ("principal", "name"),
    [
        (
            Principal(
                surface="mcp",
                subject="248289761001",
                issuer=ISSUER,
                email="ana@example.com",
                username="ana",
            ),
            f"sub=248289761001 email=ana@example.com iss={ISSUER}",
        ),
        (
            Principal(surface="mcp", subject="f3a9", issuer=ISSUER, username="ana.s"),
            f"sub=f3a9 username=ana.s iss={ISSUER}",
        ),
        (
            Principal(
                surface="mcp",
                subject="f3a9",
                issuer=ISSUER,
                self_reported_name="Claude Desktop",
            ),
            f'sub=f3a9 iss={ISSUER} (client says "Claude Desktop")',
        ),
        (Principal.static_token(client_name="claude-ai"), 'static-token (client says "claude-ai")'),
        (Principal.static_token(), "static-token"),
        (
            Principal.slack(user_id="U024BE7LH", team_id="T1", channel_id="C0SALES"),
            "T1/C0SALES/U024BE7LH",
        ),
        (Principal(surface="cli", subject="alice"), "alice"),
        (
            Principal(surface="mcp", subject="bob", verified=False, self_reported_name="x"),
            'bob (unverified) (client says "x")',
        ),
    ],
)
def test_the_actor_names_who_acted(principal: Principal, name: str) -> None:
    actor = Actor.of(principal)
    assert actor == Actor(principal.surface, name)


def test_a_stdio_call_is_the_local_user_and_what_the_client_says() -> None:
    stdio = Principal(surface="mcp", subject="stdio", scopes=None, self_reported_name="Cursor")
    local = Actor.local_user().name
    assert Actor.of(stdio) == Actor("mcp", f'stdio user={local} (client says "Cursor")')


def test_an_issuers_user_named_static_token_is_recorded_as_that_user() -> None:
    actor = Actor.of(Principal(surface="mcp", subject="static-token", issuer=ISSUER))
    assert actor.name == f"sub=static-token iss={ISSUER}"


def test_a_claim_cannot_forge_another_key_or_line() -> None:
    forged = Principal(
        surface="mcp",
        subject="248 iss=https://evil.example",
        issuer=ISSUER,
        email="ana@example.com\nsub=admin",
        self_reported_name='x") iss=evil\u202e (client says "y',
    )
    name = Actor.of(forged).name
    assert name.startswith(
        f"sub=248_iss=https://evil.example email=ana@example.com_sub=admin iss={ISSUER} "
    )
    identity, said = name.split(' (client says "')
    assert identity.count(" iss=") == 1
    assert said.endswith('")')
    assert '"' not in said[:-2]  # the client's words stay inside their one quoted string
    assert "\n" not in name
    assert "\u202e" not in name


def test_a_huge_self_reported_name_leaves_the_identity_whole() -> None:
    principal = Principal(
        surface="mcp", subject="f3a9", issuer=ISSUER, self_reported_name="A" * 1_000_000
    )
    name = Actor.of(principal).name
    assert name.startswith(f'sub=f3a9 iss={ISSUER} (client says "AAAA')
    assert name.endswith('A")')
    assert len(name) == MAX_ACTOR_NAME
    static = Actor.of(Principal.static_token(client_name="B" * 1_000_000)).name
    assert static.startswith('static-token (client says "BBB')
    assert len(static) == MAX_ACTOR_NAME


async def test_the_store_keeps_who_acted_on_every_backend(store: Store) -> None:
    principals = [
        Principal(surface="mcp", subject="248289761001", issuer=ISSUER, email="ana@example.com"),
        Principal.static_token(client_name="Cursor 1.2"),
        Principal.slack(user_id="U1", team_id="T1", channel_id="C1"),
    ]
    for principal in principals:
        await store.audit.record(
            AuditEntry(
                actor=Actor.of(principal),
                vendor="bangwo8",
                operation="create_ticket",
                target="",
                sent={},
                outcome="ok",
            )
        )

    entries = await store.audit.recent()

    assert [entry.actor for entry in reversed(entries)] == [Actor.of(p) for p in principals]
    assert entries[-1].actor.name == f"sub=248289761001 email=ana@example.com iss={ISSUER}"
