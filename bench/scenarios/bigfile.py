"""Scenario d: one large file, cold: `dd bs=1M`, time to the first MiB, random 4 KiB preads.

Baseline: one streamed GET of the file on a logged-in Session (the bytes are counted, not
stored, as `dd of=/dev/null` does), which also gives the direct time to the first MiB. Each
xnatfs measurement gets its own fresh mount and cache, so one never warms the next.
"""

from __future__ import annotations

import os
import random
import re
import time
from pathlib import Path

from bench.context import Bench, Condition, timed_run
from bench.results import Results, Row, Target

MIB = 1 << 20
PREAD_SIZE = 4096


def _direct(bench: Bench) -> tuple[float, float]:
    """(seconds to the first MiB, seconds for the whole file) of one streamed GET."""
    session = bench.session()
    url = bench.big_file_url()
    size = bench.site.sizes.big_file
    first = None
    got = 0
    start = time.perf_counter()
    with session.get(url, stream=True, timeout=300) as r:
        r.raise_for_status()
        for chunk in r.iter_content(MIB):
            got += len(chunk)
            if first is None and got >= min(MIB, size):
                first = time.perf_counter() - start
    elapsed = time.perf_counter() - start
    if got != size:
        bench.results.errors.append(f"direct stream got {got} bytes, expected {size}")
    return first if first is not None else elapsed, elapsed


def _dd(bench: Bench, path: Path) -> float:
    size = bench.site.sizes.big_file
    elapsed, proc = timed_run(["dd", f"if={path}", "of=/dev/null", "bs=1M"])
    m = re.search(rb"^(\d+) bytes", proc.stderr, re.MULTILINE)
    copied = int(m.group(1)) if m else -1
    if copied != size:
        bench.results.errors.append(f"dd copied {copied} bytes, expected {size}")
    return size / 1e6 / elapsed


def first_mib(path: Path) -> float:
    """Seconds to open `path` and read its first MiB."""
    start = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    try:
        got = 0
        while got < MIB:
            chunk = os.read(fd, MIB - got)
            if not chunk:
                break
            got += len(chunk)
    finally:
        os.close(fd)
    return time.perf_counter() - start


def _preads(path: Path, offsets: list[int]) -> float:
    start = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    try:
        for off in offsets:
            os.pread(fd, PREAD_SIZE, off)
    finally:
        os.close(fd)
    return time.perf_counter() - start


def first_mib_row(
    res: Results, scenario: str, cond: str, what: str, metric: str, direct_metric: str
) -> None:
    """A row for a time to the first MiB, whose target is an allowance rather than a plain
    ratio: <= 1.5x the direct GET's + 50 ms."""
    mine = res.median(scenario, metric, cond)
    direct = res.median(scenario, direct_metric, cond)
    allowance = 1.5 * direct + 0.050
    res.add(
        Row(
            scenario,
            what,
            cond,
            mine,
            "s",
            baseline="direct GET",
            baseline_value=direct,
            ratio=mine / allowance,
            ratio_text="xnatfs / (1.5x direct + 50 ms)",
            target=Target("<=", 1.0, "<= 1.5x direct + 50 ms"),
            runs=res.count(scenario, metric, cond),
        )
    )


def conditions(bench: Bench) -> list[Condition]:
    """Every latency without a cap; the caps at the highest latency only (with a cap, the
    transfer time dwarfs the per-request latency, and the full run has a time budget)."""
    lats = bench.options.latencies_ms
    out = [Condition(lat, 0) for lat in lats]
    out += [Condition(max(lats), cap) for cap in bench.options.big_caps if cap]
    return out


def scenario_d(bench: Bench) -> None:
    res = bench.results
    size = bench.site.sizes.big_file
    rng = random.Random(4)
    offsets = [
        rng.randrange(0, size - PREAD_SIZE) // PREAD_SIZE * PREAD_SIZE
        for _ in range(bench.site.sizes.random_reads)
    ]
    for cond in conditions(bench):
        bench.apply(cond)
        c = cond.label
        for _ in range(bench.options.runs):
            bench.drop_caches()
            first, elapsed = _direct(bench)
            res.sample("d", "direct first MiB", c, first)
            res.sample("d", "direct stream", c, size / 1e6 / elapsed)
            res.sample("d", "direct stream s", c, elapsed)
            for metric, measure, resolved in (
                ("xnatfs dd", lambda p: _dd(bench, p), False),
                ("xnatfs first MiB", first_mib, False),
                ("xnatfs first MiB, path resolved", first_mib, True),
                ("xnatfs preads", lambda p: _preads(p, offsets), False),
            ):
                with bench.scratch("cache") as cache, bench.mount("d", cache) as m:
                    path = m.path / bench.site.big_file_rel
                    if resolved:
                        # The listings along the path are fetched first (not timed), as
                        # after an `ls`: what remains is the file's own GET.
                        path.stat()
                    bench.drop_caches()
                    with bench.traffic("d", metric, c, m):
                        value = measure(path)
                    res.sample("d", metric, c, value)
        size_text = f"{size / MIB:.0f} MiB"
        target = None
        if cond.cap == 100_000_000:
            target = Target(">=", 0.9, ">= 0.9x stream")
        elif not cond.cap:
            target = Target(">=", 0.5, ">= 0.5x stream")
        res.compare(
            "d",
            c,
            f"dd bs=1M of {size_text}",
            "xnatfs dd",
            "MB/s",
            baseline="stream",
            baseline_metric="direct stream",
            target=target,
            throughput=True,
        )
        first_mib_row(res, "d", c, "time to first MiB", "xnatfs first MiB", "direct first MiB")
        res.compare(
            "d",
            c,
            "time to first MiB, path resolved",
            "xnatfs first MiB, path resolved",
            "s",
            baseline="stream",
            baseline_metric="direct first MiB",
        )
        res.compare(
            "d",
            c,
            f"{len(offsets)} random 4 KiB preads",
            "xnatfs preads",
            "s",
            baseline="whole stream",
            baseline_metric="direct stream s",
        )
