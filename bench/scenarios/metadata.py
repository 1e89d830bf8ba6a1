"""Scenario e: `find -type f | xargs stat` over a project of many sessions, cold and warm.

Counts the listing requests the demo server logged during each pass and compares them with the
directories `find` listed. layout.md promises one request per listed directory at most: a
session directory (`<P>/<S>/<E>/`), the sub-folders inside a resource and the per-scan groups
under a selector resource need none, so the expected count is lower than the directory count;
both are reported. Warm: the same mount again, after dropping the kernel's dentry and inode
caches, so what is measured is the filesystem's own metadata cache.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.context import Bench, Condition
from bench.results import Row, Target
from bench.site import META_PROJECT

TTL = "3600"
_CONTAINERS = ("scans", "reconstructions", "assessors")
_FIXED = frozenset(
    ("", "data", "projects", "subjects", "experiments", "resources", "files", "out", "in")
    + _CONTAINERS
)


def needs_listing(rel: tuple[str, ...]) -> bool:
    """Whether the directory at `rel` (parts below the mount point) costs one listing request,
    per the tree table of layout.md."""
    n = len(rel)
    if n in (1, 2):  # project (subjects), subject (experiments)
        return True
    if rel[1] == "resources":  # <P>/resources/<RES>[/sub...]
        return n == 3
    if rel[2] == "resources":  # <P>/<S>/resources/ and <RES>/, not its sub-folders
        return n in (3, 4)
    if n == 3:  # <P>/<S>/<E>: fixed entries
        return False
    if n == 4:  # scans/ reconstructions/ assessors/ resources/ of a session
        return True
    if rel[3] == "resources":  # <E>/resources/<RES>[/sub...]
        return n == 5
    if rel[3] in _CONTAINERS:  # <X>/ (resources) and <X>/<RES>/ (files), nothing deeper
        return n in (5, 6)
    return True


def request_shapes(entries: list[Any]) -> dict[str, int]:
    """Listing requests grouped by path shape (IDs and names replaced by placeholders)."""
    shapes: Counter[str] = Counter()
    for e in entries:
        if e.kind != "listing":
            continue
        parts = e.path.split("/")
        shape = "/".join(p if p in _FIXED else "*" for p in parts)
        shapes[shape] += 1
    return dict(shapes.most_common())


def _dirs(root: Path) -> list[tuple[str, ...]]:
    """Every directory `find` lists under `root` (as parts below the mount point)."""
    proc = subprocess.run(["find", os.fspath(root), "-type", "d"], capture_output=True, text=True)
    return [Path(line).relative_to(root.parent).parts for line in proc.stdout.splitlines()]


def _find_stat(bench: Bench, root: Path) -> float:
    """Time `find ROOT -type f | xargs stat`; what `find` could not read becomes a warning."""
    start = time.perf_counter()
    proc = subprocess.run(
        f"find {root} -type f -print0 | xargs -0 -r stat > /dev/null",
        shell=True,
        stderr=subprocess.PIPE,
        text=True,
    )
    elapsed = time.perf_counter() - start
    problems = [line for line in proc.stderr.splitlines() if line.strip()]
    if problems:
        bench.results.warn(f"e: find|stat reported {len(problems)} error(s), e.g. {problems[0]}")
    return elapsed


def scenario_e(bench: Bench) -> None:
    res = bench.results
    log = bench.server.log
    dirs_seen = expected = 0
    for lat in bench.options.latencies_ms:
        bench.apply(Condition(lat))
        cond = Condition(lat).label
        for _ in range(bench.options.runs):
            with (
                bench.scratch("cache") as cache,
                bench.mount("e", cache, options=["--metadata-ttl", TTL]) as m,
            ):
                root = m.path / META_PROJECT
                bench.drop_caches()
                log.reset()
                res.sample("e", "cold", cond, _find_stat(bench, root))
                res.sample("e", "cold requests", cond, log.listings)
                cold_kinds = request_shapes(log.entries())
                bench.drop_caches()
                log.reset()
                res.sample("e", "warm", cond, _find_stat(bench, root))
                res.sample("e", "warm requests", cond, log.listings)
                res.details.setdefault("e", {})[cond] = {
                    "cold listing requests by shape": cold_kinds,
                    "warm listing requests by shape": request_shapes(log.entries()),
                }
                dirs = _dirs(root)
                dirs_seen = len(dirs)
                expected = sum(1 for d in dirs if needs_listing(d))
                res.sample("e", "dirs", cond, dirs_seen)
            # The baseline: the same cold walk, one listing per directory as it is opened.
            with (
                bench.scratch("cache") as cache,
                bench.mount("e", cache, options=["--metadata-ttl", TTL, "--walk-ahead", "0"]) as m,
            ):
                bench.drop_caches()
                log.reset()
                res.sample("e", "serial", cond, _find_stat(bench, m.path / META_PROJECT))
                res.sample("e", "serial requests", cond, log.listings)
        res.compare(
            "e",
            cond,
            "find|stat cold",
            "cold",
            "s",
            baseline="one listing per directory",
            baseline_metric="serial",
        )
        if lat == 20:
            res.add(
                Row(
                    "e",
                    "find|stat cold, seconds",
                    cond,
                    res.median("e", "cold", cond),
                    "s",
                    target=Target("<=", 3.0, "<= 3 s at 20 ms"),
                    runs=res.count("e", "cold", cond),
                )
            )
        res.add(
            Row(
                "e",
                "listing requests, cold",
                cond,
                res.median("e", "cold requests", cond),
                "requests",
                baseline=f"dirs listed ({expected} need a request)",
                baseline_value=dirs_seen,
                target=Target("<=", dirs_seen, "<= dirs listed"),
                runs=res.count("e", "cold requests", cond),
            )
        )
        res.compare("e", cond, "find|stat warm", "warm", "s")
        res.add(
            Row(
                "e",
                "listing requests, warm",
                cond,
                res.median("e", "warm requests", cond),
                "requests",
                target=Target("==", 0, "0"),
                runs=res.count("e", "warm requests", cond),
            )
        )
