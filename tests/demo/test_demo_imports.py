"""The demo server's modules import each other without a cycle.

Every import statement counts, wherever it stands: at module level, under `if TYPE_CHECKING:` or
inside a function, so neither kind can hide a cycle. A submodule's implicit import of its parent
package does not count: `xnatfs/demo/__init__.py` re-exports `DemoServer`, so it imports nearly
everything, and Python finishes it before any submodule is imported from outside.
"""

from __future__ import annotations

import ast
from pathlib import Path

import xnatfs.demo

DEMO = Path(xnatfs.demo.__file__).parent
PACKAGE = "xnatfs.demo"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(DEMO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGE, *parts])


def _demo_modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(DEMO.rglob("*.py"))}


def _imported(name: str, path: Path, modules: set[str]) -> set[str]:
    """The demo modules that `name` (at `path`) imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                # `from package import module` imports that module, `from module import x` the
                # module itself.
                submodule = f"{source}.{alias.name}"
                found.add(submodule if submodule in modules else source)
    return (found & modules) - {name}


def _import_graph() -> dict[str, set[str]]:
    modules = _demo_modules()
    return {name: _imported(name, path, set(modules)) for name, path in modules.items()}


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a path that ends where it starts, or None."""
    done: set[str] = set()
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in stack:
            return [*stack[stack.index(node) :], node]
        if node in done:
            return None
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            cycle = visit(target)
            if cycle is not None:
                return cycle
        stack.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start)
        if cycle is not None:
            return cycle
    return None


def test_find_cycle_reports_a_cycle_and_accepts_a_tree() -> None:
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_type_checking_and_function_level_imports_are_edges(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from xnatfs.demo.app import DemoApp\n"
        "def f():\n"
        "    from xnatfs.demo import listings\n"
        "    from . import selectors\n",
        encoding="utf-8",
    )
    known = {"xnatfs.demo.app", "xnatfs.demo.listings", "xnatfs.demo.selectors"}
    assert _imported("xnatfs.demo.m", module, known) == known


def test_demo_modules_import_each_other_without_a_cycle() -> None:
    graph = _import_graph()
    # The graph is really read: the route table imports the handler modules.
    assert "xnatfs.demo.routes.files" in graph["xnatfs.demo.app"]
    assert "xnatfs.demo.wire" in graph["xnatfs.demo.routes.resolve"]
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
