"""The composition root's checks, without mounting."""

from __future__ import annotations

import errno
import resource
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from xnatfs.app.mount import (
    _announce_ready,
    _first_xnatfs_error,
    check_mountpoint,
    fuse_options,
    raise_fd_limit,
)
from xnatfs.config import build_config
from xnatfs.errors import ConfigError, Unavailable


def test_unusable_mount_points_are_refused_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        check_mountpoint(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        check_mountpoint(tmp_path / "file")
    with pytest.raises(ConfigError, match="already a mount point"):
        check_mountpoint("/proc")
    check_mountpoint(tmp_path)  # an ordinary directory is fine


def test_fuse_options_are_read_only_and_named() -> None:
    cfg = build_config("https://x.org", "/m", {})
    opts = fuse_options(cfg)
    assert {"ro", "fsname=xnatfs", "subtype=xnatfs", "default_permissions"} <= opts
    assert "allow_other" not in opts
    assert "allow_other" in fuse_options(build_config("https://x.org", "/m", {"allow_other": True}))


def test_errors_inside_trio_groups_reach_the_user_unwrapped() -> None:
    inner = ConfigError("cannot mount on /m: busy")
    group = BaseExceptionGroup("outer", [KeyboardInterrupt(), ExceptionGroup("in", [inner])])
    assert _first_xnatfs_error(group) is inner
    assert _first_xnatfs_error(ExceptionGroup("x", [RuntimeError()])) is None
    assert isinstance(_first_xnatfs_error(ExceptionGroup("y", [Unavailable("z")])), Unavailable)


def test_open_file_limit_is_raised_towards_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
        got = raise_fd_limit(4096)
        assert got == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        assert got == (4096 if hard == resource.RLIM_INFINITY else min(4096, hard))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class AbortedStat:
    """Stands in for the remote whose worker thread stats the mount point: the stat fails as
    the kernel fails it when the mount goes away; with `stopping`, that scope was cancelled
    meanwhile (the mount is being stopped), as the mount's nursery is at SIGINT or SIGTERM."""

    def __init__(self, stopping: trio.CancelScope | None) -> None:
        self.stopping = stopping

    async def blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self.stopping is not None:
            self.stopping.cancel()
        raise ConnectionAbortedError(errno.ECONNABORTED, "Software caused connection abort")


async def test_a_mount_stopped_before_it_first_answered_ends_quietly() -> None:
    cfg = build_config("https://x.org", "/m", {})
    announced: list[object] = []
    with trio.CancelScope() as scope:
        await _announce_ready(cfg, AbortedStat(scope), announced.append)  # type: ignore[arg-type]
    assert scope.cancelled_caught
    assert announced == []


async def test_a_mount_point_that_fails_while_running_is_still_an_error() -> None:
    cfg = build_config("https://x.org", "/m", {})
    announced: list[object] = []
    with pytest.raises(ConnectionAbortedError):
        await _announce_ready(cfg, AbortedStat(None), announced.append)  # type: ignore[arg-type]
    assert announced == []
