"""The crmops MCP server: every row of the tool table (`tools/table.py`) as an MCP tool.

    server = build_server(Settings.load())                 # every tool
    server = build_server(settings, read_only=True)        # only the tools that change nothing
    server = build_server(settings, tools=["lookup_error_code", "list_staff"])
    await server.run_stdio_async()

Each tool's input schema, descriptions and output schema come from its function in `tools/`
(keyword-only `Annotated[..., Field(description=...)]` arguments, a pydantic result model),
so every surface says the same. A `CrmopsError` reaches the model as a `ToolError` with the
error's own text (vendor code, meaning, what to do); anything else as a generic message,
with the traceback in the server log (stderr). A vendor without credentials does not stop
the server: its tools are listed and answer with the `ConfigurationError` naming what to set.

One argument policy for every tool (`StrictTool`): an argument the tool does not take is
refused before anything runs, naming the closest known one (`dryRun` → `dry_run`), and every
input schema says `additionalProperties: false`. MCPServer on its own drops unknown keys, so
a model's typo would silently fall back to the default (a real import instead of a dry run).

Also served: the error catalog as resources (`crmops://errors`, `crmops://errors/{vendor}`)
and the `triage_failed_import` prompt.
"""

from __future__ import annotations

import difflib
import inspect
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from importlib import metadata
from typing import Annotated, Any, cast

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase
from mcp.types import ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field

from server.confirm import CONFIRMATION_PARAMETER, CONFIRMED_TOOLS, WriteGate, state_security
from server.identity import CallableToolsOnly, may_call, request_principal, tool_scope
from tools.catalog import VENDORS, load_catalog
from tools.errors import ConfigurationError, CrmopsError
from tools.identity import Principal
from tools.observability.calls import observe_tool
from tools.policy import Policy, check_access, policy_from_settings
from tools.services import Services
from tools.settings import Settings
from tools.storage.audit import Actor
from tools.table import (
    CREATE_TICKET,
    LIST_TICKETS,
    TOOLS,
    ToolFunction,
    ToolRow,
    tool_function,
    tool_row,
)

log = logging.getLogger("crmops.mcp")

INSTRUCTIONS = """\
crmops operates three Chinese SaaS vendors: SocialEpoch (WhatsApp SCRM customers),
Xiaolanben (小蓝本 B2B CRM: customers with contacts, staff) and Bangwo8 (帮我吧 helpdesk
tickets). Run import_customer with dry_run=true first when unsure about the data. When a
tool fails with a vendor code, lookup_error_code explains it. Lists are bounded: when
more_available is true, narrow the query or raise the limit."""

# Filled in by the adapter, never by the model: the clients, who asks (for the audit log)
# and the progress reporter.
_ADAPTER_PARAMETERS = frozenset({"services", "actor", "progress", CONFIRMATION_PARAMETER})

# An unknown-argument error quotes this many names (the rest are counted) and this many
# characters of each: a call with 60,000 made-up keys gets a short answer, computed in one pass.
MAX_UNKNOWN_ARGUMENTS_NAMED = 3
MAX_ARGUMENT_NAME_SHOWN = 40


@dataclass(frozen=True)
class ToolSpec:
    """A tool function and its row of the tool table (title and hints)."""

    fn: ToolFunction
    row: ToolRow

    @property
    def name(self) -> str:
        return self.row.name

    @property
    def annotations(self) -> ToolAnnotations:
        return ToolAnnotations(
            title=self.row.title,
            read_only_hint=self.row.read_only,
            destructive_hint=self.row.destructive,
            idempotent_hint=self.row.idempotent,
            open_world_hint=self.row.open_world,
        )


# Every row of the tool table, in its order: a new row is served with no edit here. A row
# whose function cannot be imported fails here, at import.
TOOL_SPECS: tuple[ToolSpec, ...] = tuple(ToolSpec(tool_function(row), row) for row in TOOLS)
TOOL_NAMES = tuple(spec.name for spec in TOOL_SPECS)


