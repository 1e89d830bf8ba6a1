"""`xnatfs prefetch` on real mounts of the demo XNAT, run as users run it."""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from tests.support.mounting import quiet_log, tmp_mounted
from xnatfs.demo import DEMO_PASSWORD, DEMO_USER, DemoServer

pytestmark = pytest.mark.fuse


def prefetch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xnatfs", "prefetch", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def on_a_terminal(*args: str) -> tuple[int, str]:
    """Run `xnatfs prefetch` with stderr on a 120-column pseudo-terminal; (status, all it
    drew there)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "xnatfs", "prefetch", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=slave,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the other side is closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=120), b"".join(chunks).decode(errors="replace")


def every_file(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def session_of(mnt: Path, subject: str) -> Path:
    [session] = [p for p in (mnt / "STUDY" / subject).iterdir() if p.name != "resources"][:1]
    return session


def test_prefetch_a_session_then_reading_it_asks_the_server_nothing(
    demo: DemoServer, tmp_path: Path
) -> None:
    with tmp_mounted(demo.url, tmp_path, user=DEMO_USER, password=DEMO_PASSWORD) as m:
        session = session_of(m.path, "sub-02")
        code, drawn = on_a_terminal(os.fspath(session), "--jobs", "4")
        assert code == 0, drawn
        # The bar: files and bytes done of the total, rate, ETA; then the summary on stdout.
        last = drawn.replace("\r", "\n").split("\n")
        bar = [line for line in last if "files:" in line][-1]
        assert "100%" in bar and "B/s" in bar, bar
        files = [f for f in every_file(session) if "/ALL/" not in os.fspath(f)]
        assert f"{len({f.stat().st_ino for f in files})}/" in bar
        # The mount's own series prefetch did the work: archives, not a GET per file.
        assert demo.log.zips > 0
        for f in files:
            assert os.getxattr(f, "user.xnat.cached") == b"yes", f

        quiet_log(demo)
        for f in files:
            assert f.read_bytes() or f.stat().st_size == 0
        assert demo.log.files == 0 and demo.log.zips == 0, demo.log.entries()

        again = prefetch(os.fspath(session))
        assert again.returncode == 0, again.stderr
        assert again.stdout.startswith("fetched 0 files (0 B), already cached ")
        assert again.stdout.rstrip().endswith("failed 0")


def test_a_failed_file_is_named_and_the_exit_status_is_1(demo: DemoServer, tmp_path: Path) -> None:
    demo.faults.corrupt(r"/scans/1/resources/[^/]+/files/1\.dcm")
    with tmp_mounted(demo.url, tmp_path, user=DEMO_USER, password=DEMO_PASSWORD) as m:
        scan = m.path / "TEST/1/MR1/scans/1"
        out = prefetch(os.fspath(scan))
        assert out.returncode == 1
        assert f"xnatfs prefetch: {scan}/DICOM/1.dcm: Input/output error" in out.stderr
        fetched, _, failed = out.stdout.strip().partition(", already cached 0 (0 B), ")
        assert fetched.startswith("fetched 2 files (") and failed == "failed 1", out.stdout
        assert os.getxattr(scan / "DICOM/1.dcm", "user.xnat.cached") == b"no"
        assert os.getxattr(scan / "DICOM/2.dcm", "user.xnat.cached") == b"yes"


def test_a_warning_before_fetching_more_than_the_cache_holds(
    demo: DemoServer, tmp_path: Path
) -> None:
    with tmp_mounted(
        demo.url, tmp_path, user=DEMO_USER, password=DEMO_PASSWORD, options=("--cache-size", "1M")
    ) as m:
        out = prefetch(os.fspath(session_of(m.path, "sub-03")))
        assert out.returncode == 0, out.stderr
        first = out.stderr.splitlines()[0]
        assert first.startswith("xnatfs prefetch: warning: ") and "more than the cache holds" in (
            first
        ), first
        assert "(1.0 MiB)" in first


def test_a_path_outside_any_mount_is_refused(tmp_path: Path) -> None:
    out = prefetch(os.fspath(tmp_path))
    assert out.returncode == 2
    assert out.stderr.strip() == f"xnatfs: {tmp_path} is not inside an xnatfs mount"
