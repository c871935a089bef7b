"""Who is calling an MCP tool, and which tools their credential lets them call.

    principal = request_principal(ctx)          # in a tool adapter, from the MCP `Context`
    tool_scope("import_customer")               # "crmops:import"
    may_call(principal, "create_ticket")        # False for a token without crmops:ticket
    server.middleware.append(CallableToolsOnly())  # tools/list: only the tools one may call

Over HTTP the bearer middleware (`server.http_auth`) has already authenticated the request
and left an SDK `AuthenticatedUser` in the ASGI scope (and in the SDK's auth context, which
`mcp.server.request_state` binds multi-round-trip state to), so this works the same for a
stateless server: nothing is kept between requests.

- A verified JWT: `Principal(surface="mcp", subject=<sub>, issuer=<iss>, email, username=
  <preferred_username>, groups=<the groups claim>, scopes=<scope>, verified=True)`.
- The static `CRMOPS_MCP_TOKEN`: `Principal.static_token(client_name=<clientInfo.name>)`,
  every scope; the client's name is only self-reported.
- stdio (no HTTP, no credential): `Principal(surface="mcp", subject="stdio", scopes=None)`.
  The local user who started the server, as on the CLI: whoever can start it holds the
  vendor credentials already, so no scope narrows it; the client's name is self-reported.
- An HTTP request that reached the tools unauthenticated (an app built without
  `server.http_auth`): subject "anonymous", not verified, no scope at all.

Scopes: `crmops:read` for every read-only tool, `crmops:import` for `import_customer`,
`crmops:ticket` for `create_ticket`. `tool_scope` is the one place that says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.context import CallNext, HandlerResult, ServerMiddleware, ServerRequestContext
from mcp.server.mcpserver import Context
from mcp.types import ListToolsResult

from tools.identity import STATIC_TOKEN_SUBJECT, STDIO_SUBJECT, Principal
from tools.table import CREATE_TICKET, IMPORT_CUSTOMER, tool_row

SCOPE_READ = "crmops:read"
SCOPE_IMPORT = "crmops:import"
SCOPE_TICKET = "crmops:ticket"
SCOPES: tuple[str, ...] = (SCOPE_READ, SCOPE_IMPORT, SCOPE_TICKET)
"""Every scope crmops knows, as the protected-resource metadata lists them."""

_WRITE_SCOPES = {IMPORT_CUSTOMER.name: SCOPE_IMPORT, CREATE_TICKET.name: SCOPE_TICKET}

ANONYMOUS_SUBJECT = "anonymous"
"""The subject of an HTTP call nothing authenticated (it may call nothing scoped)."""

STATIC_TOKEN_CLIENT_ID = "crmops-static-token"  # noqa: S105 - a client name, not a secret
"""`AccessToken.client_id` of a request authenticated with `CRMOPS_MCP_TOKEN`."""


GROUPS_CLAIM_KEY = "crmops_groups"
"""Where `server.oauth` leaves the token's groups in `AccessToken.claims`, whatever the
issuer's claim is called (`CRMOPS_OAUTH_GROUPS_CLAIM`)."""


def tool_scope(name: str) -> str:
    """The OAuth scope a token needs to call the tool `name` (a row of the tool table).

    Read-only tools need `crmops:read`; `import_customer` `crmops:import`; `create_ticket`
    `crmops:ticket`. A writing tool added to the table later needs `crmops:<its name>` until
    it is given a scope here, so no existing token can call it by accident. `KeyError` for
    a name that is not in the tool table.
    """
    row = tool_row(name)
    if row.read_only:
        return SCOPE_READ
    return _WRITE_SCOPES.get(name, f"crmops:{name}")


def may_call(principal: Principal, name: str) -> bool:
    """Whether `principal`'s credential covers the tool `name` (an unknown tool: False)."""
    try:
        return principal.may_use_scope(tool_scope(name))
    except KeyError:
        return False


