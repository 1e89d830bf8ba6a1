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
    # Every scenario (the default): as the run itself names them, since the tests never import
    # the benchmarks (tests/test_layering.py).
    scenarios = set(data["settings"]["options"]["scenarios"])
    assert len(scenarios) >= 8

    rows = data["rows"]
    assert {r["scenario"] for r in rows} == scenarios
    for row in rows:
        assert isinstance(row["value"], int | float) and math.isfinite(row["value"]), row
        assert row["runs"] >= 1, row
        if row["baseline"] and row["ratio"] is not None:
            assert row["ratio"] > 0, row
        if row["target"] is not None:
            assert row["met"] in (True, False), row
    # Every scenario that compares with a baseline produced a ratio.
    with_ratio = {r["scenario"] for r in rows if r["ratio"] is not None}
    assert {"a", "b", "c", "d", "e", "f", "i"} <= with_ratio
    # Peak RSS was sampled in every scenario's mounts.
    rss = {r["what"].rsplit(" ", 1)[-1] for r in rows if r["what"].startswith("peak RSS")}
    assert rss == scenarios
    # The printed table names every scenario.
    table_lines = [line for line in proc.stdout.splitlines() if line[:2].strip() in scenarios]
    assert {line[0] for line in table_lines} == scenarios