def build_server(
    settings: Settings,
    *,
    services: Services | None = None,
    read_only: bool = False,
    tools: Sequence[str] | None = None,
    policy: Policy | None = None,
) -> MCPServer[dict[str, Any]]:
    """The MCP server with the chosen tools, the error catalog resources and the prompts.

    `services` is closed by whoever made it; without one the server makes its own and
    closes it when it stops. `read_only` keeps only the read-only tools; `tools` names a
    subset (unknown names raise `ConfigurationError`). Both default to the settings
    (`CRMOPS_READ_ONLY`, `CRMOPS_TOOLS`). `policy` is who may call what (default: the
    `CRMOPS_MCP_*` access rules in the environment, `tools.policy.policy_from_settings`);
    every call is checked against it, a write before it is confirmed (`server.confirm`).
    """
    specs = select_tools(
        read_only=read_only or settings.crmops.read_only,
        names=tools if tools is not None else parse_tool_names(settings.crmops.tools),
    )
    owned = services is None
    in_use = services if services is not None else Services(settings)
    access = Access(in_use, policy if policy is not None else policy_from_settings(None))
    gate = WriteGate(in_use, mode=settings.crmops.mcp_confirm_writes, before=access.before_asking)
    server: MCPServer[dict[str, Any]] = MCPServer(
        # The name is also the audience of a confirmation's sealed state: the same on every
        # replica, so a second request may reach any of them (server.confirm).
        "crmops",
        title="crmops",
        version=_version(),
        instructions=INSTRUCTIONS,
        lifespan=_closing(in_use) if owned else None,
        tools=[StrictTool.serving(spec, in_use, gate, access) for spec in specs],
        request_state_security=state_security(settings.crmops),
    )
    _add_catalog_resources(server)
    _add_prompts(server)
    # tools/list shows each caller only the tools its token's scopes cover (server.identity).
    server.middleware.append(CallableToolsOnly())
    return server


def _version() -> str:
    try:
        return metadata.version("crmops")
    except metadata.PackageNotFoundError:  # running from a checkout that is not installed
        return "0+unknown"


def parse_tool_names(text: str | None) -> list[str] | None:
    """`"a, b"` → `["a", "b"]`; None or blank → None (all tools)."""
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    return names or None


def select_tools(*, read_only: bool, names: Sequence[str] | None) -> list[ToolSpec]:
    """The specs to register; `ConfigurationError` for unknown names or an empty choice."""
    if names is not None:
        unknown = sorted(set(names) - set(TOOL_NAMES))
        if unknown:
            raise ConfigurationError(
                vendor="crmops",
                detail=f"the tool list (CRMOPS_TOOLS or --tools) names unknown tool(s) "
                f"{', '.join(unknown)}; the tools are {', '.join(TOOL_NAMES)}",
            )
    chosen = [spec for spec in TOOL_SPECS if names is None or spec.name in names]
    if read_only:
        dropped = [spec.name for spec in chosen if not spec.row.read_only]
        if dropped:
            log.info("read-only mode: not serving %s", ", ".join(dropped))
        chosen = [spec for spec in chosen if spec.row.read_only]
    if not chosen:
        raise ConfigurationError(
            vendor="crmops",
            detail="no tool left to serve: CRMOPS_TOOLS names only tools that change data, "
            "and read-only mode is on",
        )
    return chosen


