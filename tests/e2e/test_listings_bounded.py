"""Listings a server makes huge, on real mounts: refused past their limits with EIO and a log line,
in bounded memory, and a big legitimate one turned into entries without stalling the mount.

Memory is the mount process's own peak (VmHWM), compared with what it was just before, under
budgets generous for a noisy machine yet far below what the unbounded code took.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.hostile import HostileXnat, gzip_bomb, listing_body, raw_listing
from tests.support.mounting import Mount, tmp_mounted

pytestmark = pytest.mark.fuse

MB = 1 << 20

# Reads a file over and over, dropping its pages before each read so that every read reaches
# the mount process, until the stop file appears; prints the slowest read in seconds.
PROBE = r"""
import os, sys, time
path, stop = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_RDONLY)
worst, reads = 0.0, 0
print("started", flush=True)
while not os.path.exists(stop):
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    began = time.monotonic()
    os.pread(fd, 65536, 0)
    worst = max(worst, time.monotonic() - began)
    reads += 1
    time.sleep(0.01)
print(worst, reads, flush=True)
"""


def mount(xnat: HostileXnat, tmp_path: Path, *options: str) -> object:
    return tmp_mounted(
        xnat.url,
        tmp_path,
        user=xnat.user,
        password=xnat.password,
        options=("--metadata-ttl", "600", *options),
    )


def growth(m: Mount, before: int | None) -> int:
    peak = m.peak_rss()
    assert peak is not None and before is not None
    return peak - before


def listdir_error(path: Path) -> int | None:
    try:
        os.listdir(path)
    except OSError as exc:
        return exc.errno
    return None


def test_a_listing_that_inflates_past_the_limit_is_eio_in_bounded_memory(tmp_path: Path) -> None:
    with HostileXnat() as xnat:
        # 0.4 MB on the wire, 400 MB of JSON once inflated.
        xnat.files(gzip_bomb(400 * MB))
        good = xnat.add_resource("2", "good")
        xnat.files(xnat.serve_all({"a.dcm": b"a" * 1000}, rid="2"), rid="2")
        with mount(xnat, tmp_path) as m:
            assert isinstance(m, Mount)
            before = m.peak_rss()
            assert listdir_error(m.path / xnat.RESOURCE) == errno.EIO
            # Bounded by the 128 MiB default limit, not by the 400 MB the reply inflates to
            # (unbounded: 800 MB more).
            assert growth(m, before) < 320 * MB
            assert "max_listing_size" in m.log()
            # Its neighbours are served as before.
            assert (m.path / good / "a.dcm").read_bytes() == b"a" * 1000


def test_a_listing_past_either_limit_is_refused_and_one_within_them_is_not(
    tmp_path: Path,
) -> None:
    with HostileXnat() as xnat:
        xnat.files([xnat.row(f"{i}.dcm", b"x") for i in range(101)])
        fits = xnat.add_resource("2", "fits")
        fitting = listing_body([xnat.row(f"{i}.dcm", b"x", rid="2") for i in range(100)])
        xnat.files(raw_listing(fitting), rid="2")
        big = xnat.add_resource("3", "big")
        body = listing_body([xnat.row(f"{'x' * 200}{i}.dcm", b"x", rid="3") for i in range(50)])
        xnat.files(raw_listing(body), rid="3")
        assert len(fitting) < len(body) - 1
        with mount(
            xnat, tmp_path, "--max-listing-rows", "100", "--max-listing-size", str(len(body) - 1)
        ) as m:
            assert isinstance(m, Mount)
            assert listdir_error(m.path / xnat.RESOURCE) == errno.EIO
            assert len(os.listdir(m.path / fits)) == 100
            assert listdir_error(m.path / big) == errno.EIO
            log = m.log()
            assert "more than 100 rows (max_listing_rows)" in log
            assert f"larger than {len(body) - 1} bytes (max_listing_size)" in log


def test_a_200000_row_listing_is_built_without_stalling_the_mount(tmp_path: Path) -> None:
    with HostileXnat() as xnat:
        rows = [
            xnat.row(f"{i:06d}.dcm", None, Size=str(131072 + i), digest=f"{i:032x}")
            for i in range(200_000)
        ]
        xnat.files(raw_listing(listing_body(rows)))
        del rows
        small = xnat.add_resource("2", "small")
        data = os.urandom(MB)
        xnat.files(xnat.serve_all({"c.bin": data}, rid="2"), rid="2")
        with mount(xnat, tmp_path) as m:
            assert isinstance(m, Mount)
            cached = m.path / small / "c.bin"
            assert cached.read_bytes() == data
            before = m.peak_rss()
            stop = tmp_path / "stop"
            probe = subprocess.Popen(
                [sys.executable, "-c", PROBE, str(cached), str(stop)],
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                assert probe.stdout is not None
                assert probe.stdout.readline().strip() == "started"
                time.sleep(0.5)
                names = os.listdir(m.path / xnat.RESOURCE)
            finally:
                stop.touch()
                out, _ = probe.communicate(timeout=60)
            assert len(names) == 200_000
            worst, reads = out.split()
            # Every read of the cached file was answered while 200,000 rows became entries
            # (on the event loop that took 5 s; now well under a tenth of that).
            assert int(reads) > 10
            assert float(worst) < 2.0, f"a read of a cached file waited {worst} s"
            # Rows keep only the columns read, and the listing is kept once (before: 400 MB).
            assert growth(m, before) < 300 * MB
