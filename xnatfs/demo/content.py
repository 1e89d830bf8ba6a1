"""File contents of the demo site: small lazy objects with `size`, `read(offset, length)`, `md5`.

Nothing is generated when a site is built. A file's bytes are produced on first use,
deterministically from its parameters, and the expensive results are cached process-wide
(keyed by those parameters), so the many servers a test suite starts share the work:

* `BytesFile`: bytes held in memory (text files, test uploads, replaced contents);
* `GeneratedFile`: bytes built by a pure function on demand, kept in a small LRU;
* `DicomSliceFile`: one MR slice; its size is known from the header alone;
* `PatternFile`: an arbitrarily large file whose bytes are a function of the offset.

Generators for the real formats live here too: an MR DICOM series, a JPEG snapshot and an
Analyze 7.5 pair, all slices of the same phantom (`phantom.py`).
"""

from __future__ import annotations

import functools
import hashlib
import random
import struct
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator

from xnatfs.demo import jpeg, phantom
from xnatfs.demo.dicom import MrSlice, uid_for

CHUNK = 1 << 20


class DemoFile(ABC):
    """The bytes of one catalog entry. Implementations must be safe to read from many threads."""

    mtime: float

    @property
    @abstractmethod
    def size(self) -> int: ...

    @abstractmethod
    def read(self, offset: int, length: int) -> bytes:
        """Up to `length` bytes from `offset` (fewer only at the end of the file)."""

    @functools.cached_property
    def md5(self) -> str:
        h = hashlib.md5()
        for chunk in self.chunks():
            h.update(chunk)
        return h.hexdigest()

    def chunks(self, start: int = 0, end: int | None = None, size: int = CHUNK) -> Iterator[bytes]:
        """The bytes of [start, end) in pieces of at most `size`."""
        stop = self.size if end is None else min(end, self.size)
        pos = start
        while pos < stop:
            data = self.read(pos, min(size, stop - pos))
            if not data:
                break
            yield data
            pos += len(data)

    def read_all(self) -> bytes:
        return b"".join(self.chunks())


class BytesFile(DemoFile):
    def __init__(self, data: bytes, mtime: float) -> None:
        self._data = bytes(data)
        self.mtime = mtime

    @property
    def size(self) -> int:
        return len(self._data)

    def read(self, offset: int, length: int) -> bytes:
        return self._data[offset : offset + length]


@functools.lru_cache(maxsize=256)
def _built(builder: Callable[[], bytes]) -> bytes:
    return builder()


class GeneratedFile(DemoFile):
    """Bytes from `builder()`, a pure, hashable callable (e.g. a `functools.partial` of
    module-level functions with hashable arguments), so equal files share one cache slot."""

    def __init__(self, builder: Callable[[], bytes], mtime: float) -> None:
        self._builder = builder
        self.mtime = mtime

    @functools.cached_property
    def size(self) -> int:
        return len(_built(self._builder))

    def read(self, offset: int, length: int) -> bytes:
        return _built(self._builder)[offset : offset + length]

    @functools.cached_property
    def md5(self) -> str:
        return _md5_of_built(self._builder)


@functools.lru_cache(maxsize=4096)
def _md5_of_built(builder: Callable[[], bytes]) -> str:
    return hashlib.md5(_built(builder)).hexdigest()


# --- DICOM -------------------------------------------------------------------------------------


# Large enough for every slice of the demo geometries (about 80 MB when full): sessions share
# the phantom, so after the first session only headers and digests are new work.
@functools.lru_cache(maxsize=768)
def _slice_pixels(rows: int, cols: int, index: int, count: int, weighting: str) -> bytes:
    return phantom.slice_u16le(rows, cols, phantom.slice_position(index, count), weighting)


@functools.lru_cache(maxsize=8192)
def _slice_header(meta: MrSlice) -> bytes:
    return meta.header()


@functools.lru_cache(maxsize=8192)
def _slice_md5(meta: MrSlice, index: int, count: int) -> str:
    h = hashlib.md5(_slice_header(meta))
    h.update(_slice_pixels(meta.rows, meta.cols, index, count, meta.weighting))
    return h.hexdigest()


class DicomSliceFile(DemoFile):
    """Slice `index` of `count` of an MR series; pixels are generated only when read."""

    def __init__(self, meta: MrSlice, index: int, count: int, mtime: float) -> None:
        self.meta = meta
        self.index = index
        self.count = count
        self.mtime = mtime

    @functools.cached_property
    def size(self) -> int:
        return len(_slice_header(self.meta)) + self.meta.pixel_data_length

    def read(self, offset: int, length: int) -> bytes:
        header = _slice_header(self.meta)
        end = min(offset + length, self.size)
        if offset >= end:
            return b""
        if end <= len(header):
            return header[offset:end]
        m = self.meta
        pixels = _slice_pixels(m.rows, m.cols, self.index, self.count, m.weighting)
        data = header + pixels if offset < len(header) else pixels
        base = 0 if offset < len(header) else len(header)
        return data[offset - base : end - base]

    @functools.cached_property
    def md5(self) -> str:
        return _slice_md5(self.meta, self.index, self.count)


