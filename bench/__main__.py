"""`python -m bench`: run the xnatfs benchmarks against the demo XNAT server with real mounts.

Prints a table of medians and ratios (with the performance targets next to them), and writes
`bench/results/bench-<time>.json` and, when matplotlib is installed, a PNG chart next to it.
Exit status: 0 when every scenario ran and every copy was complete and correct (targets missed
are reported, not failures), 1 otherwise, 2 for bad options or when real mounts are impossible.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.context import DEFAULT_PREFETCH, Bench, Options
from bench.results import Results
from bench.scenarios.bigfile import scenario_d
from bench.scenarios.metadata import scenario_e
from bench.scenarios.remount import scenario_i
from bench.scenarios.series import scenario_a, scenario_b, scenario_c, scenario_f
from bench.scenarios.startup import scenario_g, summarise_rss
from bench.site import FULL, QUICK, SMOKE, build_bench_site, warm_server_caches
from tests.support.mounting import MountSpec, fuse_problem

SCENARIOS: dict[str, tuple[str, Callable[[Bench], None]]] = {
    "a": ("cold cp -r of a series", scenario_a),
    "b": ("header scan", scenario_b),
    "c": ("warm re-read", scenario_c),
    "d": ("one large file", scenario_d),
    "e": ("metadata: find | xargs stat", scenario_e),
    "f": ("8 readers at once", scenario_f),
    "g": ("mount start-up (peak RSS: every scenario)", scenario_g),
    "i": ("remounts: first MiB, browsing with the server stopped", scenario_i),
}
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(t) for t in text.split(",") if t.strip())


def _caps(text: str) -> tuple[int, ...]:
    from xnatfs.config import parse_size

    out = []
    for token in text.split(","):
        token = token.strip().upper()
        if token in ("", "0", "NONE"):
            out.append(0)
        elif token.endswith(("MB/S", "MBPS")):
            out.append(int(float(token.rstrip("/SMBP")) * 1_000_000))
        else:
            out.append(parse_size(token))
    return tuple(out)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="1 run, small sizes (about 2 minutes)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, one latency (seconds)")
    p.add_argument("--runs", type=int, default=None, help="runs per measurement (default 3)")
    p.add_argument("--latency", default=None, help="per-request latencies in ms (default 0,20)")
    p.add_argument(
        "--bandwidth",
        default="0",
        help="bandwidth caps for the series scenarios, e.g. 0,100MB/s (default: none)",
    )
    p.add_argument(
        "--big-caps", default="0,100MB/s", help="caps for the large file (default 0,100MB/s)"
    )
    p.add_argument(
        "--prefetch",
        default=f"{DEFAULT_PREFETCH},off",
        help="prefetch modes to compare in a, b, f ('default' passes no option)",
    )
    p.add_argument("--scenarios", default="".join(SCENARIOS), help="which to run, e.g. abf")
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help="where JSON and PNG go")
    p.add_argument(
        "--profile",
        action="store_true",
        help="run every mount under cProfile (its main thread); .prof files go to OUT/profiles",
    )
    return p


def make_options(args: argparse.Namespace) -> Options:
    sizes = SMOKE if args.smoke else QUICK if args.quick else FULL
    runs = args.runs if args.runs is not None else (1 if args.smoke or args.quick else 3)
    latency = args.latency if args.latency is not None else ("0" if args.smoke else "0,20")
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown or runs < 1:
        raise SystemExit(f"bad --scenarios or --runs: {''.join(sorted(unknown))} {runs}")
    return Options(
        runs=runs,
        latencies_ms=_floats(latency),
        bandwidths=_caps(args.bandwidth),
        big_caps=_caps(args.big_caps),
        prefetch_modes=tuple(m.strip() for m in args.prefetch.split(",") if m.strip()),
        scenarios=tuple(s for s in SCENARIOS if s in args.scenarios),
        sizes=sizes,
        smoke=args.smoke,
        quick=args.quick,
    )


def run(options: Options, out_dir: Path, *, profile: bool = False) -> int:
    from xnatfs.demo import DEMO_PASSWORD, DEMO_USER, DemoServer

    bench_site = build_bench_site(options.sizes)
    print(f"preparing the benchmark site ({options.sizes})", flush=True)
    warm_server_caches(bench_site)
    results = Results()
    results.settings = {
        "options": dataclasses.asdict(options),
        "cpus": os.cpu_count(),
        "root": os.geteuid() == 0,
    }
    server = DemoServer(bench_site.site)
    server.start()
    workdir = Path(tempfile.mkdtemp(prefix="xnatfs-bench-"))
    try:
        profile_dir = out_dir / "profiles" if profile else None
        spec = MountSpec(server.url, DEMO_USER, DEMO_PASSWORD, workdir, profile_dir)
        bench = Bench(options, server, bench_site, spec, results, workdir)
        for key in options.scenarios:
            title, fn = SCENARIOS[key]
            started = time.perf_counter()
            print(f"[{key}] {title} ...", flush=True)
            try:
                fn(bench)
            except Exception as exc:  # one broken scenario must not hide the others
                results.errors.append(f"scenario {key} failed: {exc!r}")
                traceback.print_exc()
            print(f"[{key}] done in {time.perf_counter() - started:.0f} s", flush=True)
        summarise_rss(bench)
        results.settings["page_cache_dropped"] = bench.dropped_caches
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print()
    print(results.table())
    stamp = time.strftime("%Y%m%d-%H%M%S")
    kind = "smoke" if options.smoke else "quick" if options.quick else "full"
    if len(options.scenarios) < len(SCENARIOS):
        kind += "-" + "".join(options.scenarios)
    json_path = out_dir / f"bench-{kind}-{stamp}.json"
    results.write_json(json_path)
    json_path.with_suffix(".md").write_text(results.markdown(), encoding="utf-8")
    print(f"\nJSON: {json_path} (and .md)")
    png = json_path.with_suffix(".png")
    print(f"PNG:  {png}" if results.write_png(png) else "PNG:  skipped (matplotlib missing)")
    if not results.settings["page_cache_dropped"]:
        print("note: not root, so the page cache was not dropped; cold numbers are optimistic")
    for warning in results.warnings:
        print(f"warning: {warning}")
    for err in results.errors:
        print(f"ERROR: {err}", file=sys.stderr)
    return 1 if results.errors else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = make_options(args)
    problem = fuse_problem()
    if problem is not None:
        print(f"bench: real mounts impossible here: {problem}", file=sys.stderr)
        return 2
    return run(options, args.out, profile=args.profile)


if __name__ == "__main__":
    sys.exit(main())
