"""Scenarios a (cold `cp -r`), b (header scan), c (warm re-read), f (8 readers at once).

All read DICOM series of the benchmark session (`bench.site`). Cold means a fresh cache
directory, a fresh mount process and a dropped page cache for every measurement; baselines run
against the same server, in the same conditions, interleaved with the xnatfs runs.
"""

from __future__ import annotations

import os
import subprocess
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from bench.context import Bench, timed_run, tree_bytes
from bench.results import Target
from bench.site import PARALLEL_SCANS, SERIES_SCAN

HEADER_BYTES = 4096
TARGET_LATENCY_MS = 20.0


def _check_copy(bench: Bench, out: Path, scan_id: str, what: str) -> None:
    files, size = tree_bytes(out)
    res = bench.site.resource(scan_id)
    if files != len(res.files) or size != res.file_size:
        bench.results.errors.append(
            f"{what}: copied {files} files / {size} bytes, expected "
            f"{len(res.files)} / {res.file_size}"
        )


# --- baselines -----------------------------------------------------------------------------------


def direct_one_by_one(bench: Bench, out: Path, scan_id: str = SERIES_SCAN) -> float:
    """List the resource, then GET every file in turn on one Session."""
    session = bench.session()
    start = time.perf_counter()
    for ref in bench.list_files(session, scan_id):
        bench.download(session, ref.url, out / ref.name)
    return time.perf_counter() - start


def direct_parallel(bench: Bench, out: Path, scan_id: str = SERIES_SCAN, workers: int = 8) -> float:
    """List the resource, then GET the files on `workers` Sessions in parallel."""
    sessions = [bench.session() for _ in range(workers)]
    start = time.perf_counter()
    refs = bench.list_files(sessions[0], scan_id)

    def fetch(i: int) -> None:
        for ref in refs[i::workers]:
            bench.download(sessions[i], ref.url, out / ref.name)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(fetch, range(workers)))
    return time.perf_counter() - start


def direct_zip(bench: Bench, out: Path, scan_id: str = SERIES_SCAN) -> float:
    """One `format=zip` GET of the resource streamed to disk, then unpacked."""
    session = bench.session()
    archive = out.parent / f"{out.name}.zip"
    start = time.perf_counter()
    bench.download(session, bench.resource_url(scan_id) + "?format=zip", archive)
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(out)
    elapsed = time.perf_counter() - start
    archive.unlink()
    return elapsed


def _download_series(bench: Bench, session: requests.Session, scan_id: str, dest: Path) -> None:
    dest.mkdir()
    for ref in bench.list_files(session, scan_id):
        bench.download(session, ref.url, dest / ref.name)


# --- a: cold cp -r -------------------------------------------------------------------------------


def scenario_a(bench: Bench) -> None:
    res = bench.results
    for cond in bench.series_conditions():
        bench.apply(cond)
        c = cond.label
        for _ in range(bench.options.runs):
            for name, fn in (
                ("direct one-by-one", direct_one_by_one),
                ("direct 8 parallel", direct_parallel),
                ("direct zip", direct_zip),
            ):
                with bench.scratch("out") as out:
                    bench.drop_caches()
                    res.sample("a", name, c, fn(bench, out))
                    _check_copy(bench, out, SERIES_SCAN, name)
            for mode in bench.options.prefetch_modes:
                with bench.scratch("cache") as cache, bench.scratch("out") as out:
                    with bench.mount("a", cache, prefetch=mode) as m:
                        bench.drop_caches()
                        src = m.path / bench.site.series_dir()
                        with bench.traffic("a", f"xnatfs prefetch {mode}", c, m):
                            elapsed, _ = timed_run(
                                ["cp", "-r", os.fspath(src), os.fspath(out / "s")]
                            )
                    res.sample("a", f"xnatfs prefetch {mode}", c, elapsed)
                    _check_copy(bench, out / "s", SERIES_SCAN, f"cp -r prefetch {mode}")
        at_target = cond.latency_ms == TARGET_LATENCY_MS and not cond.cap
        for mode in bench.options.prefetch_modes:
            what = f"cold cp -r, prefetch {mode}"
            res.compare(
                "a",
                c,
                what,
                f"xnatfs prefetch {mode}",
                "s",
                baseline="zip",
                baseline_metric="direct zip",
                target=Target("<=", 1.5, "<= 1.5x") if at_target else None,
            )
            res.compare(
                "a",
                c,
                what,
                f"xnatfs prefetch {mode}",
                "s",
                baseline="one-by-one",
                baseline_metric="direct one-by-one",
                target=Target("<=", 0.15, "<= 0.15x") if at_target else None,
            )
            res.compare(
                "a",
                c,
                what,
                f"xnatfs prefetch {mode}",
                "s",
                baseline="8 parallel",
                baseline_metric="direct 8 parallel",
            )


# --- b: header scan ------------------------------------------------------------------------------


def header_scan(root: Path) -> int:
    """Read the first 4 KiB of every file in name order; the number of files read."""
    n = 0
    for name in sorted(os.listdir(root)):
        fd = os.open(root / name, os.O_RDONLY)
        try:
            os.read(fd, HEADER_BYTES)
        finally:
            os.close(fd)
        n += 1
    return n