def mr_series(
    *,
    patient: str,
    study_key: str,
    study_date: str,
    study_description: str,
    series_number: int,
    series_description: str,
    slices: int,
    rows: int,
    cols: int,
    weighting: str,
    mtime: float,
    fov_mm: float = 240.0,
    coverage_mm: float = 180.0,
) -> list[tuple[str, DemoFile]]:
    """An axial MR series through the phantom: `[("1.dcm", file), ...]`, instance numbers 1..N.

    `study_key` makes the UIDs (two sessions of one patient get different studies)."""
    study_uid = uid_for("study", study_key)
    series_uid = uid_for("series", study_key, series_number)
    thickness = round(coverage_mm / slices, 4)
    out: list[tuple[str, DemoFile]] = []
    for i in range(slices):
        meta = MrSlice(
            patient_name=patient.replace(" ", "^"),
            patient_id=patient,
            study_uid=study_uid,
            series_uid=series_uid,
            study_date=study_date,
            study_description=study_description,
            series_description=series_description,
            series_number=series_number,
            instance_number=i + 1,
            rows=rows,
            cols=cols,
            pixel_spacing=round(fov_mm / cols, 4),
            slice_thickness=thickness,
            z_mm=round(-coverage_mm / 2 + (i + 0.5) * thickness, 4),
            weighting=weighting,
        )
        out.append((f"{i + 1}.dcm", DicomSliceFile(meta, i, slices, mtime)))
    return out


# --- JPEG and Analyze --------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def snapshot_jpeg(size: int, z: float, weighting: str) -> bytes:
    """A `size`x`size` grayscale JPEG of the phantom at normalised height `z`."""
    return jpeg.encode_gray(phantom.slice_u8(size, size, z, weighting))


def snapshot_file(z: float, weighting: str, mtime: float, size: int = 128) -> DemoFile:
    return GeneratedFile(functools.partial(snapshot_jpeg, size, z, weighting), mtime)


ANALYZE_SHAPE = (64, 64, 16)  # x, y, z
ANALYZE_VOXEL_MM = (3.75, 3.75, 11.25)


@functools.lru_cache(maxsize=8)
def analyze_img(weighting: str = "T1") -> bytes:
    """The .img of the demo Analyze pair: int16 little endian, x fastest, 64x64x16 voxels."""
    nx, ny, nz = ANALYZE_SHAPE
    return b"".join(
        phantom.slice_u16le(ny, nx, phantom.slice_position(k, nz), weighting) for k in range(nz)
    )


@functools.lru_cache(maxsize=8)
def analyze_hdr(weighting: str = "T1", description: str = "xnatfs demo phantom") -> bytes:
    """The 348-byte Analyze 7.5 header that goes with `analyze_img(weighting)`."""
    nx, ny, nz = ANALYZE_SHAPE
    dx, dy, dz = ANALYZE_VOXEL_MM
    data = analyze_img(weighting)
    values = struct.unpack(f"<{len(data) // 2}h", data)
    header_key = struct.pack("<i10s18sihcc", 348, b"", b"", 16384, 0, b"r", b"\0")
    dims = struct.pack(
        "<8h4s8shhhh8f8fii",
        3, nx, ny, nz, 1, 0, 0, 0,
        b"mm", b"", 0,
        4, 16, 0,  # datatype 4 = signed short, 16 bits per voxel
        0.0, dx, dy, dz, 0.0, 0.0, 0.0, 0.0,
        0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,  # vox_offset, funused1-3, cal_max/min, ...
        max(values), min(values),
    )  # fmt: skip
    history = struct.pack(
        "<80s24sc10s10s10s10s10s10s3s8i",
        description.encode()[:80], b"", b"\0", b"", b"", b"", b"", b"", b"", b"",
        0, 0, 0, 0, 0, 0, 0, 0,
    )  # fmt: skip
    hdr = header_key + dims + history
    assert len(hdr) == 348
    return hdr


def analyze_pair(stem: str, weighting: str, mtime: float) -> list[tuple[str, DemoFile]]:
    return [
        (f"{stem}.img", GeneratedFile(functools.partial(analyze_img, weighting), mtime)),
        (f"{stem}.hdr", GeneratedFile(functools.partial(analyze_hdr, weighting), mtime)),
    ]


# --- Big files ---------------------------------------------------------------------------------

_PATTERN_BLOCK = 1 << 20


@functools.lru_cache(maxsize=4)
def _pattern(seed: int) -> bytes:
    return random.Random(seed).randbytes(_PATTERN_BLOCK)


class PatternFile(DemoFile):
    """`size` pseudo-random bytes, generated from the offset: block `i` (1 MiB) is the seed
    block rotated by a block-dependent amount, so every block differs and any offset can be
    served without generating what comes before it."""

    def __init__(self, size: int, seed: int, mtime: float) -> None:
        self._size = size
        self._seed = seed
        self.mtime = mtime

    @property
    def size(self) -> int:
        return self._size

    def _block(self, i: int) -> bytes:
        base = _pattern(self._seed)
        shift = (i * 7919 + 13) % _PATTERN_BLOCK
        return base[shift:] + base[:shift]

    def read(self, offset: int, length: int) -> bytes:
        end = min(offset + length, self._size)
        out = []
        pos = offset
        while pos < end:
            i, within = divmod(pos, _PATTERN_BLOCK)
            take = min(end - pos, _PATTERN_BLOCK - within)
            out.append(self._block(i)[within : within + take])
            pos += take
        return b"".join(out)

    @functools.cached_property
    def md5(self) -> str:
        return _pattern_md5(self._size, self._seed)


@functools.lru_cache(maxsize=8)
def _pattern_md5(size: int, seed: int) -> str:
    h = hashlib.md5()
    for chunk in PatternFile(size, seed, 0.0).chunks():
        h.update(chunk)
    return h.hexdigest()


def text_file(text: str, mtime: float) -> BytesFile:
    return BytesFile(text.encode("utf-8"), mtime)
