"""Series prefetch: when a resource is being walked, fetch the rest of it in bulk.

Imaging tools read a series file after file. On XNAT every file GET pays a round trip plus a
catalog lookup, so a mount that fetches file by file is many times slower than one `format=zip`
request for the same files. When a second file of one files listing misses the cache within a
short window, the remaining files of that listing (not cached, not already being fetched, with a
known size) are claimed as transfers, so readers wait on them as on any download, and fetched:

- `zip` (and `auto`): one streamed `format=zip` request of that listing (`bulk.ZipBulk`); an
  entry is written to a claimed file only when its full name proves it is that file
  (`xnat.archive`, checked against every file of the listing), and admitted on its own once its
  size and MD5 match the listing. Entries the archive lacks, and the rest after a failure, fall
  back to single GETs for files somebody is waiting on; the others are simply released.
- `parallel`: single GETs of the claimed files, a few at a time, in listing order.

This module is policy only: it works through the narrow `DownloadPort` (`Downloads` in
production) and never touches a part file itself. Bytes go to disk, never to memory; a prefetch
claims at most `max_bytes` in at most `max_files` files (each holds a descriptor), and only files
of at most `max_file` bytes (large files are better served by their own streamed GET).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import trio

from xnatfs.data.bulk import ZipBulk
from xnatfs.data.transfer import Transfer
from xnatfs.errors import Unavailable
from xnatfs.fileversion import FileVersion
from xnatfs.namespace.values import Row, Source, file_version
from xnatfs.remote import AsyncXnat
from xnatfs.xnat.archive import ArchiveIndex, member

log = logging.getLogger(__name__)

ListingRows = Callable[[Source], Awaitable[Sequence[Row]]]


class DownloadPort(Protocol):
    """What the prefetcher may ask of the downloads (`xnatfs.data.downloads.Downloads`)."""

    @property
    def closing(self) -> bool:
        """The mount is being stopped."""

    def claim(self, version: FileVersion) -> Transfer | None:
        """A new, unstarted transfer readers attach to; None if cached or in flight."""

    def fetch(self, transfer: Transfer) -> None:
        """Fetch a claimed transfer with its own GET, in the background."""

    async def download(self, transfer: Transfer) -> None:
        """Fetch a claimed transfer with its own GET, in this task."""

    def complete(self, transfer: Transfer, md5_hex: str) -> None:
        """Verify a fully written transfer; admission follows."""

    def release(self, transfer: Transfer, error: BaseException | None) -> None:
        """End a transfer that will not be completed, waking its readers with `error`."""


class Prefetcher:
    """Decides when a walked listing is fetched ahead, and fetches it (see the module docs)."""

    def __init__(
        self,
        remote: AsyncXnat,
        rows: ListingRows,
        nursery: trio.Nursery,
        *,
        mode: str = "auto",
        window: float = 2.0,
        lead: int = 4,
        max_bytes: int = 2 * 1024**3,
        max_file: int = 64 * 1024**2,
        max_files: int = 4096,
        parallel: int = 4,
    ) -> None:
        self._remote = remote
        self._rows = rows
        self._nursery = nursery
        self._downloads: DownloadPort | None = None
        self.mode = "zip" if mode == "auto" else mode
        self.window = window  # seconds between two misses in one listing that start a prefetch
        self.lead = lead
        self.max_bytes = max_bytes
        self.max_file = max_file
        self.max_files = max_files  # each claimed file holds a part file descriptor
        self.parallel = parallel
        self._recent: OrderedDict[Source, float] = OrderedDict()
        self._running: set[Source] = set()
        # Listings whose archive matched none of their files: not tried again in this mount.
        self._unhelpful: set[Source] = set()
        self._started = 0
        self._entries_skipped = 0  # archive entries of no listed file
        self._entries_ambiguous = 0  # archive entries two listed files could hold

    def bind(self, downloads: DownloadPort) -> None:
        """Connect the downloads this prefetcher claims from (they call `note_miss`)."""
        self._downloads = downloads

    def note_miss(self, version: FileVersion, listing: Source) -> None:
        """A read of `version` (a file of `listing`) missed the cache and started a download."""
        if self.mode == "off" or listing in self._running or listing in self._unhelpful:
            return
        now = trio.current_time()
        last = self._recent.pop(listing, None)
        self._recent[listing] = now
        while len(self._recent) > 1024:
            self._recent.popitem(last=False)
        if last is not None and now - last <= self.window:
            self._running.add(listing)
            self._started += 1
            self._nursery.start_soon(self._prefetch, listing)

    def stats(self) -> dict[str, object]:
        """Counters for the stats xattr."""
        return {
            "prefetches": self._started,
            "prefetches_running": len(self._running),
            "archive_entries_skipped": self._entries_skipped,
            "archive_entries_ambiguous": self._entries_ambiguous,
        }

    async def _prefetch(self, listing: Source) -> None:
        downloads = self._downloads
        assert downloads is not None, "bind() the downloads first"
        try:
            rows = await self._rows(listing)
            files = [file_version(r, listing) for r in rows]
            claimed = self._claim(downloads, files)
            if not claimed:
                return
            log.debug("prefetching %d files of %s (%s)", len(claimed), listing.path, self.mode)
            if self.mode == "parallel":
                await self._parallel(downloads, list(claimed.values()))
            else:
                # Every listed file, claimed or not, so that an entry of a file that is not
                # being fetched is recognised as such rather than taken for a claimed one.
                members = [
                    m
                    for f, row in zip(files, rows, strict=True)
                    if (m := member(f.uri, row.get("collection", ""))) is not None
                ]
                await self._zip(downloads, listing, claimed, ArchiveIndex(members))
        except Exception:
            log.exception("prefetch of %s failed", listing.path)
        finally:
            self._running.discard(listing)

    def _claim(self, downloads: DownloadPort, files: list[FileVersion]) -> dict[str, Transfer]:
        """Claim what is worth fetching, keyed by URI (in listing order)."""
        claimed: dict[str, Transfer] = {}
        budget = self.max_bytes
        for f in files:
            if f.size is None or f.size > self.max_file:
                continue
            if f.size > budget or len(claimed) >= self.max_files:
                break
            t = downloads.claim(f)
            if t is not None:
                budget -= f.size
                claimed[f.uri] = t
        return claimed

    async def _parallel(self, downloads: DownloadPort, transfers: list[Transfer]) -> None:
        limit = trio.Semaphore(self.parallel)

        async def one(t: Transfer) -> None:
            async with limit:
                await downloads.download(t)

        async with trio.open_nursery() as nursery:
            for t in transfers:
                nursery.start_soon(one, t)

    async def _zip(
        self,
        downloads: DownloadPort,
        listing: Source,
        claimed: dict[str, Transfer],
        index: ArchiveIndex,
    ) -> None:
        def entry_done(t: Transfer, md5_hex: str) -> None:
            # Runs as a queued callback from the archive thread, where an exception would end
            # the event loop.
            try:
                downloads.complete(t, md5_hex)
            except Exception:
                log.exception("admitting %s failed", t.version.uri)

        bulk = ZipBulk(claimed, index, entry_done, lead=self.lead)

        def urgent(t: Transfer) -> None:
            # A reader waits for a file the archive will reach only much later: fetch it now.
            if bulk.steal(t):
                t.on_wait = None
                downloads.fetch(t)

        for t in claimed.values():
            t.on_wait = urgent
        try:
            await self._remote.stream(listing.path, {"format": "zip"}, bulk, self._remote.stop())
        except Exception as exc:
            log.warning("bulk download of %s stopped: %s", listing.path, exc)
        finally:
            self._settle(downloads, listing, claimed, bulk)

    def _settle(
        self,
        downloads: DownloadPort,
        listing: Source,
        claimed: dict[str, Transfer],
        bulk: ZipBulk,
    ) -> None:
        index = bulk.index
        self._entries_skipped += index.skipped
        self._entries_ambiguous += index.ambiguous
        if index.skipped or index.ambiguous:
            log.info(
                "archive of %s: %d entries of no listed file, %d that two files could hold;"
                " none of their bytes were used",
                listing.path,
                index.skipped,
                index.ambiguous,
            )
        handed = set(bulk.handed)
        stolen = set(bulk.stolen)
        if not handed:
            log.info("the archive of %s held none of its files; not using it", listing.path)
            self._unhelpful.add(listing)
        for t in claimed.values():
            t.on_wait = None
            if t in handed or t in stolen:
                continue  # complete() or its own download owns it now
            if t.writer.written:
                # The stream began this file and broke off: its own GET starts from nothing.
                t.advance(0)
                t.writer.restart()
            if t.refs > 0 and not downloads.closing:
                downloads.fetch(t)  # somebody is waiting: fetch it with its own GET
            else:
                downloads.release(t, Unavailable(f"prefetch of {t.version.uri} dropped"))
