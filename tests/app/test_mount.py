"""The composition root's checks, without mounting."""

from __future__ import annotations

import resource

from xnatfs.app.mount import _first_xnatfs_error, fuse_options, raise_fd_limit
from xnatfs.config import build_config
from xnatfs.errors import ConfigError, Unavailable


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
