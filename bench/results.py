"""Samples, medians, comparisons with targets; the printed table, the JSON and the PNG chart.

A scenario records raw samples (`Results.sample`) under a key of (scenario, metric, condition),
then adds `Row`s that compare medians: each row names what xnatfs did, what it is compared with,
the ratio, and the target of the performance issue when there is one. Nothing here measures.
"""

from __future__ import annotations

import json
import math
import operator
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    "==": operator.eq,
}


@dataclass(frozen=True)
class Target:
    """`value op bound`, e.g. ratio <= 1.5; `text` is how the issue states it."""

    op: str
    bound: float
    text: str

    def met(self, value: float) -> bool:
        if math.isnan(value):
            return False
        return _OPS[self.op](value, self.bound)


@dataclass
class Row:
    scenario: str
    what: str  # e.g. "cold cp -r, prefetch auto"
    condition: str  # e.g. "20 ms" or "20 ms, 100 MB/s"
    value: float  # the median of xnatfs (in `unit`)
    unit: str
    baseline: str = ""  # what it is compared with
    baseline_value: float | None = None
    ratio: float | None = None  # the number the target is checked against, if any
    ratio_text: str = ""  # how `ratio` was formed
    target: Target | None = None
    runs: int = 0

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        checked = self.ratio if self.ratio is not None else self.value
        return self.target.met(checked)

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["target"] = asdict(self.target) if self.target else None
        out["met"] = self.met
        return out


@dataclass
class Results:
    started: float = field(default_factory=time.time)
    settings: dict[str, Any] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)  # per-scenario extras for the JSON
    warnings: list[str] = field(default_factory=list)  # findings that do not void the numbers

    @staticmethod
    def key(scenario: str, metric: str, condition: str) -> str:
        return f"{scenario}|{metric}|{condition}"

    def sample(self, scenario: str, metric: str, condition: str, value: float) -> None:
        self.samples.setdefault(self.key(scenario, metric, condition), []).append(value)

    def median(self, scenario: str, metric: str, condition: str) -> float:
        values = self.samples.get(self.key(scenario, metric, condition), [])
        return statistics.median(values) if values else math.nan

    def count(self, scenario: str, metric: str, condition: str) -> int:
        return len(self.samples.get(self.key(scenario, metric, condition), []))

    def compare(
        self,
        scenario: str,
        condition: str,
        what: str,
        metric: str,
        unit: str,
        *,
        baseline: str = "",
        baseline_metric: str | None = None,
        target: Target | None = None,
        throughput: bool = False,
    ) -> Row:
        """Add a row: the median of `metric` against the median of `baseline_metric`.

        The ratio is always xnatfs / baseline: for times (lower is better) or, with
        `throughput`, for rates (higher is better)."""
        value = self.median(scenario, metric, condition)
        row = Row(
            scenario,
            what,
            condition,
            value,
            unit,
            target=target,
            runs=self.count(scenario, metric, condition),
        )
        if baseline_metric is not None:
            base = self.median(scenario, baseline_metric, condition)
            row.baseline = baseline
            row.baseline_value = base
            row.ratio = value / base if base else math.nan
            row.ratio_text = "throughput ratio" if throughput else "time ratio"
        self.rows.append(row)
        return row

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    # --- output ------------------------------------------------------------------------------

    def table(self) -> str:
        headers = ("sc", "measurement", "condition", "xnatfs", "baseline", "ratio", "target", "")
        lines = [headers]
        for r in self.rows:
            base = ""
            if r.baseline:
                base = f"{r.baseline} {_fmt(r.baseline_value, r.unit)}"
            ratio = f"{r.ratio:.2f}x" if r.ratio is not None and not math.isnan(r.ratio) else ""
            verdict = {None: "", True: "ok", False: "MISS"}[r.met]
            lines.append(
                (
                    r.scenario,
                    r.what,
                    r.condition,
                    _fmt(r.value, r.unit),
                    base,
                    ratio,
                    r.target.text if r.target else "",
                    verdict,
                )
            )
        widths = [max(len(str(line[i])) for line in lines) for i in range(len(headers))]
        out = []
        for n, line in enumerate(lines):
            out.append("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)))
            if n == 0:
                out.append("  ".join("-" * w for w in widths))
        return "\n".join(s.rstrip() for s in out)

    def markdown(self) -> str:
        """The rows as a Markdown table (for docs/performance.md)."""
        out = [
            "| sc | measurement | condition | xnatfs (median) | baseline (median) | ratio | target "
            "| |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in self.rows:
            base = f"{r.baseline} {_fmt(r.baseline_value, r.unit)}" if r.baseline else ""
            ratio = f"{r.ratio:.2f}x" if r.ratio is not None and math.isfinite(r.ratio) else ""
            verdict = {None: "", True: "ok", False: "**missed**"}[r.met]
            target = r.target.text if r.target else ""
            cells = (r.scenario, r.what, r.condition, _fmt(r.value, r.unit), base, ratio, target)
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + f" | {verdict} |")
        return "\n".join(out) + "\n"

    def as_json(self) -> dict[str, Any]:
        return {
            "started": self.started,
            "finished": time.time(),
            "host": {
                "python": platform.python_version(),
                "machine": platform.machine(),
                "kernel": platform.release(),
            },
            "settings": self.settings,
            "rows": [r.as_json() for r in self.rows],
            "samples": self.samples,
            "details": self.details,
            "warnings": self.warnings,
            "errors": self.errors,
        }

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps(_finite(self.as_json()), indent=1, allow_nan=False)
        path.write_text(data + "\n", encoding="utf-8")

    def write_png(self, path: Path) -> bool:
        """A bar chart of every ratio with its target; False when matplotlib is missing."""
        try:
            import matplotlib  # type: ignore[import-not-found, unused-ignore]

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]
        except ImportError:
            return False
        rows = [r for r in self.rows if r.ratio is not None and not math.isnan(r.ratio)]
        if not rows:
            return False
        height = max(3.0, 0.32 * len(rows) + 1.2)
        fig, ax = plt.subplots(figsize=(11, height))
        labels = [f"{r.scenario}: {r.what} vs {r.baseline} [{r.condition}]" for r in rows]
        colors = [{None: "#8c8c8c", True: "#2c7fb8", False: "#d95f0e"}[r.met] for r in rows]
        ys = list(range(len(rows)))
        ax.barh(ys, [r.ratio or 0.0 for r in rows], color=colors)
        for y, r in zip(ys, rows, strict=True):
            if r.target is not None:
                ax.plot([r.target.bound, r.target.bound], [y - 0.4, y + 0.4], color="black")
        ax.set_yticks(ys)
        ax.set_yticklabels(labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("ratio to baseline (time ratio: lower is better; throughput: higher)")
        ax.set_title("xnatfs benchmarks (black tick: target; orange: target missed)")
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return True


def _finite(obj: Any) -> Any:
    """The same structure with NaN and infinities as null (strict JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def _fmt(value: float | None, unit: str) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    if unit in ("requests", "dirs", "files"):
        return f"{value:.0f} {unit}"
    if unit == "MB":
        return f"{value:.0f} MB"
    return f"{value:.1f} {unit}"
