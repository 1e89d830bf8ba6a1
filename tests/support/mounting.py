"""Real mounts: `python -m xnatfs mount URL MNT --foreground` in a subprocess, as users run it.

Shared by the end-to-end tests and the benchmarks (`bench/` imports this module; nothing under
`tests/` imports `bench`). Most of it needs no pytest: `mounted()` runs one mount process for a
`MountSpec` and always unmounts afterwards; `tmp_mounted()` and `require_fuse()` are the
test-suite's conveniences on top and import pytest only when called.

A hung filesystem in a subprocess can be killed (the kernel then fails pending requests with
ENOTCONN), which a thread could not. Readiness is the mount point appearing in the mount table
and answering `stat`; teardown always unmounts, because a dead FUSE mount is not reported by
`os.path.ismount` although it is still in the mount table. Only the process started here is ever
signalled, by its own pid.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FUSERMOUNT = shutil.which("fusermount3") or shutil.which("fusermount")


def fuse_problem() -> str | None:
    """None when real mounts can run here, else why they cannot."""
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    if FUSERMOUNT is None:
        return "no fusermount3"
    if os.geteuid() != 0 and not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "/dev/fuse not usable"
    return None


# The name the test suite's conftest knows it by.
fuse_available = fuse_problem


def in_mount_table(path: Path) -> bool:
    target = os.fspath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)


def unmount(path: Path) -> None:
    if FUSERMOUNT is None:
        return
    subprocess.run([FUSERMOUNT, "-u", os.fspath(path)], capture_output=True, timeout=30)
    if in_mount_table(path):
        subprocess.run([FUSERMOUNT, "-uz", os.fspath(path)], capture_output=True, timeout=30)


def stop_mount(mnt: Path, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Unmount, wait for the process (killing only it if it hangs), and make sure no mount is
    left behind even if it died."""
    unmount(mnt)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    unmount(mnt)


def peak_rss_bytes(pid: int) -> int | None:
    """VmHWM (peak resident set) of a live process, or None when it cannot be read."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a live process has used so far (all its threads)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # Fields after the command name start at field 3 (state): utime is 14, stime 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Mount:
    """One running mount process."""

    path: Path
    proc: subprocess.Popen[bytes]
    log_path: Path
    cache_dir: Path
    startup_s: float  # from the command's start until the mount answered `stat`

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log()[-chars:]

    def peak_rss(self) -> int | None:
        return peak_rss_bytes(self.proc.pid)

    def cpu(self) -> float | None:
        return cpu_seconds(self.proc.pid)


class MountFailed(RuntimeError):
    pass


def mount_env(user: str, password: str) -> dict[str, str]:
    """The environment of a mount process: credentials in variables, never on the command line."""
    env = dict(os.environ)
    env["XNATFS_USER"] = user
    env["XNATFS_PASSWORD"] = password
    env.pop("XNATFS_READY_FD", None)
    return env


@dataclass(frozen=True)
class MountSpec:
    """What every mount of one run shares."""

    url: str
    user: str
    password: str
    workdir: Path  # mount points and logs go here
    profile_dir: Path | None = None  # run each mount under cProfile, one .prof file per mount

    def env(self) -> dict[str, str]:
        return mount_env(self.user, self.password)


def wait_for_mount(proc: subprocess.Popen[bytes], path: Path, timeout: float = 20.0) -> None:
    """Return once `path` is in the mount table and answers; MountFailed otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise MountFailed(f"xnatfs exited with status {proc.returncode} before mounting")
        if in_mount_table(path):
            with contextlib.suppress(OSError):
                os.stat(path)
                return
        time.sleep(0.002)
    raise MountFailed("the mount did not come up in time")


@contextlib.contextmanager
def mounted(
    spec: MountSpec,
    cache_dir: Path,
    *,
    options: Sequence[str] = (),
    name: str = "mnt",
    timeout: float = 30.0,
) -> Iterator[Mount]:
    """A fresh `xnatfs mount` process for the duration of the block; always unmounted after."""
    mnt = spec.workdir / name
    mnt.mkdir(parents=True, exist_ok=True)
    if in_mount_table(mnt):
        unmount(mnt)
    log_path = spec.workdir / f"{name}.log"
    python = [sys.executable]
    if spec.profile_dir is not None:
        spec.profile_dir.mkdir(parents=True, exist_ok=True)
        out = spec.profile_dir / f"{name}-{time.strftime('%H%M%S')}-{time.perf_counter_ns()}.prof"
        python += ["-m", "cProfile", "-o", os.fspath(out)]
    argv = [
        *python,
        "-m",
        "xnatfs",
        "mount",
        spec.url,
        os.fspath(mnt),
        "--foreground",
        "--cache-dir",
        os.fspath(cache_dir),
        *options,
    ]
    with open(log_path, "wb") as log:
        started = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=spec.env(),
        )
    try:
        try:
            wait_for_mount(proc, mnt, timeout)
        except MountFailed as exc:
            tail = log_path.read_text(errors="replace")[-4000:]
            raise MountFailed(f"{exc}\n--- xnatfs log ---\n{tail}") from None
        yield Mount(mnt, proc, log_path, cache_dir, time.perf_counter() - started)
    finally:
        stop_mount(mnt, proc, timeout=timeout)


# --- for the test suite -------------------------------------------------------------------------


def require_fuse() -> None:
    """Skip the calling test when real mounts are impossible here."""
    # Imported here: the benchmarks use this module without pytest.
    import pytest

    reason = fuse_problem()
    if reason is not None:
        pytest.skip(f"real mount impossible: {reason}")


@contextlib.contextmanager
def tmp_mounted(
    url: str,
    tmp_path: Path,
    *,
    user: str,
    password: str,
    options: Sequence[str] = (),
    cache_dir: Path | None = None,
    name: str = "mnt",
) -> Iterator[Mount]:
    """`mounted()` for a test: mount point, log and (by default) cache under `tmp_path`; the
    test is skipped where real mounts are impossible and fails when the mount does not come up."""
    require_fuse()
    spec = MountSpec(url, user, password, tmp_path)
    with contextlib.ExitStack() as stack:
        try:
            mount = stack.enter_context(
                mounted(spec, cache_dir or tmp_path / "cache", options=options, name=name)
            )
        except MountFailed as exc:
            raise AssertionError(str(exc)) from None
        yield mount


def demo_mounted(
    demo: Any, tmp_path: Path, *options: str, name: str = "mnt", cache_dir: Path | None = None
) -> contextlib.AbstractContextManager[Mount]:
    """`tmp_mounted` of a demo XNAT server (`xnatfs.demo.DemoServer`) with its demo user."""
    from xnatfs.demo import DEMO_PASSWORD, DEMO_USER

    return tmp_mounted(
        demo.url,
        tmp_path,
        user=DEMO_USER,
        password=DEMO_PASSWORD,
        options=options,
        cache_dir=cache_dir,
        name=name,
    )


def settled(server: Any) -> int:
    """The number of requests a demo server has logged, once it has logged everything asked of
    it so far.

    The server logs a request when its handler ends, which can be a moment after the client
    already has the bytes: a count (or a reset) right after reading could miss a late entry.
    """
    last, stable_since = -1, time.monotonic()
    while time.monotonic() - stable_since < 0.3:
        total = server.log.total
        if total != last:
            last, stable_since = total, time.monotonic()
        time.sleep(0.05)
    return int(last)


def quiet_log(server: Any) -> None:
    """Reset a demo server's request log once it has logged everything asked of it so far."""
    settled(server)
    server.log.reset()
