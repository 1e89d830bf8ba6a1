"""The benchmark's own logic, without mounts: which paths cost a listing, how results are
compared with baselines and targets, how bandwidth caps are parsed.

These live with the benchmarks because they import them; the test suite never imports `bench`
(it runs `python -m bench --smoke` as a command, in `tests/e2e/test_bench_smoke.py`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench.__main__ import _caps
from bench.results import Results, Target
from bench.scenarios.metadata import needs_listing


def test_needs_listing_follows_the_tree_table() -> None:
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
    assert _caps("0,100MB/s,none") == (0, 100_000_000, 0)
    assert _caps("10M") == (10 * 1024**2,)
