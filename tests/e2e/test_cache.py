"""The disk cache through real mounts: LRU order, a killed mount, shared downloads, a full disk."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.cache.test_disk import demo_site, find_files, mount_cache
from tests.support.mounting import quiet_log, unmount
from xnatfs.cache.layout import iter_entries
from xnatfs.demo import DemoServer

pytestmark = pytest.mark.fuse

MIB = 1 << 20


def parts_in(cache: Path) -> list[str]:
    return sorted(p.name for p in (cache / "parts").glob("*.part"))


def test_lru_order_decides_what_is_evicted(tmp_path: Path) -> None:
    site, files = demo_site(3, MIB)
    with (
        DemoServer(site) as server,
        mount_cache(
            server, tmp_path, "--prefetch", "off", "--cache-size", str(2 * MIB + MIB // 2)
        ) as m,
    ):
        p = find_files(m.path, files)
        a, b, c = (p[n] for n in ("f00.bin", "f01.bin", "f02.bin"))
        assert a.read_bytes() == files["f00.bin"]
        assert b.read_bytes() == files["f01.bin"]
        subprocess.run(["sh", "-c", "echo 3 > /proc/sys/vm/drop_caches"], check=True)
        assert a.read_bytes() == files["f00.bin"]  # a hit: a is now the most recent
        time.sleep(0.2)
        assert c.read_bytes() == files["f02.bin"]  # room for c: b, the least recent, goes
        deadline = time.monotonic() + 10
        while len(list(iter_entries(m.cache_dir))) != 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        subprocess.run(["sh", "-c", "echo 3 > /proc/sys/vm/drop_caches"], check=True)
        quiet_log(server)
        assert a.read_bytes() == files["f00.bin"]
        assert server.log.files == 0
        assert b.read_bytes() == files["f01.bin"]
        assert server.log.files == 1


def test_two_concurrent_readers_cause_one_get(tmp_path: Path) -> None:
    site, files = demo_site(1, 8 * MIB)
    with DemoServer(site) as server, mount_cache(server, tmp_path, "--prefetch", "off") as m:
        path = find_files(m.path, files)["f00.bin"]
        server.faults.bandwidth = 40 * MIB  # slow enough for the readers to overlap
        got: list[bytes] = []
        readers = [threading.Thread(target=lambda: got.append(path.read_bytes())) for _ in "ab"]
        for r in readers:
            r.start()
        for r in readers:
            r.join(60)
        assert got == [files["f00.bin"]] * 2
        assert server.log.files == 1


def test_a_mount_killed_mid_download_leaves_nothing_partial(tmp_path: Path) -> None:
    site, files = demo_site(1, 16 * MIB)
    with DemoServer(site) as server:
        with mount_cache(server, tmp_path, "--prefetch", "off") as m:
            path = find_files(m.path, files)["f00.bin"]
            server.faults.stall_body(after_bytes=4 * MIB, seconds=30, times=1)
            reader = subprocess.Popen(
                ["cat", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            deadline = time.monotonic() + 20
            while not parts_in(m.cache_dir) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert parts_in(m.cache_dir), "the download never started"
            time.sleep(0.5)
            m.proc.send_signal(signal.SIGKILL)
            m.proc.wait(10)
            reader.wait(30)
            unmount(m.path)
            assert list(iter_entries(m.cache_dir)) == []  # nothing partial was admitted
        server.faults.clear()
        server.log.reset()
        with mount_cache(server, tmp_path, "--prefetch", "off", name="again") as m:
            assert parts_in(m.cache_dir) == []  # the stray part was removed at start
            path = find_files(m.path, files)["f00.bin"]
            assert path.read_bytes() == files["f00.bin"]
            assert server.log.files == 1


def test_a_full_disk_gives_correct_bytes_or_eio_and_keeps_serving(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(small)], check=True)
    try:
        site, files = demo_site(3, MIB + MIB // 2)
        with (
            DemoServer(site) as server,
            mount_cache(
                server,
                tmp_path,
                "--prefetch",
                "off",
                "--cache-size",
                "1G",
                cache_dir=small / "cache",
            ) as m,
        ):
            p = find_files(m.path, files)
            assert p["f00.bin"].read_bytes() == files["f00.bin"]
            # The disk holds about two files: caching the next ones runs out of space. Each
            # read gives the right bytes (after making room) or EIO, never wrong bytes.
            for name in ("f01.bin", "f02.bin"):
                try:
                    assert p[name].read_bytes() == files[name]
                except OSError as exc:
                    assert exc.errno == 5  # EIO
            assert m.proc.poll() is None
            for entry in iter_entries(m.cache_dir):
                assert Path(entry.path).read_bytes() in files.values()  # no corrupt entry
            # And what is cached, or can be fetched again, is still served.
            assert p["f02.bin"].read_bytes() == files["f02.bin"]
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)
