"""Scenario i: what listings kept on disk buy on a remount.

- First MiB of the large file on a remount of a tree that was browsed (its path stat'ed, never
  read) against one direct GET of the first MiB in the same conditions, and against a fresh
  mount (nothing stored: every listing along the path is asked first).
- Browsing and reading cached files with the server stopped: a session is walked (`find |
  xargs stat`) and a series read (`cat`) on a first mount, then on a remount with the server up
  (the baseline) and on a remount with the server refusing every connection, long after the TTL.
  Every file must read back complete; the listing requests each remount made are counted.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from bench.context import Bench, Condition
from bench.results import Row
from bench.scenarios.bigfile import MIB, first_mib, first_mib_row

TTL = "1"  # seconds: the remounts below happen long after every listing expired


def _direct_first_mib(bench: Bench) -> float:
    """Seconds to the first MiB of one streamed GET on a logged-in Session (then closed)."""
    session = bench.session()
    start = time.perf_counter()
    got = 0
    with session.get(bench.big_file_url(), stream=True, timeout=300) as r:
        r.raise_for_status()
        for chunk in r.iter_content(64 * 1024):
            got += len(chunk)
            if got >= MIB:
                break
    elapsed = time.perf_counter() - start
    session.close()
    return elapsed


def _browse_and_read(bench: Bench, root: Path) -> tuple[float, int]:
    """(seconds, files read) for `find SESSION | xargs stat` then `cat` of the series."""
    session = root / bench.site.session_path
    series = root / bench.site.series_dir()
    start = time.perf_counter()
    subprocess.run(
        f"find '{session}' -print0 | xargs -0 -r stat > /dev/null",
        shell=True,
        check=True,
    )
    names = sorted(os.listdir(series))
    read = 0
    for name in names:
        with open(series / name, "rb") as f:
            while f.read(MIB):
                pass
        read += 1
    return time.perf_counter() - start, read


def _first_mib_on_remount(bench: Bench, cond: str) -> None:
    res = bench.results
    for _ in range(bench.options.runs):
        bench.drop_caches()
        res.sample("i", "direct first MiB", cond, _direct_first_mib(bench))
        with bench.scratch("cache") as cache:
            with bench.mount("i", cache, options=["--metadata-ttl", TTL]) as m:
                path = m.path / bench.site.big_file_rel
                path.stat()  # browsed: every listing along the path is stored
            time.sleep(1.2)  # past the TTL: the stored listings are stale
            with bench.mount("i", cache, options=["--metadata-ttl", TTL]) as m:
                path = m.path / bench.site.big_file_rel
                bench.drop_caches()
                with bench.traffic("i", "first MiB on a remount", cond, m):
                    res.sample("i", "remount first MiB", cond, first_mib(path))
        with bench.scratch("cache") as cache, bench.mount("i", cache) as m:
            bench.drop_caches()
            res.sample("i", "fresh first MiB", cond, first_mib(m.path / bench.site.big_file_rel))
    first_mib_row(
        res,
        "i",
        cond,
        "first MiB on a remount (path known)",
        "remount first MiB",
        "direct first MiB",
    )
    first_mib_row(
        res, "i", cond, "first MiB on a fresh mount", "fresh first MiB", "direct first MiB"
    )


def _server_stopped(bench: Bench, cond: str) -> None:
    res = bench.results
    log = bench.server.log
    expected = 0  # files read on the first mount
    for _ in range(bench.options.runs):
        with bench.scratch("cache") as cache:
            with bench.mount("i", cache, options=["--metadata-ttl", TTL]) as m:
                _, expected = _browse_and_read(bench, m.path)
            time.sleep(1.2)
            with bench.mount("i", cache, options=["--metadata-ttl", TTL]) as m:
                bench.drop_caches()
                log.reset()
                elapsed, read = _browse_and_read(bench, m.path)
                res.sample("i", "remount, server up", cond, elapsed)
                res.sample("i", "remount requests, server up", cond, log.listings)
            time.sleep(1.2)
            bench.server.faults.down = True
            try:
                with bench.mount(
                    "i", cache, options=["--metadata-ttl", TTL, "--retries", "0"]
                ) as m:
                    bench.drop_caches()
                    elapsed, read = _browse_and_read(bench, m.path)
                    res.sample("i", "remount, server stopped", cond, elapsed)
            finally:
                bench.server.faults.down = False
            if read != expected:
                res.errors.append(f"i: {read} of {expected} files read with the server stopped")
    res.compare(
        "i",
        cond,
        "browse + read cached, server stopped",
        "remount, server stopped",
        "s",
        baseline="same, server up",
        baseline_metric="remount, server up",
    )
    res.add(
        Row(
            "i",
            "listings refreshed in the background on that remount (server up)",
            cond,
            res.median("i", "remount requests, server up", cond),
            "requests",
            runs=res.count("i", "remount requests, server up", cond),
        )
    )


def scenario_i(bench: Bench) -> None:
    for lat in bench.options.latencies_ms:
        bench.apply(Condition(lat))
        cond = Condition(lat).label
        _first_mib_on_remount(bench, cond)
        _server_stopped(bench, cond)