def as_mcp_tool(
    spec: ToolSpec,
    services: Services,
    gate: WriteGate | None = None,
    access: Access | None = None,
) -> Callable[..., Awaitable[BaseModel]]:
    """A function MCPServer can register: the tool's own arguments plus the MCP `Context`.

    The signature is the tool function's without the adapter's parameters, so MCPServer
    derives the same input schema, descriptions and output schema. Every call is checked
    first: the caller's token scope and the access policy (`access`, default: the
    `CRMOPS_MCP_*` rules of the environment). With a `gate`, a
    write (`server.confirm.CONFIRMED_TOOLS`) also takes a `confirmation` parameter the SDK
    fills by asking the user (before the tool runs, after the access check); the audit
    log's actor is the caller's principal (`server.identity.request_principal`).
    """
    signature = inspect.signature(spec.fn, eval_str=True)
    takes_services = "services" in signature.parameters
    takes_progress = "progress" in signature.parameters
    takes_actor = "actor" in signature.parameters
    own = [p for p in signature.parameters.values() if p.name not in _ADAPTER_PARAMETERS]
    gated = gate is not None and spec.name in CONFIRMED_TOOLS
    allowed = access if access is not None else Access(services, policy_from_settings(None))

    async def call(ctx: Context[Any, Any], **arguments: Any) -> BaseModel:
        outcome = arguments.pop(CONFIRMATION_PARAMETER, None)
        if takes_progress:
            arguments["progress"] = _progress_reporter(ctx)
        if takes_actor:
            arguments["actor"] = audit_actor(request_principal(ctx))
        leading = (services,) if takes_services else ()
        try:
            if gate is not None and gated:
                await gate.go_ahead(ctx, spec.name, outcome)  # access checked before asking
            else:
                await allowed.check(ctx, spec.row, arguments)
            # Metrics, a span (a child of the SDK's `tools/call`) and the log context.
            return await observe_tool(spec.name, "mcp", spec.fn(*leading, **arguments))
        except CrmopsError as exc:
            raise ToolError(str(exc)) from exc
        except ToolError:
            raise
        except Exception as exc:
            log.exception("tool %s failed unexpectedly", spec.name)
            raise ToolError(
                f"{spec.name} failed with an internal error; the crmops server log has the "
                "details. Retrying will probably not help."
            ) from exc

    parameters = [
        *own,
        inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context),
    ]
    if gate is not None and gated:
        parameters.append(gate.parameter(spec.name, [p.name for p in own]))
    call.__name__ = spec.name
    call.__qualname__ = spec.name
    call.__doc__ = inspect.getdoc(spec.fn)
    call.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    call.__annotations__ = {p.name: p.annotation for p in parameters} | {
        "return": signature.return_annotation
    }
    return call


class StrictTool(Tool):
    """An MCP tool that refuses arguments it does not take, instead of dropping them.

        server = MCPServer("crmops", tools=[StrictTool.serving(spec, services)])

    Its input schema comes from an argument model that forbids extra keys, so the listed
    schema says `additionalProperties: false`; a call with an unknown argument gets a
    `ToolError` naming the closest known one before anything is validated or run.
    """

    @classmethod
    def serving(
        cls,
        spec: ToolSpec,
        services: Services,
        gate: WriteGate | None = None,
        access: Access | None = None,
    ) -> StrictTool:
        """`spec`'s tool function as a strict MCP tool on `services`, its calls checked by
        `access` and its writes confirmed through `gate` (see `as_mcp_tool`)."""
        built = cls.from_function(
            as_mcp_tool(spec, services, gate, access),
            name=spec.name,
            title=spec.row.title,
            annotations=spec.annotations,
            structured_output=True,
        )
        tool = cast(StrictTool, built)  # from_function builds an instance of `cls`
        tool.fn_metadata.arg_model = _forbidding_extras(tool.fn_metadata.arg_model)
        tool.parameters = tool.fn_metadata.arg_model.model_json_schema(by_alias=True)
        return tool

    @property
    def argument_names(self) -> list[str]:
        """The names a caller may pass, in the schema's order."""
        fields = self.fn_metadata.arg_model.model_fields
        return [field.alias or name for name, field in fields.items()]

    async def run(
        self, arguments: dict[str, Any], context: Context[Any, Any], convert_result: bool = False
    ) -> Any:
        """Refuse unknown arguments (`ToolError`), then run the tool as MCPServer does."""
        refuse_unknown_arguments(self.name, arguments, self.argument_names)
        return await super().run(arguments, context, convert_result=convert_result)


def _forbidding_extras(model: type[ArgModelBase]) -> type[ArgModelBase]:
    # A subclass of the same name, so the schema's title does not change.
    namespace = {"model_config": ConfigDict(extra="forbid"), "__module__": model.__module__}
    return cast(type[ArgModelBase], type(model.__name__, (model,), namespace))


