"""The composition root: builds every object of a mount and runs it until unmount.

Nothing else constructs the client, the caches or the filesystem. The lifecycle:
check the server and credentials -> open the disk cache -> list the projects (the root) ->
`pyfuse3.init` -> serve until SIGINT/SIGTERM or an external unmount -> `pyfuse3.close`.
Readiness (`READY=1` for systemd, or the parent of a background mount) is announced only after
the mount has answered a request of its own.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import resource
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pyfuse3
import trio

from xnatfs.app import systemd
from xnatfs.app.fstab import clear_stale_mount
from xnatfs.cache.disk import DiskCache
from xnatfs.config import MountConfig
from xnatfs.data.downloads import Downloads
from xnatfs.data.prefetch import Prefetcher
from xnatfs.errors import ConfigError, XnatfsError
from xnatfs.fs.filesystem import Filesystem
from xnatfs.fuse.ops import XnatOperations
from xnatfs.namespace.levels import ROOT_DIR
from xnatfs.namespace.listings import Listings
from xnatfs.namespace.values import Node
from xnatfs.remote import AsyncXnat
from xnatfs.xnat.auth import Credentials
from xnatfs.xnat.client import XnatClient

log = logging.getLogger(__name__)

ReadyCallback = Callable[[str | None], None]


def check_mountpoint(path: os.PathLike[str] | str) -> None:
    """Refuse a mount point that cannot be used, with a one-line reason."""
    p = os.fspath(path)
    try:
        # A crashed or killed mount leaves a dead entry behind; a restart must not trip on it.
        clear_stale_mount(Path(p))
    except OSError as exc:
        raise ConfigError(
            f"mount point {p} is a dead mount that could not be cleared ({exc}); "
            f"try: xnatfs umount --lazy {p}"
        ) from None
    try:
        os.stat(p)
    except FileNotFoundError:
        raise ConfigError(f"mount point {p} does not exist") from None
    except OSError as exc:
        if exc.errno == 107:  # ENOTCONN: a dead FUSE mount left behind by a crash
            raise ConfigError(
                f"mount point {p} is a dead mount; clear it with: xnatfs umount --lazy {p}"
            ) from None
        raise ConfigError(f"mount point {p}: {exc.strerror}") from None
    if not os.path.isdir(p):
        raise ConfigError(f"mount point {p} is not a directory")
    if os.path.ismount(p):
        raise ConfigError(f"{p} is already a mount point")
    if not os.access(p, os.W_OK) and os.getuid() != 0:
        raise ConfigError(f"mount point {p} is not writable by you (FUSE needs that)")


def raise_fd_limit(wanted: int = 65536) -> int:
    """Raise the soft limit on open files towards the hard one; returns the soft limit.

    Every open file and every running or prefetching download holds a descriptor, and a series
    of a few thousand slices must not run into the common soft limit of 1024.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            log.debug("could not raise the open-file limit above %d", soft)
    return soft


def fuse_options(cfg: MountConfig) -> set[str]:
    options = set(pyfuse3.default_options)
    options |= {"ro", "fsname=xnatfs", "subtype=xnatfs"}
    if cfg.allow_other:
        options.add("allow_other")
    return options


def build_client(cfg: MountConfig, credentials: Credentials | None) -> XnatClient:
    return XnatClient(
        cfg.url,
        credentials,
        connect_timeout=cfg.connect_timeout,
        read_timeout=cfg.read_timeout,
        retries=cfg.retries,
        pool_size=cfg.max_connections,
    )


def run(
    cfg: MountConfig,
    credentials: Credentials | None,
    ready: ReadyCallback | None = None,
) -> int:
    """Mount and serve until unmounted. Returns the exit status.

    Errors found before the mount is live (server, credentials, mount point, cache directory)
    are raised as `XnatfsError`s with one-line messages, and nothing is left mounted.
    """
    faulthandler.enable()
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    fd_limit = raise_fd_limit()
    check_mountpoint(cfg.mountpoint)
    client = build_client(cfg, credentials)
    try:
        client.check()
        cache = DiskCache(cfg.effective_cache_dir, cfg.cache_size)
        try:
            return trio.run(_serve, cfg, client, cache, fd_limit, ready or (lambda _msg: None))
        except BaseExceptionGroup as group:
            # Trio wraps what a nursery raises; a failure the user can act on (the mount point
            # refused by the kernel, say) must still reach them as one line.
            first = _first_xnatfs_error(group)
            if first is None:
                raise
            raise first from None
        finally:
            cache.close()
    finally:
        client.close()


