"""The house rules of ARCHITECTURE.md, checked on the source: imports point down the layers,
`server/` and `bots/` never import each other, nothing outside the sandbox imports the
simulators, every vendor folder holds the same files, and no import cycle exists anywhere.

Imports inside functions count (they run too); only `if TYPE_CHECKING:` imports, which never
run, are left out. A new module under `tools/` that no rule names is a tool function (layer
`tools`): the strictest place that can still import everything below.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("tools", "server", "bots")

# Lowest first: a module may import its own layer and the layers before it, never one after.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "core",
        (
            "tools.errors",
            "tools.catalog",
            "tools.settings",
            "tools.aio",
            "tools.text",
            "tools.models",
            "tools.transport",
            "tools.redaction",
            "tools.identity",
            "tools.observability",
            "tools.i18n",
        ),
    ),
    ("vendors", ("tools.vendors",)),
    ("storage", ("tools.storage",)),
    ("services", ("tools.services",)),
    ("bulk", ("tools.bulk",)),
    # The tool functions, the tool table, and `tools.policy` (the access policy Slack and MCP
    # consult: it reads the tool table and writes refusals to the audit log).
    ("tools", ("tools",)),
    ("sandbox", ("tools.sandbox",)),
    ("adapters", ("server", "bots")),
)
VENDOR_FILES = {"__init__.py", "auth.py", "client.py", "errors.py", "models.py"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    """Every first-party module by dotted name."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[module_name(path)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: all of them but those under TYPE_CHECKING."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from (n for branch in node.orelse for n in _import_nodes_of(branch))
            continue
        yield from _import_nodes_of(node)


def _import_nodes_of(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    else:
        yield from _import_nodes(node)


def _load_time_import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports that run when the module is imported: not those inside a function."""
    for node in _import_nodes(tree):
        if not _inside_function(tree, node):
            yield node


def _inside_function(tree: ast.AST, target: ast.AST) -> bool:
    functions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
    return any(target in ast.walk(node) for node in ast.walk(tree) if isinstance(node, functions))


def _targets(node: ast.Import | ast.ImportFrom, known: dict[str, Path]) -> Iterator[str]:
    """The first-party modules an import statement loads (a `from pkg import mod` is `pkg.mod`)."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names if alias.name in known)
        return
    if node.level or node.module is None:
        return
    for alias in node.names:
        submodule = f"{node.module}.{alias.name}"
        if submodule in known:
            yield submodule
        elif node.module in known:
            yield node.module


@cache
def imports(*, load_time_only: bool = False) -> dict[str, frozenset[str]]:
    """Each first-party module and the first-party modules it imports (`load_time_only`:
    only those that importing the module runs)."""
    known = modules()
    walk = _load_time_import_nodes if load_time_only else _import_nodes
    graph = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        graph[name] = frozenset(t for n in walk(tree) for t in _targets(n, known))
    return graph


def _is_sandbox(module: str) -> bool:
    """A module of the sandbox: `tools.sandbox…`, `server.sandbox…`, `server.cli_sandbox`,
    `bots.sandbox` and the fake Slack it serves."""
    return any("sandbox" in part for part in module.split(".")) or module == "bots.fake_slack"


def _loaded_with(module: str) -> set[str]:
    """Every first-party module that importing `module` loads, itself included."""
    graph = imports(load_time_only=True)
    seen, todo = {module}, [module]
    while todo:
        for target in graph[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def layer(module: str) -> int:
    """The index in LAYERS of the layer `module` belongs to (its longest matching prefix)."""
    best, best_length = -1, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    assert best >= 0, f"{module} is in no layer"
    return best


def _edges() -> Iterator[tuple[str, str]]:
    for source, targets in imports().items():
        for target in sorted(targets):
            yield source, target


def test_imports_point_down_the_layers() -> None:
    upward = [
        f"{source} ({LAYERS[layer(source)][0]}) imports {target} ({LAYERS[layer(target)][0]})"
        for source, target in _edges()
        if layer(target) > layer(source)
    ]
    assert upward == []


def test_server_and_bots_never_import_each_other() -> None:
    crossing = [
        f"{source} imports {target}"
        for source, target in _edges()
        if {source.partition(".")[0], target.partition(".")[0]} == {"server", "bots"}
    ]
    assert crossing == []


def test_only_the_sandbox_imports_the_simulators() -> None:
    """What `crmops mcp`, `slack`, `import` and the tool commands load never reaches a simulator:
    only modules of the sandbox itself (`_is_sandbox`) import it."""
    leaks = [
        f"{source} imports {target}"
        for source, target in _edges()
        if target.startswith("tools.sandbox") and not _is_sandbox(source)
    ]
    assert leaks == []


def test_no_production_module_loads_the_sandbox() -> None:
    """`crmops slack`, `mcp`, `import` and the tool commands never load a simulator or the
    fake Slack: importing any module outside the sandbox loads none (a sandbox module may be
    imported inside a function that only the sandbox runs, as `bots.run` does)."""
    production = [name for name in modules() if not _is_sandbox(name)]
    leaks = {
        name: sorted(filter(_is_sandbox, _loaded_with(name)))
        for name in production
        if any(map(_is_sandbox, _loaded_with(name)))
    }
    assert leaks == {}


def test_every_vendor_folder_holds_the_same_files() -> None:
    folders = [p for p in (ROOT / "tools" / "vendors").iterdir() if (p / "__init__.py").exists()]
    assert len(folders) >= 3
    for folder in folders:
        files = {p.name for p in folder.glob("*.py")}
        assert files == VENDOR_FILES, folder.name


def _cycles(graph: dict[str, frozenset[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module, or a module importing itself
    (Tarjan's algorithm, iteratively: the graph is the whole code base)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root, targets in graph.items():
        if root in index:
            continue
        work = [(root, iter(sorted(targets)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    found.append(sorted(component))
    return found


def test_no_import_cycle() -> None:
    assert _cycles(imports()) == []


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": frozenset({"b"}), "b": frozenset()}, []),
        ({"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"})}, [["a", "b", "c"]]),
        ({"a": frozenset({"a"})}, [["a"]]),
    ],
)
def test_the_cycle_finder_finds_cycles(
    graph: dict[str, frozenset[str]], expected: list[list[str]]
) -> None:
    assert _cycles(graph) == expected


def test_an_upward_import_is_seen(tmp_path: Path) -> None:
    """The checker reads function-level imports and skips TYPE_CHECKING ones."""
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from tools.bulk import engine\n"
        "def f():\n    from tools.sandbox import stack\n"
    )
    known = {"tools.bulk.engine": tmp_path, "tools.sandbox.stack": tmp_path}
    found = {t for node in _import_nodes(tree) for t in _targets(node, known)}
    assert found == {"tools.sandbox.stack"}
    assert layer("tools.sandbox.stack") > layer("tools.errors")