def refuse_unknown_arguments(tool: str, arguments: Mapping[str, Any], known: Sequence[str]) -> None:
    """Raise `ToolError` if `arguments` has a name not in `known`, naming the closest known one.

    `unknown argument "dryRun" for import_customer; did you mean "dry_run"? (known: ...)`
    """
    accepted = frozenset(known)
    unknown = [name for name in arguments if name not in accepted]
    if not unknown:
        return
    raise ToolError(
        f"{_unknown_names(tool, unknown, known)} (known: {', '.join(known) or 'none'}). "
        "Nothing was done: call again with only the known arguments."
    )


def _unknown_names(tool: str, unknown: Sequence[str], known: Sequence[str]) -> str:
    if len(unknown) == 1:
        closest = _closest(unknown[0], known)
        hint = f'; did you mean "{closest}"?' if closest else ""
        return f"unknown argument {_quoted(unknown[0])} for {tool}{hint}"
    named = []
    for name in unknown[:MAX_UNKNOWN_ARGUMENTS_NAMED]:
        closest = _closest(name, known)
        named.append(_quoted(name) + (f' (did you mean "{closest}"?)' if closest else ""))
    more = len(unknown) - len(named)
    return f"unknown arguments {', '.join(named)}{f' and {more} more' if more else ''} for {tool}"


def _closest(name: str, known: Sequence[str]) -> str | None:
    """The known name `name` is most likely a typo of, also after camelCase or kebab-case
    becomes snake_case; None if none is close."""
    if len(name) > MAX_ARGUMENT_NAME_SHOWN:
        return None  # too long to be a typo of a known name
    for form in (_snake_case(name), name):
        closest = difflib.get_close_matches(form, known, n=1, cutoff=0.6)
        if closest:
            return closest[0]
    return None


def _snake_case(name: str) -> str:
    """`dryRun`, `dry-run`, `Dry_Run` → `dry_run`."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).replace("-", "_").lower()


def _quoted(name: str) -> str:
    """`name` in double quotes, cut short and with unprintable characters (line breaks,
    bidi overrides) escaped, so a hostile name cannot forge or hide text in the error."""
    shown = "".join(
        char if char.isprintable() and char not in '"\\' else f"\\u{ord(char):04x}"
        for char in name[:MAX_ARGUMENT_NAME_SHOWN]
    )
    return f'"{shown}"' + ("…" if len(name) > MAX_ARGUMENT_NAME_SHOWN else "")


def audit_actor(principal: Principal) -> Actor:
    """The audit log's actor for an MCP call made by `principal` (`Actor.of`): the token's
    subject, or the static token, with the client's self-reported name marked as such."""
    return Actor.of(principal)


class Access:
    """The check every tool call passes before it runs (a write: before it is confirmed):
    the credential's scope for the tool, then the one access policy (`tools.policy`), which
    audits a refused write."""

    def __init__(self, services: Services, policy: Policy) -> None:
        self.services = services
        self.policy = policy

    async def check(
        self, ctx: Context[Any, Any], row: ToolRow, arguments: Mapping[str, Any]
    ) -> None:
        """Return when the caller of `ctx` may call `row`'s tool; `ToolError` for a missing
        scope, `AccessDeniedError` (a `CrmopsError`) when the policy refuses."""
        principal = request_principal(ctx)
        if principal.scopes is not None and not may_call(principal, row.name):
            raise ToolError(_missing_scope(row.name))
        await check_access(
            self.policy,
            self.services,
            principal,
            row.name,
            writes=row.writes,
            vendor=_vendor_of(row, arguments),
        )

    async def before_asking(
        self, ctx: Context[Any, Any], tool: str, arguments: Mapping[str, Any]
    ) -> None:
        """`check` for a tool of the table, by name: `server.confirm.WriteGate`'s hook."""
        await self.check(ctx, tool_row(tool), arguments)