async def _serve(
    cfg: MountConfig, client: XnatClient, cache: DiskCache, fd_limit: int, ready: ReadyCallback
) -> int:
    remote = AsyncXnat(client, cfg.max_connections)
    listings = Listings(remote, cfg.metadata_ttl)
    root_mtime = await _root_mtime(listings)
    clean = False
    async with trio.open_nursery() as nursery:
        prefetcher = Prefetcher(
            remote,
            listings.rows,
            nursery,
            mode=cfg.prefetch,
            max_bytes=min(2 * 1024**3, cfg.cache_size // 2),
            max_files=max(16, fd_limit // 4),
            parallel=max(1, cfg.max_connections // 2),
        )
        data = Downloads(remote, cache, nursery, on_miss=prefetcher.note_miss)
        prefetcher.bind(data)
        fs = Filesystem(listings, data, root_mtime, reporters=(prefetcher.stats, cache.report))
        ops = XnatOperations(
            fs,
            ttl=cfg.metadata_ttl,
            uid=os.getuid() if cfg.uid is None else cfg.uid,
            gid=os.getgid() if cfg.gid is None else cfg.gid,
        )
        try:
            pyfuse3.init(ops, os.fspath(cfg.mountpoint), fuse_options(cfg))
        except RuntimeError as exc:
            raise ConfigError(f"cannot mount on {cfg.mountpoint}: {exc}") from None
        try:
            nursery.start_soon(_watch_signals, listings)
            nursery.start_soon(_announce_ready, cfg, remote, ready)
            await pyfuse3.main()
            clean = True
        finally:
            remote.close()
            systemd.notify("STOPPING=1")
            nursery.cancel_scope.cancel()
            pyfuse3.close(unmount=clean)
            log.info("unmounted %s (%s)", cfg.mountpoint, _summary(fs.stats()))
    return 0


def _summary(stats: dict[str, object]) -> str:
    return f"{stats['listing_requests']} listing requests, {stats['downloads']} downloads"


def _first_xnatfs_error(group: BaseExceptionGroup[BaseException]) -> XnatfsError | None:
    for exc in group.exceptions:
        if isinstance(exc, XnatfsError):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = _first_xnatfs_error(exc)
            if found is not None:
                return found
    return None


async def _root_mtime(listings: Listings) -> int:
    """The root's time: the newest project's insert date; the start time only if none has one."""
    root = Node(name="", path=(), mtime_ns=0, dir=ROOT_DIR)
    children = await listings.children(root)
    times = [c.mtime_ns for c in children.ordered if c.mtime_ns]
    return max(times) if times else time.time_ns()


async def _announce_ready(cfg: MountConfig, remote: AsyncXnat, ready: ReadyCallback) -> None:
    # A stat of the mount point goes through the kernel to our own request loop: when it
    # returns, the mount answers requests, and only then is it announced.
    try:
        await remote.blocking(os.stat, os.fspath(cfg.mountpoint))
    except OSError:
        # Stopped (signal or unmount) before it first answered: the stat is aborted as the
        # mount goes away, and there is nothing to announce. Otherwise it is an error.
        await trio.lowlevel.checkpoint_if_cancelled()
        raise
    log.info("mounted %s on %s", cfg.url, cfg.mountpoint)
    systemd.notify("READY=1")
    ready(None)


async def _watch_signals(listings: Listings) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async for signum in signals:
            if signum == signal.SIGHUP:
                listings.clear()
                log.info("SIGHUP: metadata caches dropped")
                continue
            log.info("%s: unmounting", signal.Signals(signum).name)
            pyfuse3.terminate()
