"""Series prefetch: when a resource is being walked, fetch the rest of it in bulk.

Imaging tools read a series file after file. On XNAT every file GET pays a round trip plus a
catalog lookup, so a mount that fetches file by file is many times slower than one `format=zip`
request for the same files. When a second file of one files listing misses the cache within a
short window, the remaining files of that listing (not cached, not already being fetched, with a
known size) are claimed as transfers, so readers wait on them as on any download, and fetched:

- `zip` (and `auto`): one streamed `format=zip` request of that listing; an entry is written to
  a claimed file's part file only when its full name proves it is that file (`xnat.archive`,
  checked against every file of the listing), as it arrives, and admitted on its own once its
  size and MD5 match the listing. Entries the archive lacks, and the rest after a failure, fall
  back to single GETs for files somebody is waiting on; the others are simply released.
- `parallel`: single GETs of the claimed files, a few at a time, in listing order.

Bytes go to disk, never to memory; a prefetch claims at most `max_bytes` in at most `max_files`
files (each holds a descriptor), and only files of at most `max_file` bytes (large files are
better served by their own streamed GET).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict

import trio

from xnatfs.data.downloads import DataStore, Transfer, cache_key, pwrite_all
from xnatfs.data.zipstream import iter_zip
from xnatfs.errors import Unavailable
from xnatfs.namespace.listings import Listings
from xnatfs.namespace.values import RemoteFile, Source, remote_file
from xnatfs.remote import AsyncXnat
from xnatfs.xnat.archive import ArchiveIndex, member

log = logging.getLogger(__name__)

WINDOW = 2.0  # seconds between two misses in one directory that start a prefetch


class Prefetcher:
    def __init__(
        self,
        remote: AsyncXnat,
        listings: Listings,
        nursery: trio.Nursery,
        *,
        mode: str = "auto",
        max_bytes: int = 2 * 1024**3,
        max_file: int = 64 * 1024**2,
        max_files: int = 4096,
        parallel: int = 4,
    ) -> None:
        self._remote = remote
        self._listings = listings
        self._nursery = nursery
        self.mode = "zip" if mode == "auto" else mode
        self.max_bytes = max_bytes
        self.max_file = max_file
        self.max_files = max_files  # each claimed file holds a part file descriptor
        self.parallel = parallel
        self._recent: OrderedDict[Source, float] = OrderedDict()
        self._running: set[Source] = set()
        # Listings whose archive matched none of their files: not tried again in this mount.
        self._unhelpful: set[Source] = set()
        self.started = 0
        self.entries_skipped = 0  # archive entries of no listed file
        self.entries_ambiguous = 0  # archive entries two listed files could hold

    def note_miss(self, store: DataStore, remote: RemoteFile) -> None:
        """A read of `remote` missed the cache and started a single download."""
        listing = remote.listing
        if (
            self.mode == "off"
            or listing is None
            or listing in self._running
            or listing in self._unhelpful
        ):
            return
        now = trio.current_time()
        last = self._recent.pop(listing, None)
        self._recent[listing] = now
        while len(self._recent) > 1024:
            self._recent.popitem(last=False)
        if last is not None and now - last <= WINDOW:
            self._running.add(listing)
            self.started += 1
            self._nursery.start_soon(self._prefetch, store, listing)

    async def _prefetch(self, store: DataStore, listing: Source) -> None:
        try:
            rows = await self._listings.rows(listing)
            files = [remote_file(r, listing) for r in rows]
            claimed = self._claim(store, files)
            if not claimed:
                return
            log.debug("prefetching %d files of %s (%s)", len(claimed), listing.path, self.mode)
            if self.mode == "parallel":
                await self._parallel(store, list(claimed.values()))
            else:
                # Every listed file, claimed or not, so that an entry of a file that is not
                # being fetched is recognised as such rather than taken for a claimed one.
                members = [
                    m
                    for f, row in zip(files, rows, strict=True)
                    if (m := member(f.uri, row.get("collection", ""))) is not None
                ]
                await self._zip(store, listing, claimed, ArchiveIndex(members))
        except Exception:
            log.exception("prefetch of %s failed", listing.path)
        finally:
            self._running.discard(listing)

    def _claim(self, store: DataStore, files: list[RemoteFile]) -> dict[str, Transfer]:
        """Claim what is worth fetching, keyed by URI (in listing order)."""
        claimed: dict[str, Transfer] = {}
        budget = self.max_bytes
        for f in files:
            key = cache_key(f)
            if f.size is None or f.size > self.max_file or not store.wanted(key):
                continue
            if f.size > budget or len(claimed) >= self.max_files:
                break
            budget -= f.size
            claimed[f.uri] = store.claim(key)
        return claimed

    async def _parallel(self, store: DataStore, transfers: list[Transfer]) -> None:
        limit = trio.Semaphore(self.parallel)

        async def one(t: Transfer) -> None:
            async with limit:
                store.downloads += 1
                await store._run(t)

        async with trio.open_nursery() as nursery:
            for t in transfers:
                nursery.start_soon(one, t)

    async def _zip(
        self,
        store: DataStore,
        listing: Source,
        claimed: dict[str, Transfer],
        index: ArchiveIndex,
    ) -> None:
        token = trio.lowlevel.current_trio_token()
        bulk = _Bulk(list(claimed.values()))
        handed: set[Transfer] = set()

        def entry_done(t: Transfer, md5_hex: str) -> None:
            # Runs as a run_sync_soon callback, where an exception would end the event loop.
            try:
                store.complete(t, md5_hex)
            except Exception:
                log.exception("admitting %s failed", t.key.uri)

        def urgent(t: Transfer) -> None:
            # A reader waits for a file the archive will reach only much later: fetch it now.
            if bulk.steal(t):
                t.on_wait = None
                store.start(t)

        for t in claimed.values():
            t.on_wait = urgent

        def pull() -> None:
            # Worker thread: writes only to the claimed transfers' fds. Progress is queued to
            # trio without waiting for it (run_sync_soon keeps order), so the stream never stalls
            # on the event loop.
            with self._remote.client.stream(listing.path, {"format": "zip"}) as chunks:
                for entry, body in iter_zip(chunks):
                    # Only the one listed file this entry can hold, proven by its full name;
                    # anything else is skipped and its bytes go nowhere.
                    m = index.match(entry.name)
                    t = claimed.get(m.key) if m is not None else None
                    if t is None or not bulk.begin(t):
                        continue
                    md5 = hashlib.md5(usedforsecurity=False)
                    offset = 0
                    for data in body:
                        pwrite_all(t.fd, data, offset)
                        md5.update(data)
                        offset += len(data)
                        token.run_sync_soon(t.advance, offset)
                    handed.add(t)
                    token.run_sync_soon(entry_done, t, md5.hexdigest())
                    if store.cancel.is_set():
                        raise Unavailable("unmounting")

        try:
            await self._remote.run(pull)
        except Exception as exc:
            log.warning("bulk download of %s stopped: %s", listing.path, exc)
        finally:
            self.entries_skipped += index.skipped
            self.entries_ambiguous += index.ambiguous
            if index.skipped or index.ambiguous:
                log.info(
                    "archive of %s: %d entries of no listed file, %d that two files could hold;"
                    " none of their bytes were used",
                    listing.path,
                    index.skipped,
                    index.ambiguous,
                )
            if not handed:
                log.info("the archive of %s held none of its files; not using it", listing.path)
                self._unhelpful.add(listing)
            for t in claimed.values():
                t.on_wait = None
                if t in handed or t in bulk.stolen:
                    continue  # complete() or its own download owns it now
                if t.refs > 0 and not store.cancel.is_set():
                    store.start(t)  # somebody is waiting: fetch it with its own GET
                else:
                    store.settle(t, Unavailable(f"prefetch of {t.key.uri} dropped"))


class _Bulk:
    """Which claimed files a bulk download has begun, shared by its thread and trio tasks.

    A reader waiting for a file far ahead of the archive's position takes it out of the bulk
    (`steal`) and fetches it with its own GET, so the file somebody waits for comes first.
    """

    LEAD = 4  # files within this distance of the stream's position are left to the stream

    def __init__(self, order: list[Transfer]) -> None:
        self._lock = threading.Lock()
        self._position = {t: i for i, t in enumerate(order)}
        self._current = -1
        self._begun: set[Transfer] = set()
        self.stolen: set[Transfer] = set()

    def begin(self, t: Transfer) -> bool:
        """Thread side: claim `t` for the stream, unless a reader took it."""
        with self._lock:
            if t in self.stolen or t in self._begun:
                return False
            self._begun.add(t)
            self._current = self._position[t]
            return True

    def steal(self, t: Transfer) -> bool:
        """Trio side: take `t` for a single GET if the stream is far from it."""
        with self._lock:
            if t in self._begun or t in self.stolen:
                return False
            if self._position[t] - self._current <= self.LEAD:
                return False
            self.stolen.add(t)
            return True
