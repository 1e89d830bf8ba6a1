"""What the modules of a package import and use, read from their source with `ast`.

Nothing is imported or executed. Every import counts wherever it is written: at the top, inside
a function, under `if TYPE_CHECKING:`, or as `importlib.import_module("name")` with a literal
name. Besides imports, dotted attribute uses through an imported name are recorded
(`trio.to_thread.run_sync(...)` after `import trio`, `to_thread.run_sync` after
`from trio import to_thread`), and so are attribute uses on anything else, as `*.name`
(`token.run_sync_soon(...)` is `*.run_sync_soon`).

Used by `tests/test_layering.py`, which turns these facts into the layering rules.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Ref:
    """One import or use of a dotted name in a module."""

    target: str  # "xnatfs.errors.NotFound", "trio.to_thread.run_sync", "threading", "*.name"
    line: int
    imported: bool  # an import (statement or importlib call), not an attribute use


@dataclass
class Module:
    name: str  # "xnatfs.data.downloads"; a package is named by its directory
    path: str  # "xnatfs/data/downloads.py", relative to the package's parent directory
    is_package: bool
    lines: int
    refs: list[Ref] = field(default_factory=list)

    @property
    def imports(self) -> Iterator[Ref]:
        return (r for r in self.refs if r.imported)


def scan_package(root: Path) -> dict[str, Module]:
    """Every module under the package directory `root`, by dotted name."""
    modules: dict[str, Module] = {}
    for file in sorted(root.rglob("*.py")):
        rel = file.relative_to(root.parent)
        parts = list(rel.with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        name = ".".join(parts)
        text = file.read_text()
        tree = ast.parse(text, filename=str(rel))
        package = name if is_package else name.rpartition(".")[0]
        refs = list(_refs(tree, package))
        modules[name] = Module(name, rel.as_posix(), is_package, len(text.splitlines()), refs)
    return modules


def _absolute(module: str | None, level: int, package: str) -> str:
    """The absolute name of `from <level dots><module> import ...` in `package`."""
    if level == 0:
        return module or ""
    base = package.split(".")
    if level > 1:
        base = base[: -(level - 1)]
    return ".".join([*base, module] if module else base)


def _refs(tree: ast.AST, package: str) -> Iterator[Ref]:
    aliases: dict[str, str] = {}  # local name -> the dotted name it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Ref(alias.name, node.lineno, True)
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    root = alias.name.partition(".")[0]
                    aliases[root] = root
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, package)
            for alias in node.names:
                target = base if alias.name == "*" else f"{base}.{alias.name}"
                yield Ref(target, node.lineno, True)
                if alias.name != "*":
                    aliases[alias.asname or alias.name] = target
        elif isinstance(node, ast.Call) and _is_import_call(node.func):
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                yield Ref(arg.value, node.lineno, True)
    # Attribute uses, once every alias of the module is known (ast.walk is breadth-first, so
    # an import inside a function is seen after uses at module level).
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            chain = [node.attr]
            value = node.value
            while isinstance(value, ast.Attribute):
                chain.append(value.attr)
                value = value.value
            chain.reverse()
            if isinstance(value, ast.Name) and value.id in aliases:
                yield Ref(".".join([aliases[value.id], *chain]), node.lineno, False)
            else:
                yield Ref(".".join(["*", *chain]), node.lineno, False)


def _is_import_call(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in ("__import__", "import_module")
    return isinstance(func, ast.Attribute) and func.attr == "import_module"


def resolve(target: str, modules: dict[str, Module]) -> str | None:
    """The module `target` names or lies in (its longest prefix that is a module), if any."""
    parts = target.split(".")
    for n in range(len(parts), 0, -1):
        name = ".".join(parts[:n])
        if name in modules:
            return name
    return None


def import_graph(modules: dict[str, Module]) -> dict[str, dict[str, list[int]]]:
    """module -> the modules of the package it imports -> the lines of those imports."""
    graph: dict[str, dict[str, list[int]]] = {name: {} for name in modules}
    for name, module in modules.items():
        for ref in module.imports:
            target = resolve(ref.target, modules)
            if target is not None and target != name:
                graph[name].setdefault(target, []).append(ref.line)
    return graph


def cycles(graph: dict[str, dict[str, list[int]]]) -> list[list[str]]:
    """The strongly connected groups of more than one module, each sorted, in name order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan; the import graph of a package is small
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)
