"""A 3-D head phantom made of additive ellipsoids, rasterised fast enough for pure Python.

Every image the demo site serves (DICOM slices, JPEG snapshots, Analyze volumes) is a slice of
this phantom, so a viewer shows a recognisable head and a converted volume is coherent across
slices. A row is rasterised as a handful of constant runs (the ellipsoid boundaries are the only
places where the value changes), so a 256x256 slice costs a few hundred `bytes` operations, not
65536 Python-level pixel writes.

Coordinates are normalised: x, y, z in [-1, 1]; `z` runs from the feet (-1) to the top (+1).
"""

from __future__ import annotations

import functools
import math
import struct
from dataclasses import dataclass


@dataclass(frozen=True)
class Ellipsoid:
    cx: float
    cy: float
    cz: float
    ax: float
    ay: float
    az: float
    value: int


# Skull, brain, ventricles, a few small lesions. Values are added where ellipsoids overlap.
_HEAD: tuple[Ellipsoid, ...] = (
    Ellipsoid(0.0, 0.0, 0.0, 0.72, 0.92, 0.95, 1600),  # scalp/skull
    Ellipsoid(0.0, -0.02, 0.0, 0.66, 0.86, 0.88, -1100),  # brain (cuts the skull to a shell)
    Ellipsoid(0.22, 0.0, 0.05, 0.11, 0.31, 0.35, -250),  # right ventricle
    Ellipsoid(-0.22, 0.0, 0.05, 0.16, 0.41, 0.35, -250),  # left ventricle
    Ellipsoid(0.0, 0.35, 0.1, 0.21, 0.25, 0.25, 120),  # frontal structure
    Ellipsoid(0.0, 0.1, -0.2, 0.046, 0.046, 0.1, 200),  # midline spot
    Ellipsoid(-0.08, -0.605, 0.0, 0.046, 0.023, 0.05, 300),  # small lesion
    Ellipsoid(0.06, -0.605, 0.0, 0.023, 0.046, 0.05, 300),  # small lesion
)


@functools.lru_cache(maxsize=8)
def _contrast(weighting: str) -> tuple[Ellipsoid, ...]:
    """T2-like images invert the grey/CSF contrast; everything else uses the T1-like values."""
    if weighting.upper().startswith("T2") or "FLAIR" in weighting.upper():
        swap = {-250: 500, 120: -60}
        return tuple(
            Ellipsoid(e.cx, e.cy, e.cz, e.ax, e.ay, e.az, swap.get(e.value, e.value)) for e in _HEAD
        )
    return _HEAD


def _plane(z: float, weighting: str) -> list[tuple[Ellipsoid, float]]:
    """The ellipsoids cut by the plane at `z`, each with its z-term of the quadric."""
    out = []
    for e in _contrast(weighting):
        qz = 1.0 - ((z - e.cz) / e.az) ** 2
        if qz > 0.0:
            out.append((e, qz))
    return out


def _runs(plane: list[tuple[Ellipsoid, float]], y: float, width: int) -> list[tuple[int, int, int]]:
    edges: list[tuple[int, int, int]] = []  # (x0, x1, value)
    for e, qz in plane:
        q = qz - ((y - e.cy) / e.ay) ** 2
        if q <= 0.0:
            continue
        half = e.ax * math.sqrt(q)
        x0 = max(0, round((e.cx - half + 1.0) * width / 2.0))
        x1 = min(width, round((e.cx + half + 1.0) * width / 2.0))
        if x1 > x0:
            edges.append((x0, x1, e.value))
    if not edges:
        return [(0, width, 0)]
    cuts = sorted({0, width, *(a for a, _, _ in edges), *(b for _, b, _ in edges)})
    runs: list[tuple[int, int, int]] = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        value = sum(v for x0, x1, v in edges if x0 <= a and b <= x1)
        runs.append((a, b, max(0, min(value, 65535))))
    return runs


def row_runs(y: float, z: float, width: int, weighting: str = "T1") -> list[tuple[int, int, int]]:
    """The row at normalised (y, z) as runs `(start_px, end_px, value)` covering [0, width)."""
    return _runs(_plane(z, weighting), y, width)


@functools.lru_cache(maxsize=4096)
def _u16(value: int) -> bytes:
    return struct.pack("<H", value)


def slice_u16le(rows: int, cols: int, z: float, weighting: str = "T1") -> bytes:
    """One axial slice as `rows*cols` unsigned 16-bit little-endian pixels (row-major)."""
    plane = _plane(z, weighting)
    out = []
    for r in range(rows):
        y = (r + 0.5) * 2.0 / rows - 1.0
        out.append(b"".join(_u16(v) * (b - a) for a, b, v in _runs(plane, y, cols)))
    return b"".join(out)


def slice_u8(rows: int, cols: int, z: float, weighting: str = "T1") -> list[list[int]]:
    """One slice scaled to 0..255, as a list of rows (for the JPEG encoder)."""
    peak = 2200.0
    plane = _plane(z, weighting)
    img = []
    for r in range(rows):
        y = (r + 0.5) * 2.0 / rows - 1.0
        row: list[int] = []
        for a, b, v in _runs(plane, y, cols):
            row.extend([min(255, int(v * 255 / peak))] * (b - a))
        img.append(row)
    return img


def slice_position(index: int, count: int) -> float:
    """Normalised z of slice `index` (0-based) of a stack of `count` slices through the head."""
    return -0.98 + 1.96 * (index + 0.5) / count
