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
from pathlib import Path

from bench.context import Bench, Condition
from bench.results import Row, Target
from bench.site import META_PROJECT

TTL = "3600"
_CONTAINERS = ("scans", "reconstructions", "assessors")


def needs_listing(rel: tuple[str, ...]) -> bool:
    """Whether the directory at `rel` (parts below the mount point) costs one listing request,
    per the tree table of layout.md."""
    n = len(rel)
    if n in (1, 2):  # project (subjects), subject (experiments)
        return True
    if rel[1] == "resources":  # <P>/resources/<RES>[/sub...]
        return n == 3
    if n >= 3 and rel[2] == "resources":  # <P>/<S>/resources/<RES>[/sub...]
        return n == 4
    if n == 3:  # <P>/<S>/<E>: fixed entries
        return False
    if n == 4:  # scans/ reconstructions/ assessors/ resources/ of a session
        return True
    if rel[3] == "resources":  # <E>/resources/<RES>[/sub...]
        return n == 5
    if rel[3] in _CONTAINERS:  # <X>/ (resources) and <X>/<RES>/ (files), nothing deeper
        return n in (5, 6)
    return True


def _dirs(root: Path) -> list[tuple[str, ...]]:
    out = []
    base = root.parent
    for dirpath, _dirs, _files in os.walk(root):
        out.append(Path(dirpath).relative_to(base).parts)
    return out


def _find_stat(root: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        f"find {root} -type f -print0 | xargs -0 -r stat > /dev/null",
        shell=True,
        check=True,
        stderr=subprocess.PIPE,
    )
    return time.perf_counter() - start


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
                res.sample("e", "cold", cond, _find_stat(root))
                res.sample("e", "cold requests", cond, log.listings)
                bench.drop_caches()
                log.reset()
                res.sample("e", "warm", cond, _find_stat(root))
                res.sample("e", "warm requests", cond, log.listings)
                dirs = _dirs(root)
                dirs_seen = len(dirs)
                expected = sum(1 for d in dirs if needs_listing(d))
                res.sample("e", "dirs", cond, dirs_seen)
        res.compare("e", cond, "find|stat cold", "cold", "s")
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
