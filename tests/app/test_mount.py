"""The composition root's checks, without mounting."""

from __future__ import annotations

import dataclasses
import inspect
import resource

from xnatfs.app import mount
from xnatfs.app.mount import _first_xnatfs_error, fuse_options, raise_fd_limit
from xnatfs.cache.disk import DiskCache
from xnatfs.config import Tunables, build_config
from xnatfs.data.prefetch import Prefetcher
from xnatfs.errors import ConfigError, Unavailable
from xnatfs.remote import AsyncXnat
from xnatfs.xnat.client import XnatClient


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


def test_a_mount_passes_every_tunable_and_defaults_agree_with_the_constructors() -> None:
    """Objects built without tunables (tests, benchmarks) behave as in a mount: the defaults of
    their constructors are the defaults of `Tunables`."""
    t = Tunables()
    expected = {
        (XnatClient, "chunk_size"): t.chunk_size,
        (AsyncXnat, "disk_threads"): t.disk_threads,
        (DiskCache, "stats_interval"): t.stats_interval,
        (Prefetcher, "window"): t.prefetch_window,
        (Prefetcher, "lead"): t.prefetch_lead,
        (Prefetcher, "max_bytes"): t.prefetch_max_bytes,
        (Prefetcher, "max_files"): t.prefetch_max_files,
        (Prefetcher, "max_file"): t.prefetch_max_file,
        (Prefetcher, "parallel"): t.prefetch_parallel,
    }
    for (cls, name), value in expected.items():
        assert inspect.signature(cls).parameters[name].default == value, (cls, name)
    assert len(expected) == len(dataclasses.fields(Tunables)), "a new tunable needs a line here"
    source = inspect.getsource(mount)
    for field in dataclasses.fields(Tunables):
        assert f"tunables.{field.name}" in source, f"{field.name} is not passed on"
