"""The benchmark command runs end to end: `python -m bench --quick --smoke`.

Tiny sizes, one latency, one run: no speed is asserted here (speed belongs to the benchmarks);
only that every scenario produced numbers, every copy was complete, and the JSON is well-formed.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.mounting import require_fuse

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = set("abcdefg")


@pytest.mark.fuse
@pytest.mark.timeout(300)
def test_bench_smoke_runs_every_scenario(tmp_path: Path) -> None:
    require_fuse()
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--smoke", "--out", os.fspath(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    written = sorted(out.glob("bench-smoke-*.json"))
    assert len(written) == 1
    data = json.loads(written[0].read_text())
    assert data["errors"] == []
    assert data["settings"]["options"]["smoke"] is True

    rows = data["rows"]
    assert {r["scenario"] for r in rows} == SCENARIOS
    for row in rows:
        assert isinstance(row["value"], int | float) and math.isfinite(row["value"]), row
        assert row["runs"] >= 1, row
        if row["baseline"] and row["ratio"] is not None:
            assert row["ratio"] > 0, row
        if row["target"] is not None:
            assert row["met"] in (True, False), row
    # Every scenario that compares with a baseline produced a ratio.
    with_ratio = {r["scenario"] for r in rows if r["ratio"] is not None}
    assert {"a", "b", "c", "d", "f"} <= with_ratio
    # Peak RSS was sampled in every scenario's mounts.
    rss = {r["what"].rsplit(" ", 1)[-1] for r in rows if r["what"].startswith("peak RSS")}
    assert rss == SCENARIOS
    # The printed table names every scenario.
    table_lines = [line for line in proc.stdout.splitlines() if line[:2].strip() in SCENARIOS]
    assert {line[0] for line in table_lines} == SCENARIOS


# --- the benchmark's own logic, without mounts ------------------------------------------------


def test_needs_listing_follows_the_tree_table() -> None:
    from bench.scenarios.metadata import needs_listing

    def needs(path: str) -> bool:
        return needs_listing(tuple(path.split("/")))

    for path in (
        "P",
        "P/resources",
        "P/resources/DOCS",
        "P/S",
        "P/S/resources",
        "P/S/resources/CONSENT",
        "P/S/E/scans",
        "P/S/E/scans/ALL",
        "P/S/E/scans/ALL/DICOM",
        "P/S/E/assessors/ALL",
        "P/S/E/resources",
        "P/S/E/resources/NOTES",
    ):
        assert needs(path), path
    for path in (
        "P/resources/DOCS/forms",
        "P/S/resources/CONSENT/sub",
        "P/S/E",
        "P/S/E/scans/ALL/DICOM/1",
        "P/S/E/resources/NOTES/protocol",
        "P/S/E/resources/NOTES/protocol/sequences",
    ):
        assert not needs(path), path


def test_results_ratios_targets_and_strict_json(tmp_path: Path) -> None:
    from bench.results import Results, Target

    res = Results()
    for value in (3.0, 1.0, 2.0):
        res.sample("a", "xnatfs", "20 ms", value)
    for value in (10.0, 30.0, 20.0):
        res.sample("a", "direct", "20 ms", value)
    row = res.compare(
        "a",
        "20 ms",
        "cp",
        "xnatfs",
        "s",
        baseline="direct",
        baseline_metric="direct",
        target=Target("<=", 0.15, "<= 0.15x"),
    )
    assert (row.value, row.baseline_value, row.runs) == (2.0, 20.0, 3)
    assert row.ratio == pytest.approx(0.1)
    assert row.met is True
    row.target = Target("<=", 0.05, "<= 0.05x")
    assert row.met is False
    # A metric without samples is NaN in memory and null in the (strict) JSON.
    empty = res.compare("b", "0 ms", "scan", "missing", "s", baseline="zip", baseline_metric="zip")
    assert empty.met is None and math.isnan(empty.value)
    path = tmp_path / "r.json"
    res.write_json(path)
    data = json.loads(path.read_text())
    assert data["rows"][1]["value"] is None
    assert data["rows"][0]["met"] is False
    assert "| a | cp | 20 ms |" in res.markdown()
    assert "MISS" in res.table()


def test_bandwidth_caps_parse() -> None:
    from bench.__main__ import _caps

    assert _caps("0,100MB/s,none") == (0, 100_000_000, 0)
    assert _caps("10M") == (10 * 1024**2,)
