"""Real mounts for end-to-end tests: the filesystem runs in its own process, as users run it.

A hung filesystem in a subprocess can be killed (the kernel then fails pending requests with
ENOTCONN), which a thread could not; teardown always unmounts, because a dead FUSE mount is not
reported by `os.path.ismount` although it is still in the mount table.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench.mounting import fuse_problem, stop_mount
from bench.mounting import unmount as unmount
from bench.mounting import wait_for_mount as wait_for_mount

# The pytest-free pieces are shared with the benchmarks, which mount the same way.
fuse_available = fuse_problem


def require_fuse() -> None:
    reason = fuse_available()
    if reason is not None:
        pytest.skip(f"real mount impossible: {reason}")


@dataclass
class Mount:
    path: Path
    proc: subprocess.Popen[bytes]
    log_path: Path
    cache_dir: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def mount_env(user: str, password: str) -> dict[str, str]:
    env = dict(os.environ)
    env["XNATFS_USER"] = user
    env["XNATFS_PASSWORD"] = password
    env.pop("XNATFS_READY_FD", None)
    return env


@contextlib.contextmanager
def mounted(
    url: str,
    tmp_path: Path,
    *,
    user: str,
    password: str,
    options: Sequence[str] = (),
    cache_dir: Path | None = None,
    name: str = "mnt",
) -> Iterator[Mount]:
    """Run `xnatfs mount URL MNT --foreground` in a subprocess until the block ends."""
    require_fuse()
    mnt = tmp_path / name
    mnt.mkdir(exist_ok=True)
    cache = cache_dir or tmp_path / "cache"
    log_path = tmp_path / f"{name}.log"
    argv = [
        sys.executable,
        "-m",
        "xnatfs",
        "mount",
        url,
        os.fspath(mnt),
        "--foreground",
        "--cache-dir",
        os.fspath(cache),
        *options,
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=mount_env(user, password),
        )
    mount = Mount(mnt, proc, log_path, cache)
    try:
        try:
            wait_for_mount(proc, mnt)
        except RuntimeError as exc:
            raise AssertionError(f"{exc}\n--- xnatfs log ---\n{mount.log()[-4000:]}") from None
        yield mount
    finally:
        stop_mount(mnt, proc)


def quiet_log(server: Any) -> None:
    """Reset a demo server's request log once it has logged everything asked of it so far.

    The server logs a request when its handler ends, which can be a moment after the client
    already has the bytes: a reset right after reading could still see a late entry.
    """
    last, stable_since = -1, time.monotonic()
    while time.monotonic() - stable_since < 0.3:
        total = server.log.total
        if total != last:
            last, stable_since = total, time.monotonic()
        time.sleep(0.05)
    server.log.reset()