def scenario_b(bench: Bench) -> None:
    res = bench.results
    expected = len(bench.site.resource(SERIES_SCAN).files)
    for cond in bench.series_conditions():
        bench.apply(cond)
        c = cond.label
        for _ in range(bench.options.runs):
            with bench.scratch("out") as out:
                bench.drop_caches()
                res.sample("b", "direct zip", c, direct_zip(bench, out))
            for mode in bench.options.prefetch_modes:
                with bench.scratch("cache") as cache, bench.mount("b", cache, prefetch=mode) as m:
                    bench.drop_caches()
                    with bench.traffic("b", f"xnatfs prefetch {mode}", c, m):
                        start = time.perf_counter()
                        n = header_scan(m.path / bench.site.series_dir())
                        elapsed = time.perf_counter() - start
                    res.sample("b", f"xnatfs prefetch {mode}", c, elapsed)
                if n != expected:
                    res.errors.append(f"header scan read {n} files, expected {expected}")
        at_target = cond.latency_ms == TARGET_LATENCY_MS and not cond.cap
        for mode in bench.options.prefetch_modes:
            res.compare(
                "b",
                c,
                f"header scan, prefetch {mode}",
                f"xnatfs prefetch {mode}",
                "s",
                baseline="zip",
                baseline_metric="direct zip",
                target=Target("<=", 2.0, "<= 2x") if at_target else None,
            )


# --- c: warm re-read -----------------------------------------------------------------------------


def read_all(paths: list[Path]) -> int:
    """Read every file completely (1 MiB reads); the bytes read."""
    total = 0
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            while chunk := os.read(fd, 1 << 20):
                total += len(chunk)
        finally:
            os.close(fd)
    return total


def cache_entries(cache: Path) -> list[Path]:
    from xnatfs.cache.layout import iter_entries

    return sorted(Path(e.path) for e in iter_entries(cache))


def scenario_c(bench: Bench) -> None:
    res = bench.results
    size = bench.site.series_bytes()
    for cond in bench.series_conditions():
        bench.apply(cond)
        c = cond.label
        with bench.scratch("cache") as cache:
            # Fill the disk cache with the series through one mount, then measure new mounts.
            with bench.mount("c", cache) as m, bench.scratch("out") as out:
                src = m.path / bench.site.series_dir()
                timed_run(["cp", "-r", os.fspath(src), os.fspath(out / "s")])
            entries = cache_entries(cache)
            cached = sum(p.stat().st_size for p in entries)
            if cached < size:
                res.errors.append(f"warm re-read: the cache holds {cached} bytes, series {size}")
            for _ in range(bench.options.runs):
                bench.drop_caches()
                start = time.perf_counter()
                got = read_all(entries)
                res.sample("c", "cache files", c, got / 1e6 / (time.perf_counter() - start))
                with bench.mount("c", cache) as m:
                    series = m.path / bench.site.series_dir()
                    files = [series / n for n in sorted(os.listdir(series))]
                    for f in files:
                        f.stat()
                    bench.drop_caches()
                    with bench.traffic("c", "xnatfs", c, m):
                        start = time.perf_counter()
                        got = read_all(files)
                        elapsed = time.perf_counter() - start
                res.sample("c", "xnatfs", c, got / 1e6 / elapsed)
                if got != size:
                    res.errors.append(f"warm re-read: read {got} bytes, expected {size}")
        res.compare(
            "c",
            c,
            "warm re-read",
            "xnatfs",
            "MB/s",
            baseline="cache files",
            baseline_metric="cache files",
            target=Target(">=", 0.8, ">= 0.8x cache files"),
            throughput=True,
        )


# --- f: 8 readers at once ------------------------------------------------------------------------


def parallel_cp(sources: list[Path], targets: list[Path]) -> tuple[float, list[int]]:
    """Start one `cp -r` per source at once; (seconds until all ended, their exit codes)."""
    start = time.perf_counter()
    procs = [
        subprocess.Popen(["cp", "-r", os.fspath(src), os.fspath(dst)], stderr=subprocess.DEVNULL)
        for src, dst in zip(sources, targets, strict=True)
    ]
    codes = [p.wait() for p in procs]
    return time.perf_counter() - start, codes


def scenario_f(bench: Bench) -> None:
    res = bench.results
    total = sum(bench.site.series_bytes(s) for s in PARALLEL_SCANS)
    for cond in bench.series_conditions():
        bench.apply(cond)
        c = cond.label
        for _ in range(bench.options.runs):
            with bench.scratch("out") as out:
                jobs = [(bench.session(), scan, out / scan) for scan in PARALLEL_SCANS]
                bench.drop_caches()
                start = time.perf_counter()
                with ThreadPoolExecutor(len(jobs)) as pool:
                    list(pool.map(lambda job: _download_series(bench, *job), jobs))
                res.sample("f", "direct 8 parallel", c, total / 1e6 / (time.perf_counter() - start))
            for mode in bench.options.prefetch_modes:
                with bench.scratch("cache") as cache, bench.scratch("out") as out:
                    with (
                        bench.mount("f", cache, prefetch=mode) as m,
                        bench.traffic("f", f"xnatfs prefetch {mode}", c, m),
                    ):
                        bench.drop_caches()
                        sources = [m.path / bench.site.series_dir(s) for s in PARALLEL_SCANS]
                        elapsed, failed = parallel_cp(sources, [out / s for s in PARALLEL_SCANS])
                    if any(failed):
                        res.errors.append(f"8 readers, prefetch {mode}: cp exit codes {failed}")
                    for s in PARALLEL_SCANS:
                        _check_copy(bench, out / s, s, f"8 readers prefetch {mode}")
                    res.sample("f", f"xnatfs prefetch {mode}", c, total / 1e6 / elapsed)
        for mode in bench.options.prefetch_modes:
            res.compare(
                "f",
                c,
                f"8 readers, prefetch {mode}",
                f"xnatfs prefetch {mode}",
                "MB/s",
                baseline="8 direct",
                baseline_metric="direct 8 parallel",
                target=Target(">=", 0.8, ">= 0.8x 8 direct"),
                throughput=True,
            )
