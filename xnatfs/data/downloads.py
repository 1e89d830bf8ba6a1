"""File bytes: served from the disk cache, or from a download that readers share while it runs.

The first read of a file that is not cached starts one streamed download into a part file of the
disk cache; every reader of that file waits on trio events for the bytes it needs and is answered
as soon as they have arrived, so reading the first 4 KiB of a 500 MB file does not wait for the
rest. When the download completes it is checked against the listing's size and MD5 digest
(`xnatfs.fileversion.verify_part`, the only check) and only then admitted to the cache. Reads
that reach the end of a file wait for that check, so a digest mismatch is an EIO, never a silently
wrong copy.

Invariants (all state here is touched only from trio tasks; download threads hold only their
transfer's `PartWriter` and report progress through `xnatfs.remote`):
- a version is in `_inflight` iff a transfer for it is claimed and not yet settled;
- a transfer's readers are woken with its outcome when it finishes (`Transfer.finish`, also on
  failure and cancellation); the next read after a failure starts a new download.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
from collections.abc import Callable
from typing import Protocol

import trio
from cachetools import LRUCache

from xnatfs.cache.disk import DiskCache
from xnatfs.data.reader import FileReader
from xnatfs.data.transfer import PartWriter, Transfer
from xnatfs.errors import IntegrityError, NotCached, Unavailable, XnatfsError
from xnatfs.fileversion import FileVersion, Verified, verify_part
from xnatfs.namespace.values import Source
from xnatfs.remote import AsyncXnat
from xnatfs.singleflight import SingleFlight
from xnatfs.xnat.paths import file_url_path

log = logging.getLogger(__name__)

SHOWN_TRANSFERS = 20  # running downloads the stats name one by one

# Told about every download that a read had to start (a cache miss): the series prefetch.
MissHandler = Callable[[FileVersion, Source], None]


class SizeStore(Protocol):
    """Sizes learned before, kept across mounts (`xnatfs.cache.metadata.ListingStore`); called
    in a worker thread."""

    def size(self, uri: str) -> int | None:
        """The size learned for the file at `uri`, or None."""

    def put_size(self, uri: str, size: int) -> None:
        """Keep a learned size."""


class Downloads:
    """Starts downloads, shares them between readers, verifies and admits finished files.

    The narrow interface the prefetcher uses: `claim`, `fetch`, `download`, `complete`,
    `release`, `closing`.
    """

    def __init__(
        self,
        remote: AsyncXnat,
        cache: DiskCache,
        nursery: trio.Nursery,
        on_miss: MissHandler | None = None,
        *,
        max_learned_sizes: int = 100_000,
        sizes: SizeStore | None = None,
        offline: bool = False,
    ) -> None:
        self._remote = remote
        self._cache = cache
        self._nursery = nursery
        self._on_miss = on_miss
        self._inflight: dict[FileVersion, Transfer] = {}
        self._admit_queue: list[tuple[Transfer, Verified]] = []
        self._admitting = False
        self._downloads = 0
        # Sizes of files whose listing has none, learned with a request or a download.
        self._sizes: LRUCache[str, int] = LRUCache(maxsize=max_learned_sizes)
        self._sizing: SingleFlight[str, int] = SingleFlight()
        self._size_requests = 0
        self._size_store = sizes
        self._offline = offline  # nothing is asked of the server: a miss is NotCached

    # -- readers -------------------------------------------------------------------------------

    def open(self, version: FileVersion, listing: Source | None) -> FileReader:
        """A reader of `version`; downloads nothing until it reads."""
        return FileReader(self, version, listing)

    def open_cached(self, version: FileVersion) -> int | None:
        """A read-only fd of the verified cache entry of `version` (a hit), or None (a miss)."""
        return self._cache.open(version)

    def is_verified(self, version: FileVersion) -> bool:
        """Whether `version` is complete and verified in the disk cache."""
        return self._cache.contains(version)

    def cached_state(self, version: FileVersion) -> str:
        """Whether `version` is local, without a request: `yes` (complete and verified in the
        disk cache), `partial N` (a download is running and N bytes are on disk so far) or
        `no`."""
        if self._cache.contains(version):
            return "yes"
        transfer = self._inflight.get(version)
        if transfer is not None and not transfer.done:
            return f"partial {transfer.readable}"
        if transfer is not None and transfer.verified:
            return f"partial {transfer.writer.written}"  # verified, being admitted
        return "no"

    def known_size(self, version: FileVersion) -> int | None:
        """The size of `version` if known without a request: the listing's, or one learned."""
        return version.size if version.size is not None else self._sizes.get(version.uri)

    async def size(self, version: FileVersion) -> int:
        """The size of `version`, learned with one request of its own when its listing had none
        (HEAD; where the server says nothing, the file is downloaded, which also caches it).
        Raises the request's error (EIO family) when it cannot be had."""
        known = self.known_size(version)
        if known is not None:
            return known
        return await self._sizing.run(version.uri, lambda: self._measure(version))

    async def _measure(self, version: FileVersion) -> int:
        if self._size_store is not None:
            stored = await self._remote.serial(self._size_store.size, version.uri)
            if stored is not None:
                self._sizes[version.uri] = stored
                return stored
        fd = self._cache.open(version)
        if fd is not None:
            try:
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
        elif self._offline:
            raise NotCached(f"offline: the size of {version.uri} was never learned")
        else:
            self._size_requests += 1
            length = await self._remote.size(file_url_path(version.uri))
            if length is None:
                log.info(
                    "%s has no size in its listing or its headers: downloading it", version.uri
                )
                t = self.attach(version, None)
                try:
                    await t.wait_for(1 << 62)
                    size = t.writer.written
                finally:
                    self.detach(t)
            else:
                size = length
        self._learn(version, size)
        return size

    def _learn(self, version: FileVersion, size: int) -> None:
        self._sizes[version.uri] = size
        if self._size_store is not None:
            self._nursery.start_soon(
                self._remote.serial, self._size_store.put_size, version.uri, size
            )

    def attach(self, version: FileVersion, listing: Source | None) -> Transfer:
        """The running download of `version`, started if there is none; one more reader."""
        transfer = self._inflight.get(version)
        if transfer is None:
            if self._offline:
                raise NotCached(f"offline: {version.uri} is not in the disk cache")
            transfer = self._new(version)
            self.fetch(transfer)
            if self._on_miss is not None and listing is not None:
                self._on_miss(version, listing)
        transfer.refs += 1
        return transfer

    def detach(self, transfer: Transfer) -> None:
        """One reader less; the fd of a settled transfer closes with its last reader."""
        transfer.refs -= 1
        if transfer.refs <= 0 and transfer.settled:
            _close_quietly(transfer.fd)

    # -- the prefetcher's interface ------------------------------------------------------------

    @property
    def closing(self) -> bool:
        """The mount is being stopped: start nothing new."""
        return self._remote.closing

    def claim(self, version: FileVersion) -> Transfer | None:
        """A new transfer of `version` that readers attach to, not yet started; None when the
        version is cached or already being fetched."""
        if version in self._inflight or self._cache.contains(version):
            return None
        return self._new(version)

    def fetch(self, transfer: Transfer) -> None:
        """Fetch a claimed transfer with its own GET, in the background."""
        self._nursery.start_soon(self.download, transfer)

    async def download(self, t: Transfer) -> None:
        """Fetch a claimed transfer with its own GET and settle it; never raises but for
        cancellation."""
        self._downloads += 1
        path = file_url_path(t.version.uri)
        stop = self._remote.stop()
        try:
            try:
                await self._remote.download(path, t.writer, t.advance, stop)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                # Disk full: make room in the cache once and download again from the start.
                freed = self._cache.make_room(max(t.version.size or 0, t.readable) * 2)
                log.warning(
                    "disk full while caching %s; freed %d bytes, retrying", t.version.uri, freed
                )
                # Readers must not take the old byte count for the new, empty file.
                t.advance(0)
                t.writer.restart()
                await self._remote.download(path, t.writer, t.advance, stop)
        except XnatfsError as exc:
            self.release(t, exc)
            return
        except OSError as exc:
            log.warning("download of %s failed: %s", t.version.uri, exc)
            self.release(t, Unavailable(f"could not cache {t.version.uri}: {exc.strerror or exc}"))
            return
        except BaseException as exc:
            # Cancelled at unmount, or a bug: readers must not wait forever either way.
            if not isinstance(exc, trio.Cancelled):
                log.exception("download of %s failed", t.version.uri)
            self.release(t, Unavailable(f"download of {t.version.uri} stopped"))
            raise
        self.complete(t, t.writer.hexdigest())

    def complete(self, t: Transfer, md5_hex: str) -> None:
        """Verify a fully written transfer and release its readers; admission follows."""
        try:
            # A size learned before (and reported to the kernel) must be the size read.
            verified = verify_part(
                t.version,
                t.part_path,
                t.writer.written,
                md5_hex,
                learned_size=self.known_size(t.version),
            )
        except IntegrityError as exc:
            log.warning("not caching %s", exc)
            self.release(t, exc)
            return
        # Readers may read to the end now. Making the file durable (fsync) and admitting it
        # happen after, off the readers' path and in batches; until then the transfer stays in
        # `_inflight`, so new readers use it instead of downloading again.
        if t.version.size is None and self.known_size(t.version) is None:
            self._learn(t.version, t.writer.written)
        t.verified = True
        t.finish(None)
        self._admit_queue.append((t, verified))
        if not self._admitting:
            self._admitting = True
            self._nursery.start_soon(self._admit_queued)

    def release(self, t: Transfer, error: BaseException | None) -> None:
        """End a transfer: wake its readers with the outcome and forget it. An unverified part
        is deleted."""
        if error is not None or not t.verified:
            self._cache.discard(t.part_path)
        if self._inflight.get(t.version) is t:
            del self._inflight[t.version]
        if not t.done:
            t.finish(error)
        t.settled = True
        if t.refs <= 0:
            _close_quietly(t.fd)

    def stats(self) -> dict[str, object]:
        """Counters for the stats xattr: GETs started, transfers in flight, and the running
        ones (`transfers`, at most `SHOWN_TRANSFERS`, most bytes first): URI, bytes `done`,
        `total` (None while unknown) and `rate` in bytes per second since it was claimed."""
        now = time.monotonic()
        running = sorted(
            (t for t in self._inflight.values() if not t.done),
            key=lambda t: t.readable,
            reverse=True,
        )
        return {
            "downloads": self._downloads,
            "in_flight": len(self._inflight),
            "size_requests": self._size_requests,
            "transfers": [
                {
                    "uri": t.version.uri,
                    "done": t.readable,
                    "total": self.known_size(t.version),
                    "rate": round(t.readable / max(now - t.created, 1e-3)),
                }
                for t in running[:SHOWN_TRANSFERS]
            ],
        }

    # -- internals -----------------------------------------------------------------------------

    def _new(self, version: FileVersion) -> Transfer:
        part_path, fd = self._cache.create_part(version)
        transfer = Transfer(version=version, part_path=part_path, writer=PartWriter(fd))
        self._inflight[version] = transfer
        return transfer

    async def _admit_queued(self) -> None:
        try:
            while self._admit_queue:
                batch, self._admit_queue = self._admit_queue, []
                # Shielded: verified files are still admitted while the mount is being stopped.
                with trio.CancelScope(shield=True):
                    failed = await self._remote.blocking(_fsync_all, [t.fd for t, _ in batch])
                for t, verified in batch:
                    try:
                        if t.fd in failed:
                            raise failed[t.fd]
                        if not self._cache.admit(verified):
                            log.info("%s is not kept", t.version.uri)
                    except (XnatfsError, OSError) as exc:
                        log.warning("could not cache %s: %s", t.version.uri, exc)
                        self._cache.discard(t.part_path)
                    finally:
                        self.release(t, None)
        finally:
            self._admitting = False


def _fsync_all(fds: list[int]) -> dict[int, OSError]:
    """fsync each fd (worker thread); the failures by fd."""
    failed: dict[int, OSError] = {}
    for fd in fds:
        try:
            os.fsync(fd)
        except OSError as exc:
            failed[fd] = exc
    return failed


def _close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
