"""File bytes: served from the disk cache, or from a download that readers share while it runs.

`open` downloads nothing. The first read of a file that is not cached starts one streamed
download into a part file of the disk cache; every reader of that file (however many) waits on
trio events for the bytes it needs and is answered as soon as they have arrived, so reading the
first 4 KiB of a 500 MB file does not wait for the rest. When the download completes it is
checked against the listing's size and MD5 digest and only then admitted to the cache.

Reads that reach the end of a file wait for that check, so no reader can copy a whole file that
failed verification: a digest mismatch is an EIO, never a silently wrong copy.

Invariants (all state is touched only from trio tasks; download threads only write to their own
part file's fd and queue progress reports to trio with `run_sync_soon`):
- a key is in `_inflight` iff a download for it is running; its `done` event is set in `finally`;
- a failed download wakes every waiter with the error; the next read starts a new download.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from xnatfs.cache.disk import CacheKey, DiskCache, mismatch
from xnatfs.errors import IntegrityError, Unavailable, XnatfsError
from xnatfs.namespace.values import RemoteFile
from xnatfs.remote import AsyncXnat
from xnatfs.xnat.paths import file_url_path

if TYPE_CHECKING:
    from xnatfs.data.prefetch import Prefetcher

log = logging.getLogger(__name__)


def cache_key(remote: RemoteFile) -> CacheKey:
    return CacheKey(uri=remote.uri, size=remote.size, digest=remote.digest)


@dataclass(eq=False)
class Transfer:
    """One running (or just finished) download of one file version."""

    key: CacheKey
    part_path: str
    fd: int
    written: int = 0
    done: bool = False
    verified: bool = False
    settled: bool = False  # finished and handed over: its fd may close with its last reader
    error: BaseException | None = None
    refs: int = 0
    changed: trio.Event = field(default_factory=trio.Event)
    # Called when a reader is about to wait for bytes that have not arrived (prefetch uses it
    # to fetch a file a reader needs before the bulk download would reach it).
    on_wait: Callable[[Transfer], None] | None = None

    def advance(self, written: int) -> None:
        self.written = written
        self._wake()

    def finish(self, error: BaseException | None) -> None:
        self.error = error
        self.done = True
        self._wake()

    def _wake(self) -> None:
        event, self.changed = self.changed, trio.Event()
        event.set()

    async def wait_for(self, end: int) -> None:
        """Wait until bytes [0, end) are readable; `end` at or past EOF waits for verification."""
        while True:
            if self.error is not None:
                raise self.error
            if self.done:
                return
            # Bytes before the end are served as they arrive; the last byte only after the
            # whole file has been verified. With no size in the listing, EOF is unknown.
            below_end = self.key.size is None or end < self.key.size
            if below_end and self.written >= end:
                return
            await self.changed.wait()


class FileReader:
    """The per-open state of one file: an fd to read from, once there is one."""

    def __init__(self, store: DataStore, remote: RemoteFile) -> None:
        self._store = store
        self.remote = remote
        self.key = cache_key(remote)
        self._fd: int | None = None
        self._transfer: Transfer | None = None

    async def read(self, offset: int, size: int) -> bytes:
        if self._fd is None:
            failed = self._transfer
            if failed is not None and failed.done and failed.error is not None:
                # The download this reader relied on failed; this read tries again.
                self._store.detach(failed)
                self._transfer = None
            if self._transfer is None:
                self._fd = self._store.cache.open(self.key)
                if self._fd is None:
                    self._transfer = self._store.attach(self.remote)
        transfer = self._transfer
        if transfer is not None:
            if transfer.on_wait is not None and transfer.written < offset + size:
                transfer.on_wait(transfer)
            await transfer.wait_for(offset + size)
            return _pread_all(transfer.fd, size, offset)
        assert self._fd is not None
        return _pread_all(self._fd, size, offset)

    @property
    def learned_size(self) -> int | None:
        """The real size once a download of a file with unknown size has completed."""
        t = self._transfer
        return t.written if t is not None and t.done and t.error is None else None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._transfer is not None:
            self._store.detach(self._transfer)
            self._transfer = None


def _pread_all(fd: int, size: int, offset: int) -> bytes:
    # pyfuse3 pads short reads with zeroes unless at EOF, so loop until size or EOF.
    chunks = []
    while size > 0:
        data = os.pread(fd, size, offset)
        if not data:
            break
        chunks.append(data)
        size -= len(data)
        offset += len(data)
    return b"".join(chunks)


class DataStore:
    """Starts downloads, shares them between readers, verifies and admits finished files."""

    def __init__(
        self,
        remote: AsyncXnat,
        cache: DiskCache,
        nursery: trio.Nursery,
        prefetcher: Prefetcher | None = None,
    ) -> None:
        self._remote = remote
        self.cache = cache
        self._nursery = nursery
        self._inflight: dict[CacheKey, Transfer] = {}
        self._disk = trio.CapacityLimiter(2)
        self.cancel = threading.Event()
        self.downloads = 0
        self.prefetcher = prefetcher
        self._admit_queue: list[tuple[Transfer, str]] = []
        self._admitting = False

    def open(self, remote: RemoteFile) -> FileReader:
        return FileReader(self, remote)

    def attach(self, remote: RemoteFile) -> Transfer:
        """The running download of `remote`, started if there is none; the caller holds a ref."""
        key = cache_key(remote)
        transfer = self._inflight.get(key)
        if transfer is None:
            transfer = self.claim(key)
            self.start(transfer)
            if self.prefetcher is not None:
                self.prefetcher.note_miss(self, remote)
        transfer.refs += 1
        return transfer

    def claim(self, key: CacheKey) -> Transfer:
        """Register a new, not yet started transfer of `key` (readers attach to it)."""
        part_path, fd = self.cache.create_part(key)
        transfer = Transfer(key=key, part_path=part_path, fd=fd)
        self._inflight[key] = transfer
        return transfer

    def wanted(self, key: CacheKey) -> bool:
        """Neither cached nor being fetched."""
        return key not in self._inflight and not self.cache.contains(key)

    def start(self, transfer: Transfer) -> None:
        """Fetch a claimed transfer with its own GET."""
        self.downloads += 1
        self._nursery.start_soon(self._run, transfer)

    def detach(self, transfer: Transfer) -> None:
        transfer.refs -= 1
        if transfer.refs <= 0 and transfer.settled:
            _close_quietly(transfer.fd)

    def complete(self, t: Transfer, md5_hex: str) -> None:
        """Verify a fully written transfer and release its readers; admission follows."""
        problem = mismatch(t.key, t.written, md5_hex)
        if problem is not None:
            log.warning("not caching %s: %s", t.key.uri, problem)
            self.settle(t, IntegrityError(f"{t.key.uri}: {problem}"))
            return
        # Verified: readers may read to the end now. Making the file durable (fsync) and
        # admitting it happen after, off the readers' path and in batches; until then the
        # transfer stays in `_inflight`, so new readers use it instead of downloading again.
        t.verified = True
        t.finish(None)
        self._admit_queue.append((t, md5_hex))
        if not self._admitting:
            self._admitting = True
            self._nursery.start_soon(self._admit_queued)

    async def _admit_queued(self) -> None:
        try:
            while self._admit_queue:
                batch, self._admit_queue = self._admit_queue, []
                # Shielded: verified files are still admitted while the mount is being stopped.
                with trio.CancelScope(shield=True):
                    failed = await trio.to_thread.run_sync(
                        _fsync_all, [t.fd for t, _ in batch], limiter=self._disk
                    )
                for t, md5_hex in batch:
                    try:
                        if t.fd in failed:
                            raise failed[t.fd]
                        if not self.cache.admit(t.key, t.part_path, md5_hex):
                            log.info("%s is not kept (larger than the whole cache)", t.key.uri)
                    except (XnatfsError, OSError) as exc:
                        log.warning("could not cache %s: %s", t.key.uri, exc)
                        self.cache.discard(t.part_path)
                    finally:
                        self.settle(t, None)
        finally:
            self._admitting = False

    def settle(self, t: Transfer, error: BaseException | None) -> None:
        """End a transfer: wake its readers with the outcome and forget it."""
        if error is not None or not t.verified:
            self.cache.discard(t.part_path)
        if self._inflight.get(t.key) is t:
            del self._inflight[t.key]
        if not t.done:
            t.finish(error)
        t.settled = True
        if t.refs <= 0:
            _close_quietly(t.fd)

    async def _run(self, t: Transfer) -> None:
        md5 = hashlib.md5(usedforsecurity=False)
        token = trio.lowlevel.current_trio_token()

        def write(offset: int, chunk: bytes) -> None:
            # Worker thread: only this transfer's fd and its own hash object are touched here.
            # Progress is queued to trio in order without waiting (run_sync_soon).
            pwrite_all(t.fd, chunk, offset)
            md5.update(chunk)
            token.run_sync_soon(t.advance, offset + len(chunk))

        def same(offset: int, chunk: bytes) -> bool:
            # Worker thread: bytes a resumed body sends again must equal those already written.
            return _pread_all(t.fd, len(chunk), offset) == chunk

        path = file_url_path(t.key.uri)
        try:
            try:
                await self._remote.download(path, write, same, self.cancel)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                # Disk full: make room in the cache once and download again from the start.
                freed = self.cache.make_room(max(t.key.size or 0, t.written) * 2)
                log.warning(
                    "disk full while caching %s; freed %d bytes, retrying", t.key.uri, freed
                )
                md5 = hashlib.md5(usedforsecurity=False)
                # Readers must not take the old byte count for the new, empty file.
                t.advance(0)
                os.ftruncate(t.fd, 0)
                await self._remote.download(path, write, same, self.cancel)
        except XnatfsError as exc:
            self.settle(t, exc)
            return
        except OSError as exc:
            log.warning("download of %s failed: %s", t.key.uri, exc)
            self.settle(t, Unavailable(f"could not cache {t.key.uri}: {exc.strerror or exc}"))
            return
        except BaseException as exc:
            # Cancelled at unmount, or a bug: readers must not wait forever either way.
            if not isinstance(exc, trio.Cancelled):
                log.exception("download of %s failed", t.key.uri)
            self.settle(t, Unavailable(f"download of {t.key.uri} stopped"))
            raise
        self.complete(t, md5.hexdigest())


def pwrite_all(fd: int, data: bytes, offset: int) -> None:
    """Write all of `data` at `offset`, or raise.

    `pwrite` may write less than asked when the disk fills up; ignoring that would leave a hole
    behind bytes that were hashed and reported as written, and so serve and cache wrong bytes.
    """
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        if n <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[n:]
        offset += n


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