def _vendor_of(row: ToolRow, arguments: Mapping[str, Any]) -> str:
    if row.name in (CREATE_TICKET.name, LIST_TICKETS.name):
        return "bangwo8"
    vendor = arguments.get("vendor")
    return vendor if isinstance(vendor, str) else ""


def _missing_scope(tool: str) -> str:
    try:
        scope = f"the scope {tool_scope(tool)}"
    except KeyError:  # a tool outside the tool table: no scope grants it
        scope = "a scope"
    return (
        f"{tool} was not run: the access token lacks {scope} it needs. Ask the "
        "authorization server's administrator for a token with it."
    )


def _progress_reporter(ctx: Context[Any, Any]) -> Callable[[int, int], Awaitable[None]]:
    async def report(done: int, total: int) -> None:
        await ctx.report_progress(done, total, f"{done} of {total} records sent")

    return report


def _closing(
    services: Services,
) -> Callable[[MCPServer[dict[str, Any]]], AbstractAsyncContextManager[dict[str, Any]]]:
    @asynccontextmanager
    async def lifespan(_: MCPServer[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
        try:
            yield {}
        finally:
            await services.aclose()

    return lifespan


# --- the error catalog as resources ---------------------------------------------------------


def _add_catalog_resources(server: MCPServer[dict[str, Any]]) -> None:
    @server.resource(
        "crmops://errors",
        name="error_catalog",
        title="Vendor error catalog",
        description="Every documented error code of SocialEpoch, Xiaolanben and Bangwo8: "
        "message, meaning (zh, en), what to do.",
        mime_type="application/json",
    )
    def error_catalog() -> str:
        return _catalog_json(None)

    @server.resource(
        "crmops://errors/{vendor}",
        name="vendor_error_catalog",
        title="One vendor's error codes",
        description="The documented error codes of one vendor: socialepoch, xiaolanben or bangwo8.",
        mime_type="application/json",
    )
    def vendor_error_catalog(vendor: str) -> str:
        if vendor not in VENDORS:
            raise ResourceNotFoundError(
                f"no vendor {vendor!r}; the vendors are {', '.join(VENDORS)}"
            )
        return _catalog_json(vendor)


def _catalog_json(vendor: str | None) -> str:
    try:
        entries: Iterable[Any] = load_catalog().entries
    except (OSError, ValueError) as exc:
        log.exception("the error catalog cannot be read")
        raise ResourceError("the error catalog is not available on this server") from exc
    chosen = [e.model_dump() for e in entries if vendor is None or e.vendor == vendor]
    return json.dumps(chosen, ensure_ascii=False, indent=1)


# --- prompts --------------------------------------------------------------------------------

TRIAGE_PROMPT = """\
An import of customers into {vendor} did not fully succeed. Here is what came back:

{failure}

Triage it:
1. If it is a validation error (a list of record indexes and fields), fix each named field
   in the named record, explain each fix in one line, and run import_customer again with
   dry_run=true on the corrected records before sending them.
2. If records failed or the call failed with a vendor code, call lookup_error_code with
   that code and vendor="{vendor}" and group the failures by cause.
3. For each cause say whether to fix the data, fix the configuration (credentials,
   clock, account permissions), wait and retry (rate limit, vendor outage), or ask the
   vendor.
4. List the records to send again: only the failed ones. Do not re-send records that were
   created, updated or accepted.
Answer with a short table (record, cause, action) and then the next step."""


def _add_prompts(server: MCPServer[dict[str, Any]]) -> None:
    @server.prompt(
        name="triage_failed_import",
        title="Triage a failed customer import",
        description="Explain why an import_customer call failed, per record, and what to "
        "do: fix data, fix configuration, retry, or re-send only the failed records.",
    )
    def triage_failed_import(
        vendor: Annotated[str, Field(description="socialepoch or xiaolanben")],
        failure: Annotated[
            str, Field(description="the import_customer error text or its result JSON")
        ],
    ) -> str:
        return TRIAGE_PROMPT.format(vendor=vendor, failure=failure.strip())
