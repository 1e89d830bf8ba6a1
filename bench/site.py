"""The archive the benchmarks read: built with the demo model's mutation API.

The demo site's own series are 2-240 slices, too small for the series scenarios, so the benchmark
adds its own projects to a demo `Site`:

* `BENCH/big/big_MR1`: scan `1` (type `T1`) with a DICOM series of `Sizes.series_files` slices,
  scans `11`..`18` (type `EPI`) with `Sizes.parallel_files` slices each (the 8-reader scenario),
  and the session resource `RAW` holding `raw/kspace.dat` of `Sizes.big_file` bytes;
* `META`: `Sizes.meta_sessions` sessions (5 per subject), each with two small scans, for the
  metadata scenario.

Slices are real DICOM files (the demo's MR header) whose pixel data are pseudo-random bytes cut
from one shared pool: serving them costs a slice copy, not a phantom render, so the server is not
what the benchmarks measure. `warm_server_caches` computes every digest before anything is timed.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

from xnatfs.demo.content import DemoFile, PatternFile
from xnatfs.demo.dicom import MrSlice, uid_for
from xnatfs.demo.model import Experiment, Resource
from xnatfs.demo.site import Site

BENCH_PROJECT = "BENCH"
META_PROJECT = "META"
BIG_SUBJECT = "big"
BIG_SESSION = "big_MR1"
SERIES_SCAN = "1"
PARALLEL_SCANS = tuple(str(n) for n in range(11, 19))
BIG_FILE_PATH = "raw/kspace.dat"
MTIME = 1678786200.0  # 2023-03-14 09:30 UTC

_POOL_SIZE = 4 << 20


@dataclass(frozen=True)
class Sizes:
    """How much data each scenario moves."""

    series_files: int  # slices of the main series (scenarios a, b, c)
    series_matrix: int  # rows = cols of the main series; 256 -> 128 KiB per slice
    parallel_files: int  # slices of each of the 8 series of scenario f
    big_file: int  # bytes of the large file (scenario d)
    meta_sessions: int  # sessions of the metadata project (scenario e)
    cached_entries: int  # cache entries for the start-up measurement (scenario g)
    random_reads: int  # 4 KiB preads of scenario d


FULL = Sizes(840, 256, 100, 1 << 30, 50, 50_000, 100)
QUICK = Sizes(160, 256, 32, 64 << 20, 20, 10_000, 100)
SMOKE = Sizes(24, 128, 6, 4 << 20, 4, 500, 10)


@functools.lru_cache(maxsize=1)
def _pool() -> bytes:
    return random.Random(20240611).randbytes(_POOL_SIZE)


class BenchSliceFile(DemoFile):
    """A DICOM slice: the demo's MR header, then pixel bytes taken from the shared pool at an
    offset that depends on the series and the slice, so files differ from one another."""

    def __init__(self, meta: MrSlice, mtime: float) -> None:
        self.meta = meta
        self.mtime = mtime
        self._header = meta.header()
        span = _POOL_SIZE - meta.pixel_data_length
        salt = int(uid_for(meta.series_uid, meta.instance_number)[-9:])
        self._pixel_offset = (salt * 4099) % span

    @property
    def size(self) -> int:
        return len(self._header) + self.meta.pixel_data_length

    def read(self, offset: int, length: int) -> bytes:
        end = min(offset + length, self.size)
        if offset >= end:
            return b""
        head = len(self._header)
        out = b""
        if offset < head:
            out = self._header[offset : min(end, head)]
            offset = head
        if offset < end:
            start = self._pixel_offset + offset - head
            out += _pool()[start : start + end - offset]
        return out


def _series(
    site: Site, resource: Resource, *, key: str, number: int, slices: int, matrix: int
) -> None:
    study_uid = uid_for("bench-study", key)
    series_uid = uid_for("bench-series", key, number)
    for i in range(slices):
        meta = MrSlice(
            patient_name="BENCH^PHANTOM",
            patient_id="BENCH",
            study_uid=study_uid,
            series_uid=series_uid,
            study_date="20230314",
            study_description="Benchmark",
            series_description=f"bench series {number}",
            series_number=number,
            instance_number=i + 1,
            rows=matrix,
            cols=matrix,
            pixel_spacing=round(240.0 / matrix, 4),
            slice_thickness=1.0,
            z_mm=float(i),
            weighting="T1",
        )
        site.add_file(resource, f"{i + 1:04d}.dcm", BenchSliceFile(meta, MTIME), content="RAW")


def _big_session(site: Site, sizes: Sizes) -> Experiment:
    site.add_project(BENCH_PROJECT, "Benchmark data", description="Series and a large file.")
    site.add_subject(BENCH_PROJECT, BIG_SUBJECT)
    exp = site.add_experiment(
        BENCH_PROJECT,
        BIG_SUBJECT,
        BIG_SESSION,
        date="2023-03-14",
        insert_date="2023-03-14 10:00:00.000",
    )
    scan = site.add_scan(exp, SERIES_SCAN, "T1")
    res = site.add_resource(scan, "DICOM", format="DICOM", content="RAW")
    _series(site, res, key=exp.id, number=1, slices=sizes.series_files, matrix=sizes.series_matrix)
    for scan_id in PARALLEL_SCANS:
        scan = site.add_scan(exp, scan_id, "EPI")
        res = site.add_resource(scan, "DICOM", format="DICOM", content="RAW")
        _series(
            site,
            res,
            key=exp.id,
            number=int(scan_id),
            slices=sizes.parallel_files,
            matrix=sizes.series_matrix,
        )
    raw = site.add_resource(exp, "RAW", format="DAT")
    site.add_file(raw, BIG_FILE_PATH, PatternFile(sizes.big_file, seed=7, mtime=MTIME))
    return exp


def _meta_project(site: Site, sizes: Sizes) -> None:
    site.add_project(META_PROJECT, "Metadata benchmark", description="Many small sessions.")
    for n in range(sizes.meta_sessions):
        subject_label = f"s{n // 5 + 1:03d}"
        if n % 5 == 0:
            site.add_subject(META_PROJECT, subject_label)
        exp = site.add_experiment(
            META_PROJECT,
            subject_label,
            f"{subject_label}_MR{n % 5 + 1}",
            date="2023-05-01",
            insert_date="2023-05-01 12:00:00.000",
        )
        for scan_id, scan_type in (("1", "T1"), ("2", "T2")):
            scan = site.add_scan(exp, scan_id, scan_type)
            res = site.add_resource(scan, "DICOM", format="DICOM", content="RAW")
            _series(site, res, key=exp.id, number=int(scan_id), slices=3, matrix=32)
        notes = site.add_resource(exp, "NOTES", format="TXT")
        site.add_file(notes, "notes.txt", f"session {exp.label}\n".encode(), mtime=MTIME)


@dataclass(frozen=True)
class BenchSite:
    site: Site
    sizes: Sizes
    big_session: Experiment

    @property
    def session_path(self) -> str:
        """The session's directory, relative to the mount point."""
        return f"{BENCH_PROJECT}/{BIG_SUBJECT}/{BIG_SESSION}"

    def series_dir(self, scan_id: str = SERIES_SCAN) -> str:
        return f"{self.session_path}/scans/{scan_id}/DICOM"

    @property
    def big_file_rel(self) -> str:
        return f"{self.session_path}/resources/RAW/{BIG_FILE_PATH}"

    def resource(self, scan_id: str) -> Resource:
        return self.big_session.scans[scan_id].resources[0]

    def series_bytes(self, scan_id: str = SERIES_SCAN) -> int:
        return self.resource(scan_id).file_size


def build_bench_site(sizes: Sizes) -> BenchSite:
    """The demo site plus the benchmark projects (see the module docstring)."""
    from xnatfs.demo import build_demo_site

    site = build_demo_site()
    exp = _big_session(site, sizes)
    _meta_project(site, sizes)
    return BenchSite(site, sizes, exp)


def warm_server_caches(bench: BenchSite) -> None:
    """Compute every digest now, so no timed request pays for it (the big file's included)."""
    with bench.site.lock:
        owners = [bench.big_session, *bench.site.projects[META_PROJECT].subjects.values()]
    for exp in _experiments(owners):
        for resource in _resources(exp):
            for entry in resource.files.values():
                _ = entry.data.md5


def _experiments(owners: list[object]) -> list[Experiment]:
    out: list[Experiment] = []
    for owner in owners:
        if isinstance(owner, Experiment):
            out.append(owner)
        else:
            out.extend(getattr(owner, "experiments", {}).values())
    return out


def _resources(exp: Experiment) -> list[Resource]:
    out = list(exp.resources)
    for scan in exp.scans.values():
        out.extend(scan.resources)
    return out
