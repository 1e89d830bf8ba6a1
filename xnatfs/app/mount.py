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
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import NoReturn

import pyfuse3
import trio

from xnatfs import __version__
from xnatfs.app import systemd
from xnatfs.app.logsetup import RecentErrors
from xnatfs.app.mounts import DEAD_ERRNOS, check_mountpoint
from xnatfs.cache.disk import DiskCache
from xnatfs.cache.metadata import ListingStore, store_path
from xnatfs.config import MountConfig, Tunables
from xnatfs.data.downloads import Downloads
from xnatfs.data.prefetch import Prefetcher
from xnatfs.errors import AccessDenied, ConfigError, NotFound, Unavailable, XnatfsError
from xnatfs.fs.filesystem import Filesystem
from xnatfs.fs.inodes import ROOT_INODE
from xnatfs.fuse.ops import XnatOperations
from xnatfs.namespace.levels import RootDir
from xnatfs.namespace.listings import Listings, store_key
from xnatfs.namespace.values import LISTING_COLUMNS, Rows
from xnatfs.namespace.walk import WalkAhead
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
        max_listing_bytes=cfg.max_listing_size,
        max_listing_rows=cfg.max_listing_rows,
        listing_columns=LISTING_COLUMNS,
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
        # Offline, nothing is asked of the server: the projects come from the stored listings.
        projects: Rows | None = None
        unreachable: Unavailable | None = None
        if not cfg.offline:
            try:
                projects = client.check()
            except Unavailable as exc:
                unreachable = exc  # a browsed archive still mounts from what is stored
        if projects is not None and cfg.project:
            check_projects(client, credentials, cfg.project, projects)
        store = open_store(cfg, credentials, unreachable)
        try:
            cache = DiskCache(
                cfg.effective_cache_dir, cfg.cache_size, stats_interval=tunables.stats_interval
            )
        except BaseException:
            if store is not None:
                store.close()
            raise
        try:
            return trio.run(
                _serve, cfg, tunables, client, cache, store, projects, ready or (lambda: None)
            )
        except BaseExceptionGroup as group:
            # Trio wraps what a nursery raises; a failure the user can act on (the mount point
            # refused by the kernel, say) must still reach them as one line.
            first = _first_xnatfs_error(group)
            if first is None:
                raise
            raise first from None
        finally:
            if store is not None:
                store.close()
            cache.close()
    finally:
        client.close()


def open_store(
    cfg: MountConfig, credentials: Credentials | None, unreachable: Unavailable | None = None
) -> ListingStore | None:
    """The listings kept on disk for this server and user (None when switched off).

    Offline, or with the server unreachable at start (`unreachable`), a mount needs them: a
    ConfigError (offline) or the `unreachable` error says so when there are none; otherwise one
    warning says the mount serves what is stored.
    """
    path = store_path(cfg.effective_cache_dir, credentials.user if credentials else None)
    needed = cfg.offline or unreachable is not None
    if needed and not path.exists():
        # Refused before anything is created: a mistyped URL leaves no directories behind.
        _refuse_unstored(cfg, unreachable)
    store: ListingStore | None = None
    if cfg.metadata_disk_size > 0:
        try:
            store = ListingStore(path, cfg.metadata_disk_size)
        except (OSError, sqlite3.Error) as exc:
            if cfg.offline:
                raise ConfigError(f"cannot open the stored listings in {path}: {exc}") from None
            log.warning("listings are not kept across mounts: cannot open %s: %s", path, exc)
    if not (cfg.offline or unreachable):
        return store
    stored = store is not None and store.get(store_key(RootDir().source())) is not None
    if not stored:
        if store is not None:
            store.close()
        _refuse_unstored(cfg, unreachable)
    if unreachable is not None:
        log.warning("%s; mounting what is stored, and asking again as it is used", unreachable)
    return store


def _refuse_unstored(cfg: MountConfig, unreachable: Unavailable | None) -> NoReturn:
    if unreachable is not None:
        raise unreachable
    raise ConfigError(
        f"nothing of {cfg.url} is stored for offline use in {cfg.effective_cache_dir} "
        "(for this user); mount it once online first"
    )


async def _serve(
    cfg: MountConfig,
    tunables: Tunables,
    client: XnatClient,
    cache: DiskCache,
    store: ListingStore | None,
    projects: Rows | None,
    ready: ReadyCallback,
) -> int:
    remote = AsyncXnat(client, cfg.max_connections, disk_threads=tunables.disk_threads)
    listings = Listings(
        remote,
        cfg.metadata_ttl,
        max_bytes=cfg.metadata_cache_size,
        store=store,
        offline=cfg.offline,
    )
    root = RootDir(projects=cfg.project, selectors=cfg.selectors == "listed")
    if projects is not None:
        await listings.prime(root.source(), projects)  # what the start-up check read
    first_seen = await _first_seen(remote, store)
    clean = False
    async with trio.open_nursery() as nursery:
        listings.start(nursery)
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
        data = Downloads(
            remote,
            cache,
            nursery,
            on_miss=prefetcher.note_miss,
            sizes=store,
            offline=cfg.offline,
        )
        prefetcher.bind(data)
        walker = WalkAhead(listings, nursery, parallel=cfg.max_connections, budget=cfg.walk_ahead)
        recent = RecentErrors()
        reporters = [prefetcher.stats, cache.report, remote.stats, recent.report, _process]
        reporters.append(walker.stats)
        if store is not None:
            reporters.append(store.stats)
        fs = Filesystem(
            listings, data, root, reporters=reporters, first_seen_ns=first_seen, walker=walker
        )
        ops = XnatOperations(
            fs,
            ttl=cfg.metadata_ttl,
            uid=os.getuid() if cfg.uid is None else cfg.uid,
            gid=os.getgid() if cfg.gid is None else cfg.gid,
            file_mode=cfg.file_mode,
            dir_mode=cfg.dir_mode,
            umask=cfg.umask,
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


async def _first_seen(remote: AsyncXnat, store: ListingStore | None) -> int:
    """When this archive was first mounted (for user), in ns: the root's time of last resort."""
    now = str(time.time_ns())
    if store is None:
        return int(now)
    seen = await remote.serial(store.fact, "first_seen")
    if seen is None or not seen.isdigit():
        await remote.serial(store.put_fact, "first_seen", now)
        return int(now)
    return int(seen)


async def _watch_signals(listings: Listings) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async for signum in signals:
            if signum == signal.SIGHUP:
                await listings.forget()
                log.info("SIGHUP: every listing is asked for again before it is trusted")
                continue
            log.info("%s: unmounting", signal.Signals(signum).name)
            pyfuse3.terminate()
