"""Scenario g: mount start-up time (empty cache, and N cached files) and peak RSS everywhere.

Start-up is measured from the start of `python -m xnatfs mount` until the mount point is in the
mount table and answers `stat`, with a dropped page cache, so a big cache directory is read from
disk. The cached files are real entries, admitted through the cache module's own API
(`DiskCache.create_part` + `admit`), exactly as downloads are. Peak RSS (VmHWM) is sampled by
`Bench.mount` at the end of every mount of every scenario; the rows here summarise it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from bench.context import Bench, Condition
from bench.results import Row, Target

RSS_LIMIT_MB = 150.0
STARTUP_LIMIT_S = 1.0


def fill_cache(root: Path, entries: int) -> None:
    """Admit `entries` small distinct files into the cache at `root` (then release its lock)."""
    from xnatfs.cache.disk import DiskCache
    from xnatfs.fileversion import FileVersion, verify_part

    with DiskCache(root, 10 << 30) as cache:
        for i in range(entries):
            data = f"cached file {i}\n".encode() * 16
            digest = hashlib.md5(data).hexdigest()
            key = FileVersion(
                f"/data/experiments/BENCH_E{i // 1000:05d}/resources/1/files/{i}.dat",
                len(data),
                digest,
            )
            part, fd = cache.create_part(key)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            cache.admit(verify_part(key, part, len(data), digest))


def scenario_g(bench: Bench) -> None:
    res = bench.results
    n = bench.site.sizes.cached_entries
    with bench.scratch("bigcache") as big:
        fill_cache(big, n)
        for lat in bench.options.latencies_ms:
            cond = Condition(lat)
            bench.apply(cond)
            c = cond.label
            for _ in range(bench.options.runs):
                with bench.scratch("cache") as empty:
                    bench.drop_caches()
                    with bench.mount("g", empty) as m:
                        res.sample("g", "start-up empty", c, m.startup_s)
                bench.drop_caches()
                with bench.mount("g", big) as m:
                    res.sample("g", "start-up full", c, m.startup_s)
            res.compare("g", c, "mount start-up, empty cache", "start-up empty", "s")
            res.compare(
                "g",
                c,
                f"mount start-up, {n:,} cached files",
                "start-up full",
                "s",
                target=Target("<", STARTUP_LIMIT_S, "< 1 s"),
            )


def summarise_rss(bench: Bench) -> None:
    """One row per scenario: the highest VmHWM of any of its mounts (MB)."""
    res = bench.results
    for key, values in sorted(res.samples.items()):
        scenario, metric, _ = key.split("|")
        if scenario != "g" or not metric.startswith("peak RSS "):
            continue
        of = metric.removeprefix("peak RSS ")
        res.add(
            Row(
                "g",
                f"peak RSS of the mount, scenario {of}",
                "all",
                max(values),
                "MB",
                target=Target("<", RSS_LIMIT_MB, "< 150 MB"),
                runs=len(values),
            )
        )