def static_access_token() -> AccessToken:
    """The SDK `AccessToken` standing for a request made with `CRMOPS_MCP_TOKEN`: every
    scope, and no copy of the token itself."""
    return AccessToken(
        token="",  # the secret is not kept per request
        client_id=STATIC_TOKEN_CLIENT_ID,
        scopes=list(SCOPES),
        subject=STATIC_TOKEN_SUBJECT,
    )


def request_principal(ctx: Context[Any, Any]) -> Principal:
    """Who makes the MCP request `ctx` belongs to (see the module docstring for each case)."""
    try:
        request = ctx.request_context.request
    except ValueError:  # no request context: called outside a request
        request = None
    return _principal(request, _client_name(ctx))


def _principal(request: Any | None, client_name: str | None) -> Principal:
    """The principal of an MCP message that came with `request` (None: not over HTTP)."""
    if request is None and get_access_token() is None:
        return Principal(
            surface="mcp",
            subject=STDIO_SUBJECT,
            scopes=None,
            verified=True,
            self_reported_name=client_name,
        )
    token = _access_token(request)
    if token is None:
        return Principal(
            surface="mcp",
            subject=ANONYMOUS_SUBJECT,
            scopes=frozenset(),
            verified=False,
            self_reported_name=client_name,
        )
    return principal_of_token(token, client_name=client_name)


class CallableToolsOnly(ServerMiddleware[Any]):
    """MCP server middleware: `tools/list` answers each caller with the tools its token's
    scopes let it call (`may_call`), nothing else.

        server.middleware.append(CallableToolsOnly())
    """

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        result = await call_next(ctx)
        if ctx.method != "tools/list":
            return result
        principal = _principal(ctx.request, _session_client_name(ctx.session))
        # The chain hands back the wire form (a dict); a model is filtered the same way.
        if isinstance(result, ListToolsResult):
            kept = [tool for tool in result.tools if may_call(principal, tool.name)]
            return result.model_copy(update={"tools": kept})
        if isinstance(result, dict) and isinstance(result.get("tools"), list):
            tools = [tool for tool in result["tools"] if may_call(principal, _name(tool))]
            return {**result, "tools": tools}
        return result


def _name(tool: object) -> str:
    name = tool.get("name") if isinstance(tool, dict) else None
    return name if isinstance(name, str) else ""


def principal_of_token(token: AccessToken, *, client_name: str | None = None) -> Principal:
    """The principal an access token the bearer middleware accepted stands for."""
    if token.client_id == STATIC_TOKEN_CLIENT_ID and token.claims is None:
        return Principal.static_token(client_name=client_name)
    claims: Mapping[str, Any] = token.claims or {}
    return Principal(
        surface="mcp",
        subject=token.subject or token.client_id,
        issuer=_text(claims.get("iss")),
        email=_text(claims.get("email")),
        username=_text(claims.get("preferred_username")),
        groups=frozenset(_texts(claims.get(GROUPS_CLAIM_KEY))),
        scopes=frozenset(token.scopes),
        verified=True,
        self_reported_name=client_name,
    )


def _access_token(request: Any | None) -> AccessToken | None:
    scope = getattr(request, "scope", None)
    user = scope.get("user") if isinstance(scope, Mapping) else None
    if isinstance(user, AuthenticatedUser):
        return user.access_token
    return get_access_token()


def _client_name(ctx: Context[Any, Any]) -> str | None:
    try:
        session = ctx.session
    except ValueError:  # no session: called outside a request
        return None
    return _session_client_name(session)


def _session_client_name(session: Any) -> str | None:
    """The client's own name from its `initialize` (None in a stateless request after it)."""
    params = getattr(session, "client_params", None)
    info = getattr(params, "client_info", None)
    name = getattr(info, "name", None)
    return name if isinstance(name, str) and name else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _texts(value: object) -> Iterable[str]:
    """A claim that is one string or a list of strings, as strings (anything else: none)."""
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list | tuple):
        return [item for item in value if isinstance(item, str) and item]
    return []
