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
from collections.abc import Callable, Sequence

import pyfuse3
import trio

from xnatfs import __version__
from xnatfs.app import systemd
from xnatfs.app.logsetup import RecentErrors
from xnatfs.app.mounts import DEAD_ERRNOS, check_mountpoint
from xnatfs.cache.disk import DiskCache
from xnatfs.config import MountConfig, Tunables
from xnatfs.data.downloads import Downloads
from xnatfs.data.prefetch import Prefetcher
from xnatfs.errors import AccessDenied, ConfigError, NotFound, XnatfsError
from xnatfs.fs.filesystem import Filesystem
from xnatfs.fs.inodes import ROOT_INODE
from xnatfs.fuse.ops import XnatOperations
from xnatfs.namespace.levels import RootDir
from xnatfs.namespace.listings import Listings
from xnatfs.namespace.values import Rows
from xnatfs.remote import AsyncXnat
from xnatfs.xnat.auth import Credentials
from xnatfs.xnat.client import XnatClient
from xnatfs.xnat.paths import subjects_path

log = logging.getLogger(__name__)

ReadyCallback = Callable[[], None]


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
    """The FUSE mount options of a mount of `cfg`: read-only, named xnatfs, `allow_other`."""
    options = set(pyfuse3.default_options)
    options |= {"ro", "fsname=xnatfs", "subtype=xnatfs"}
    if cfg.allow_other:
        options.add("allow_other")
    return options


def build_client(
    cfg: MountConfig, credentials: Credentials | None, tunables: Tunables
) -> XnatClient:
    """The XNAT client of a mount of `cfg` (no request is sent yet)."""
    return XnatClient(
        cfg.url,
        credentials,
        connect_timeout=cfg.connect_timeout,
        read_timeout=cfg.read_timeout,
        retries=cfg.retries,
        pool_size=cfg.max_connections,
        chunk_size=tunables.chunk_size,
    )


def check_projects(
    client: XnatClient, credentials: Credentials | None, wanted: Sequence[str], listed: Rows
) -> None:
    """Refuse, with one line, a `--project` the server does not list (absent, or private to
    others) or whose subjects it refuses to list. One small request per project."""
    who = f"user {credentials.user!r}" if credentials is not None else "anonymous access"
    ids = {row.get("ID") for row in listed}
    for project in wanted:
        problem = None
        if project not in ids:
            problem = "does not exist or is not visible to"
        else:
            try:
                client.list(subjects_path(project), {"columns": "ID", "limit": "1"})
            except NotFound:
                problem = "does not exist or is not visible to"
            except AccessDenied:
                problem = "is not readable by"
        if problem is not None:
            raise ConfigError(f"project {project!r} on {client.base_url} {problem} {who}")


def run(
    cfg: MountConfig,
    credentials: Credentials | None,
    ready: ReadyCallback | None = None,
) -> int:
    """Mount and serve until unmounted. Returns the exit status.

    `ready` is called once the mount answers requests (after systemd's `READY=1`). Errors
    found before the mount is live (server, credentials, mount point, cache directory) are
    raised as `XnatfsError`s with one-line messages, and nothing is left mounted.
    """
    faulthandler.enable()
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    tunables = Tunables.for_mount(cfg, raise_fd_limit())
    check_mountpoint(cfg.mountpoint, allow_non_empty=cfg.allow_non_empty)
    client = build_client(cfg, credentials, tunables)
    try:
        projects = client.check()
        if cfg.project:
            check_projects(client, credentials, cfg.project, projects)
        cache = DiskCache(
            cfg.effective_cache_dir, cfg.cache_size, stats_interval=tunables.stats_interval
        )
        try:
            return trio.run(_serve, cfg, tunables, client, cache, projects, ready or (lambda: None))
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
    cfg: MountConfig,
    tunables: Tunables,
    client: XnatClient,
    cache: DiskCache,
    projects: Rows,
    ready: ReadyCallback,
) -> int:
    remote = AsyncXnat(client, cfg.max_connections, disk_threads=tunables.disk_threads)
    listings = Listings(remote, cfg.metadata_ttl, max_bytes=cfg.metadata_cache_size)
    root = RootDir(projects=cfg.project, selectors=cfg.selectors == "listed")
    listings.prime(root.source(), projects)  # what the start-up check read
    clean = False
    async with trio.open_nursery() as nursery:
        prefetcher = Prefetcher(
            remote,
            listings.rows,
            nursery,
            mode=cfg.prefetch,
            window=tunables.prefetch_window,
            lead=tunables.prefetch_lead,
            max_bytes=tunables.prefetch_max_bytes,
            max_file=tunables.prefetch_max_file,
            max_files=tunables.prefetch_max_files,
            parallel=tunables.prefetch_parallel,
        )
        data = Downloads(remote, cache, nursery, on_miss=prefetcher.note_miss)
        prefetcher.bind(data)
        recent = RecentErrors()
        reporters = (prefetcher.stats, cache.report, remote.stats, recent.report, _process)
        fs = Filesystem(listings, data, root, reporters=reporters)
        ops = XnatOperations(
            fs,
            ttl=cfg.metadata_ttl,
            uid=os.getuid() if cfg.uid is None else cfg.uid,
            gid=os.getgid() if cfg.gid is None else cfg.gid,
        )
        # The root's time needs a request; asked now, the first stat of the mount is instant.
        await fs.entry(ROOT_INODE)
        try:
            pyfuse3.init(ops, os.fspath(cfg.mountpoint), fuse_options(cfg))
        except RuntimeError as exc:
            raise ConfigError(f"cannot mount on {cfg.mountpoint}: {exc}") from None
        logging.getLogger("xnatfs").addHandler(recent)
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
            logging.getLogger("xnatfs").removeHandler(recent)
    return 0


def _process() -> dict[str, object]:
    return {"pid": os.getpid(), "version": __version__}


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


async def _announce_ready(cfg: MountConfig, remote: AsyncXnat, ready: ReadyCallback) -> None:
    # A statfs of the mount point always goes through the kernel to our own request loop (a
    # stat may be answered from cached attributes): when it returns, the mount answers
    # requests, and only then is it announced. statfs needs nothing of the server, so this
    # thread is never long inside its own mount: a process killed while a thread of its own
    # waits on its mount cannot exit until that request is answered.
    try:
        await remote.blocking(os.statvfs, os.fspath(cfg.mountpoint))
    except OSError as exc:
        if exc.errno not in DEAD_ERRNOS:
            raise
        # Unmounted (a signal, fusermount -u) before our own request got through: the mount
        # is ending, and there is nothing to announce.
        log.debug("unmounted before it was announced: %s", exc)
        return
    log.info("mounted %s on %s", cfg.url, cfg.mountpoint)
    systemd.notify("READY=1")
    ready()


async def _watch_signals(listings: Listings) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async for signum in signals:
            if signum == signal.SIGHUP:
                listings.clear()
                log.info("SIGHUP: metadata caches dropped")
                continue
            log.info("%s: unmounting", signal.Signals(signum).name)
            pyfuse3.terminate()
