"""The layering rules of docs/architecture.md, checked on the source of every module of xnatfs.

Imports count wherever they are written (top level, functions, `if TYPE_CHECKING:`). The rules:
- pyfuse3 only in xnatfs/fuse/ (and, for now, xnatfs/app/mount.py); requests only in xnatfs/xnat/;
- threads are entered only in xnatfs/remote.py: `trio.to_thread`, `trio.from_thread`,
  `run_sync_soon`, `current_trio_token` nowhere else, and the `threading` module only there, in
  the synchronous code of xnatfs/xnat/ and xnatfs/demo/ (which uses no trio at all), and in
  xnatfs/app/ for process plumbing;
- each layer imports only the layers below it (`LAYERS`); the demo server only itself and the
  standard library;
- no import cycles among xnatfs modules; no module over `MAX_LINES` lines.

Rules that do not hold yet are listed exactly in `KNOWN_VIOLATIONS`: the test fails on any other
violation, and on a listed one that no longer occurs (remove it then).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.sourcescan import Module, Ref, cycles, import_graph, resolve, scan_package

# Violations of the rules below that exist today. Each must go from this set in the change that
# fixes it.
KNOWN_VIOLATIONS: set[str] = set()

MAX_LINES = 400
# Modules that were longer than MAX_LINES when the rule came, with their length then: they may
# not grow, and leave this list when they are split.
LONG_MODULES: dict[str, int] = {}

REPO = Path(__file__).resolve().parents[1]

# Only xnat/paths.py and xnat/archive.py are pure helpers; the rest of xnat/ is the client.
XNAT_PURE = ("xnatfs.xnat.paths", "xnatfs.xnat.archive")
# What each layer may import from xnatfs besides itself. A layer is a package under xnatfs/ or a
# top-level module; "xnatfs" is the root package (it holds only `__version__`).
LAYERS: dict[str, tuple[str, ...]] = {
    "xnatfs": (),
    "__main__": ("xnatfs.app",),
    "app": ("xnatfs",),  # the composition root builds everything
    "fuse": ("xnatfs.fs", "xnatfs.config", "xnatfs.errors"),
    "fs": ("xnatfs.namespace", "xnatfs.data", "xnatfs.fileversion", "xnatfs.errors"),
    "data": (
        "xnatfs.cache",
        "xnatfs.remote",
        "xnatfs.namespace.values",
        "xnatfs.singleflight",
        *XNAT_PURE,
        "xnatfs.fileversion",
        "xnatfs.errors",
        "xnatfs.config",
    ),
    "namespace": (
        *XNAT_PURE,
        "xnatfs.singleflight",
        "xnatfs.fileversion",
        "xnatfs.errors",
        "xnatfs.config",
    ),
    "cache": ("xnatfs.fileversion", "xnatfs.errors", "xnatfs.config"),
    "remote": ("xnatfs.xnat", "xnatfs.errors"),
    "singleflight": ("xnatfs.errors",),
    "fileversion": ("xnatfs.errors",),  # the one file-version value namespace, data, cache share
    "xnat": ("xnatfs.errors", "xnatfs.__version__"),
    "demo": (),
    "config": ("xnatfs.errors",),
    "errors": (),
}
# Single modules that may import one thing more than their layer.
MODULE_EXTRAS: dict[str, tuple[str, ...]] = {
    "xnatfs.namespace.listings": ("xnatfs.remote",),  # the namespace's one module that asks
    "xnatfs.demo.__main__": ("xnatfs.errors", "xnatfs.config"),  # options like the mount's
}


@dataclass(frozen=True)
class Violation:
    key: str  # what KNOWN_VIOLATIONS lists: stable across edits (no line numbers)
    why: str
    where: tuple[str, ...]  # path:line of each occurrence


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def inside(*places: str) -> Callable[[str], bool]:
    return lambda path: any(path == p or (p.endswith("/") and path.startswith(p)) for p in places)


def outside(*places: str) -> Callable[[str], bool]:
    return lambda path: not inside(*places)(path)


def imports_of(name: str) -> Callable[[Ref], bool]:
    return lambda ref: ref.imported and within(ref.target, name)


def uses_of(name: str) -> Callable[[Ref], bool]:
    return lambda ref: within(ref.target, name)


def attribute(name: str) -> Callable[[Ref], bool]:
    return lambda ref: name in ref.target.split(".")


THREAD_BOUNDARY = inside("xnatfs/remote.py", "xnatfs/xnat/", "xnatfs/demo/")
# (what, how it shows in a module, where it is allowed, why)
CONFINED: list[tuple[str, Callable[[Ref], bool], Callable[[str], bool], str]] = [
    (
        "pyfuse3",
        imports_of("pyfuse3"),
        inside("xnatfs/fuse/", "xnatfs/app/mount.py"),
        "only the FUSE adapter (and, for now, the composition root) speaks pyfuse3",
    ),
    ("requests", imports_of("requests"), inside("xnatfs/xnat/"), "only xnat/ speaks HTTP"),
    (
        "threading",
        imports_of("threading"),
        inside("xnatfs/remote.py", "xnatfs/xnat/", "xnatfs/demo/", "xnatfs/app/"),
        "threads live in remote.py, the synchronous xnat/ and demo/, and app/ plumbing",
    ),
    *(
        (what, match, THREAD_BOUNDARY, "threads are entered and left only in xnatfs/remote.py")
        for what, match in (
            ("trio.to_thread", uses_of("trio.to_thread")),
            ("trio.from_thread", uses_of("trio.from_thread")),
            ("run_sync_soon", attribute("run_sync_soon")),
            ("current_trio_token", attribute("current_trio_token")),
        )
    ),
    (
        "trio",
        imports_of("trio"),
        outside("xnatfs/xnat/", "xnatfs/demo/"),
        "xnat/ and demo/ are synchronous code run in threads",
    ),
]


def layer_of(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def shown(target: str, modules: Mapping[str, Module]) -> str:
    """The imported module, or the name imported from a package (`xnatfs.__version__`)."""
    module = resolve(target, modules)
    if module is None or modules[module].is_package:
        return target
    return module


def check(root: Path, long_modules: Mapping[str, int]) -> list[Violation]:
    """Every violation of the rules in the package at `root` (a directory named xnatfs)."""
    modules = scan_package(root)
    found: dict[str, tuple[str, list[str]]] = {}

    def add(key: str, why: str, path: str, line: int, note: str = "") -> None:
        where = found.setdefault(key, (why, []))[1]
        place = f"{path}:{line}{note}"
        if place not in where:  # `trio.to_thread.run_sync` is two uses on one line
            where.append(place)

    for name, module in modules.items():
        path = module.path
        for what, matches, allowed, why in CONFINED:
            if not allowed(path):
                for ref in module.refs:
                    if matches(ref):
                        add(f"{path} uses {what}", why, path, ref.line)
        layer = layer_of(name)
        if layer not in LAYERS:
            add(f"{path}: no layer rule for {layer}", "add it to LAYERS", path, 1)
            continue
        allowed_imports = (*LAYERS[layer], *MODULE_EXTRAS.get(name, ()))
        for ref in module.imports:
            root_name = ref.target.partition(".")[0]
            if layer == "demo" and root_name not in ("xnatfs", *sys.stdlib_module_names):
                why = "the demo server uses only the standard library"
                add(f"{path} uses {root_name}", why, path, ref.line)
            if root_name != "xnatfs" or within(ref.target, f"xnatfs.{layer}"):
                continue
            if not any(within(ref.target, ok) for ok in allowed_imports):
                why = f"{layer} may import only: " + (", ".join(allowed_imports) or "itself")
                add(f"{path} imports {shown(ref.target, modules)}", why, path, ref.line)
        limit = long_modules.get(path, MAX_LINES)
        if module.lines > limit:
            why = (
                "a LONG_MODULES entry may not grow; split it"
                if path in long_modules
                else f"no module over {MAX_LINES} lines; split it"
            )
            add(f"{path} has {module.lines} lines (at most {limit})", why, path, module.lines)

    graph = import_graph(modules)
    for group in cycles(graph):
        key = "import cycle among " + ", ".join(group)
        why = "the imports that close it (under TYPE_CHECKING too)"
        for src in group:
            for dst, lines in sorted(graph[src].items()):
                if dst in group:
                    for line in lines:
                        add(key, why, modules[src].path, line, f" imports {dst}")
    return [
        Violation(key, why, tuple(sorted(where, key=_place_order)))
        for key, (why, where) in sorted(found.items())
    ]


def _place_order(place: str) -> tuple[str, int]:
    path, _, rest = place.partition(":")
    return path, int(rest.split()[0])


def report(violations: Iterable[Violation], title: str) -> str:
    lines = [title]
    for v in violations:
        lines += ["", f"  {v.key}", f"      {v.why}", *(f"      at {w}" for w in v.where)]
    return "\n".join(lines)


def bench_imports(root: Path) -> list[str]:
    """Where modules under `root` import the benchmarks."""
    return [
        f"{module.path}:{ref.line} imports {ref.target}"
        for module in scan_package(root).values()
        for ref in module.imports
        if within(ref.target, "bench")
    ]


# --- the rules on xnatfs --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def violations() -> list[Violation]:
    return check(REPO / "xnatfs", LONG_MODULES)


def test_no_new_layering_violations(violations: list[Violation]) -> None:
    new = [v for v in violations if v.key not in KNOWN_VIOLATIONS]
    known = [v for v in violations if v.key in KNOWN_VIOLATIONS]
    print(report(known, f"{len(known)} known layering violations (KNOWN_VIOLATIONS):"))
    if new:
        pytest.fail(report(new, f"{len(new)} layering violations (rules: {__name__}):"))


def test_every_known_violation_still_occurs(violations: list[Violation]) -> None:
    fixed = KNOWN_VIOLATIONS - {v.key for v in violations}
    assert not fixed, f"fixed, so remove from KNOWN_VIOLATIONS: {sorted(fixed)}"


def test_long_modules_are_still_long() -> None:
    for path in LONG_MODULES:
        lines = len((REPO / path).read_text().splitlines()) if (REPO / path).exists() else 0
        assert lines > MAX_LINES, f"{path} has {lines} lines now: remove it from LONG_MODULES"


def test_the_tests_never_import_the_benchmarks() -> None:
    # The benchmarks may use the tests' helpers (tests/support), never the other way round.
    assert bench_imports(REPO / "tests") == []


# --- the checker itself ----------------------------------------------------------------------

# A package that breaks every rule once (and keeps some of them, which must not be reported).
SYNTHETIC = {
    "__init__.py": '__version__ = "0"\n',
    "__main__.py": "from xnatfs.app.cli import main\n",
    "errors.py": "class E(Exception): ...\n",
    "config.py": "from xnatfs.errors import E\n",
    "singleflight.py": "import trio\nfrom xnatfs import config\n",
    "remote.py": (
        "import threading\nimport trio\nfrom xnatfs.xnat.client import C\n\n"
        "async def f():\n    await trio.to_thread.run_sync(threading.get_ident)\n"
    ),
    "fuse/__init__.py": "",
    "fuse/ops.py": (
        "import pyfuse3\nfrom ..errors import E\nfrom .. import remote\n"
        "from xnatfs.fs.core import F\n"
    ),
    "fs/__init__.py": "",
    "fs/core.py": (
        "from typing import TYPE_CHECKING\nfrom xnatfs.data.a import A\n\n"
        "if TYPE_CHECKING:\n    from xnatfs.app.mount import M\n\n"
        "def f():\n    import pyfuse3\n    return pyfuse3\n"
    ),
    "data/__init__.py": "",
    "data/a.py": (
        "import threading\nfrom trio import to_thread\nimport trio.lowlevel as low\n"
        "from xnatfs.namespace.listings import L\nfrom xnatfs.namespace.values import V\n"
        "from xnatfs.xnat import paths\nfrom xnatfs.xnat.client import C\n"
        "from xnatfs.data import b\n\n"
        "async def f(token):\n    await to_thread.run_sync(print)\n"
        "    low.current_trio_token()\n    token.run_sync_soon(print)\n"
    ),
    "data/b.py": "def g():\n    from xnatfs.data.a import f\n    return f\n",
    "namespace/__init__.py": "",
    "namespace/listings.py": (
        "import trio as t\nfrom xnatfs.remote import R\n\n"
        "def f():\n    return t.from_thread.run_sync\n"
    ),
    "namespace/values.py": (
        "import importlib\nfrom xnatfs.remote import R\n"
        'http = importlib.import_module("requests")\n'
    ),
    "cache/__init__.py": "",
    "cache/disk.py": "from xnatfs.remote import R\n" + "x = 1\n" * 400,
    "cache/long.py": "x = 1\n" * 420,
    "xnat/__init__.py": "",
    "xnat/paths.py": "",
    "xnat/client.py": (
        "import threading\nimport requests\nimport trio\nfrom xnatfs import __version__\n"
        "from xnatfs.config import X\n"
    ),
    "demo/__init__.py": (
        "import json\nimport numpy\nfrom xnatfs.errors import E\nfrom xnatfs.demo import site\n"
    ),
    "demo/site.py": "",
    "demo/__main__.py": (
        "from xnatfs.errors import E\nfrom xnatfs.config import C\nfrom xnatfs.demo import site\n"
    ),
    "app/__init__.py": "",
    "app/mount.py": (
        "import threading\nimport pyfuse3\nimport trio\nfrom xnatfs.fuse.ops import O\n"
        "from xnatfs.data.a import A\n\nasync def f():\n    await trio.to_thread.run_sync(print)\n"
    ),
    "app/cli.py": "import pyfuse3\n",
    "newpkg/__init__.py": "",
}


def write_package(root: Path, files: Mapping[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_the_checker_reports_each_rule_broken(tmp_path: Path) -> None:
    root = write_package(tmp_path / "xnatfs", SYNTHETIC)
    found = check(root, {"xnatfs/cache/long.py": 410})
    assert {v.key for v in found} == {
        "xnatfs/singleflight.py imports xnatfs.config",
        "xnatfs/fuse/ops.py imports xnatfs.remote",
        "xnatfs/fs/core.py imports xnatfs.app.mount",
        "xnatfs/fs/core.py uses pyfuse3",
        "xnatfs/data/a.py uses threading",
        "xnatfs/data/a.py uses trio.to_thread",
        "xnatfs/data/a.py uses current_trio_token",
        "xnatfs/data/a.py uses run_sync_soon",
        "xnatfs/data/a.py imports xnatfs.namespace.listings",
        "xnatfs/data/a.py imports xnatfs.xnat.client",
        "xnatfs/namespace/listings.py uses trio.from_thread",
        "xnatfs/namespace/values.py imports xnatfs.remote",
        "xnatfs/namespace/values.py uses requests",
        "xnatfs/cache/disk.py imports xnatfs.remote",
        "xnatfs/cache/disk.py has 401 lines (at most 400)",
        "xnatfs/cache/long.py has 420 lines (at most 410)",
        "xnatfs/xnat/client.py uses trio",
        "xnatfs/xnat/client.py imports xnatfs.config",
        "xnatfs/demo/__init__.py uses numpy",
        "xnatfs/demo/__init__.py imports xnatfs.errors",
        "xnatfs/app/mount.py uses trio.to_thread",
        "xnatfs/app/cli.py uses pyfuse3",
        "xnatfs/newpkg/__init__.py: no layer rule for newpkg",
        "import cycle among xnatfs.data.a, xnatfs.data.b",
        # The TYPE_CHECKING import closes a cycle too.
        "import cycle among xnatfs.app.mount, xnatfs.fs.core, xnatfs.fuse.ops",
    }
    by_key = {v.key: v for v in found}
    # Every occurrence is located, and the report says which rule.
    assert by_key["xnatfs/data/a.py uses run_sync_soon"].where == ("xnatfs/data/a.py:13",)
    cycle = by_key["import cycle among xnatfs.data.a, xnatfs.data.b"]
    assert cycle.where == (
        "xnatfs/data/a.py:8 imports xnatfs.data.b",
        "xnatfs/data/b.py:2 imports xnatfs.data.a",
    )
    text = report(found, "title")
    assert "  xnatfs/fs/core.py uses pyfuse3\n      only the FUSE adapter" in text
    assert "      at xnatfs/fs/core.py:8" in text


def test_the_checker_accepts_a_package_that_keeps_the_rules(tmp_path: Path) -> None:
    broken = (
        "singleflight.py",
        "fuse/ops.py",
        "fs/core.py",
        "data/a.py",
        "data/b.py",
        "namespace/listings.py",
        "namespace/values.py",
        "cache/disk.py",
        "cache/long.py",
        "xnat/client.py",
        "demo/__init__.py",
        "app/mount.py",
        "app/cli.py",
        "newpkg/__init__.py",
    )
    files = {rel: text for rel, text in SYNTHETIC.items() if rel not in broken}
    files["demo/__init__.py"] = "import json\nfrom xnatfs.demo import site\n"
    files["namespace/listings.py"] = "import trio\nfrom xnatfs.remote import R\n"
    files["app/mount.py"] = "import threading\nimport pyfuse3\nimport xnatfs.data.a\n"
    root = write_package(tmp_path / "xnatfs", files)
    assert check(root, {}) == []


def test_bench_imports_are_found(tmp_path: Path) -> None:
    root = write_package(
        tmp_path / "tests",
        {
            "__init__.py": "",
            "test_a.py": "import bench.results\n",
            "support/__init__.py": "",
            "support/b.py": "def f():\n    from bench import site\n",
            "test_c.py": "import benchmark\nfrom tests.support import b\n",
        },
    )
    assert bench_imports(root) == [
        "tests/support/b.py:2 imports bench.site",
        "tests/test_a.py:1 imports bench.results",
    ]
