"""`xnatfs demo`: the demo server, alone or mounted, until Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.mounting import require_fuse, unmount, wait_for_mount
from xnatfs.app.mounts import read_mounts


def start_demo(*args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XNATFS_")}
    return subprocess.Popen(
        [sys.executable, "-m", "xnatfs", "demo", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )


def interrupt(proc: subprocess.Popen[bytes]) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    return proc.returncode, out.decode(errors="replace")


def test_serve_only_prints_where_and_stops_on_ctrl_c() -> None:
    proc = start_demo("--serve-only")
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith(b"demo XNAT:   http://127.0.0.1:")
        for line in proc.stdout:  # ends at EOF should the demo die
            if b"serving until Ctrl-C" in line:
                break
        code, _ = interrupt(proc)
        assert code == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


@pytest.mark.fuse
def test_demo_mounts_until_ctrl_c(tmp_path: Path) -> None:
    require_fuse()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = start_demo(str(mnt), "--cache-dir", str(tmp_path / "cache"))
    try:
        wait_for_mount(proc, mnt)
        assert "TEST" in os.listdir(mnt)
        code, out = interrupt(proc)
        assert code == 0, out
        assert f"mount point: {mnt}" in out
        deadline = time.monotonic() + 30
        while any(e.mountpoint == str(mnt) for e in read_mounts()):
            assert time.monotonic() < deadline, "still mounted"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        unmount(mnt)
