"""`xnatfs demo`: the demo server, alone or mounted, until Ctrl-C."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.mounting import require_fuse, unmount, wait_for_mount
from xnatfs.app.mounts import read_mounts

REPO = Path(__file__).resolve().parents[2]


def start_demo(*args: str, command: list[str] | None = None) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XNATFS_")}
    return subprocess.Popen(
        command or [sys.executable, "-m", "xnatfs", "demo", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=REPO,
        start_new_session=True,  # Ctrl-C goes to the whole group, as a terminal sends it
    )


def read_until(proc: subprocess.Popen[bytes], prefix: str, seen: list[str]) -> str:
    """Read output lines (into `seen`) until one starts with `prefix`; fail at EOF."""
    assert proc.stdout is not None
    for raw in proc.stdout:
        line = raw.decode(errors="replace").rstrip("\n")
        seen.append(line)
        if line.startswith(prefix):
            return line
    raise AssertionError(f"no {prefix!r} line:\n" + "\n".join(seen))


def ctrl_c(proc: subprocess.Popen[bytes]) -> tuple[int, str]:
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    return proc.returncode, out.decode(errors="replace")


def mounted_at(path: Path) -> bool:
    return any(e.mountpoint == str(path) for e in read_mounts())


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


@pytest.mark.fuse
def test_make_demo_with_a_mount_point_that_does_not_exist_yet(tmp_path: Path) -> None:
    require_fuse()
    if shutil.which("make") is None:
        pytest.skip("no make")
    mnt = tmp_path / "new" / "xnat-demo"
    proc = start_demo(command=["make", "-s", "demo", f"MOUNTPOINT={mnt}"])
    seen: list[str] = []
    try:
        assert read_until(proc, "mount point: ", seen) == f"mount point: {mnt}"
        cache = read_until(proc, "cache:", seen)
        assert "throwaway" in cache
        # The hint comes once the mount answers, not before.
        hint = read_until(proc, "try:", seen)
        assert mounted_at(mnt)
        listed = hint.split("ls ", 1)[1].split()[0]
        assert sorted(os.listdir(listed)) == ["1", "2"]
        code, rest = ctrl_c(proc)
        assert "unmounted " + str(mnt) in rest, "\n".join(seen) + rest
        assert not mounted_at(mnt)
        assert not (tmp_path / "new").exists(), "the directories the demo made are gone"
        assert not Path(cache.split()[1]).exists(), "the throwaway cache is gone"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        unmount(mnt)


@pytest.mark.fuse
def test_two_demos_at_once(tmp_path: Path) -> None:
    require_fuse()
    procs = [start_demo(str(tmp_path / name)) for name in ("a", "b")]
    try:
        urls, caches = set(), set()
        for proc in procs:
            seen: list[str] = []
            urls.add(read_until(proc, "demo XNAT:", seen))
            caches.add(read_until(proc, "cache:", seen))
            read_until(proc, "try:", seen)
        assert len(urls) == 2 and len(caches) == 2  # own port, own cache
        for name in ("a", "b"):
            assert "TEST" in os.listdir(tmp_path / name)
        for proc in procs:
            code, out = ctrl_c(proc)
            assert code == 0 and "unmounted" in out, out
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        for name in ("a", "b"):
            unmount(tmp_path / name)
