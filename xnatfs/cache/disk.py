"""The persistent disk cache: a size-bounded LRU of verified, complete remote files.

Contract, in one paragraph: an entry is admitted only as a rename of a complete part file that
`xnatfs.fileversion.verify_part` proved to be its key (size when the listing has one, MD5 when it
has a digest): `admit` takes nothing but the `Verified` value it returns, so a reader can never
be handed a partial or corrupt file. Keys are `FileVersion`s (URI + size + digest), so an entry
never goes stale; a file that changes on the server gets a new key. The size
limit is enforced at admission: after `admit` returns, the entries in the directory add up to at
most `max_bytes`. Only part files still being written, and evicted entries that a reader still
holds open (POSIX keeps an unlinked file readable through its fd), take space beyond that.

Threads: every method runs on the trio thread only (cachetools is not thread-safe). Download
threads touch nothing here but the fd and path that `create_part` handed out.

The directory itself (trusted, locked, laid out, and laid out again when removed while
mounted; part files, spilled elsewhere when it cannot take them) is a `directory.CacheDir`;
the on-disk layout and the private-file helpers are in `layout`. Entries are opened without
following symlinks, and anything but a regular file of ours in an entry's place is dropped,
never served.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from xnatfs.cache.directory import CacheDir
from xnatfs.cache.index import LruIndex, read_saved_index, save_index, scan_entries
from xnatfs.cache.layout import (
    PART_SUFFIX,
    STATS_FILE,
    entry_name,
    entry_path,
    make_private_dir,
    write_private_json,
)
from xnatfs.cache.trust import file_problem
from xnatfs.errors import ConfigError
from xnatfs.fileversion import FileVersion, Verified

log = logging.getLogger(__name__)

STATS_INTERVAL = 5.0  # seconds between stats.json writes during a mount


@dataclass(frozen=True)
class CacheStats:
    """Counters since this `DiskCache` was opened, plus the current contents.

    `rejected` counts parts that were not admitted: larger than the whole cache, or failing
    verification against their key.
    """

    entries: int
    bytes: int
    limit: int
    hits: int
    misses: int
    evictions: int
    rejected: int


class DiskCache:
    """All methods are synchronous and are called only from the trio thread (never from worker
    threads), so no locking is needed inside the process; downloads write to part files through
    their own fds in worker threads.

    One process at a time: the constructor takes an exclusive flock on `root/lock` and raises
    `ConfigError` when another process holds it.
    """

    def __init__(self, root: Path, max_bytes: int, stats_interval: float = STATS_INTERVAL) -> None:
        if max_bytes < 0:
            raise ConfigError(f"cache size must not be negative: {max_bytes}")
        self.root = Path(root)
        self.max_bytes = max_bytes
        self._hits = self._misses = self._evictions = self._rejected = 0
        self._clock = 0  # last mtime (ns) stamped on an entry; strictly increasing
        self._last_persist = 0.0
        self._stats_interval = stats_interval
        self._persist_failed = False  # warned once; quiet until a write works again
        self._dir: CacheDir | None = None
        self._dir = CacheDir(self.root, on_laid_out=self._reindex)
        self._parts = self._dir.parts
        try:
            self._reindex()
            self._persist_stats()
        except OSError as exc:
            self.close()
            raise ConfigError(f"cannot use cache directory {self.root}: {exc}") from None
        except BaseException:
            self.close()
            raise

    # -- start-up ---------------------------------------------------------------------------

    def _reindex(self) -> None:
        """Index what the directory holds (at start, and when it was laid out again)."""
        self._index = LruIndex(self.max_bytes, self._evicted)
        self._load_index()

    def _load_index(self) -> None:
        """Rebuild the LRU: from the index a clean unmount left, else from the directory."""
        saved = read_saved_index(self.root)
        if saved is not None:
            # The saved order is the LRU order; new stamps must sort after every old mtime.
            self._clock = time.time_ns()
            found = [(0, name, size) for name, size in saved]
        else:
            found = scan_entries(self.root)
            if found:
                self._clock = found[-1][0]
        fitting = []
        for _, name, size in found:
            if size > self.max_bytes:
                # The limit shrank since the entry was admitted.
                self._unlink_entry(name)
                self._evictions += 1
                continue
            fitting.append((name, size))
        # Inserting in LRU order lets cachetools evict the oldest when the limit shrank.
        self._index.load(fitting)

    # -- the API the filesystem core uses ---------------------------------------------------

    def open(self, key: FileVersion) -> int | None:
        """O_RDONLY fd of the complete entry for `key` (a hit), or None (a miss).

        A hit becomes the most recently used entry, persisted as the file's mtime so the order
        survives a restart. An entry whose size on disk disagrees with `key.size` is dropped and
        reported as a miss.
        """
        name = entry_name(key)
        if name not in self._index:
            self._miss()
            return None
        path = entry_path(self.root, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as exc:
            # Gone or unreadable behind our back: download again (admit replaces the file). A
            # symlink in its place (ELOOP) is never followed, and goes.
            level = logging.INFO if exc.errno == errno.ENOENT else logging.WARNING
            log.log(level, "cache entry for %s unusable, dropped: %s", key.uri, exc)
            self._forget(name)
            if exc.errno == errno.ELOOP:
                self._unlink_entry(name)
            self._miss()
            return None
        try:
            st = os.fstat(fd)
            problem = file_problem(st)
            if problem is not None:
                log.warning("dropping cache entry for %s: it %s", key.uri, problem)
                os.close(fd)
                self._forget(name)
                self._unlink_entry(name)
                self._miss()
                return None
            size = st.st_size
            if key.size is not None and size != key.size:
                log.warning(
                    "dropping cache entry for %s: %d bytes on disk, listing says %d",
                    key.uri,
                    size,
                    key.size,
                )
                os.close(fd)
                self._forget(name)
                self._unlink_entry(name)
                self._miss()
                return None
            self._index.touch(name)
            try:
                os.utime(fd, ns=(self._stamp(),) * 2)
            except OSError as exc:  # only the order after a restart suffers
                log.debug("could not record the use of %s: %s", name, exc)
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
        self._hits += 1
        self._maybe_persist()
        return fd

    def contains(self, key: FileVersion) -> bool:
        """Whether a complete entry for `key` is indexed (no hit/miss counted, no LRU touch)."""
        return entry_name(key) in self._index

    def create_part(self, key: FileVersion) -> tuple[str, int]:
        """A new unique part path and its O_RDWR fd (mode 0600) for a download of `key`: in the
        cache's `parts/`, or, when the directory cannot take it, an unlinked spill file that
        `admit` declines (see `directory.CacheDir.create_part`)."""
        assert self._dir is not None
        return self._dir.create_part(f"{entry_name(key)}.{secrets.token_hex(8)}{PART_SUFFIX}")

    def admit(self, verified: Verified) -> bool:
        """Move a verified part file into the cache as the entry for its version.

        The bytes were proven to be the version by `xnatfs.fileversion.verify_part`; here only
        the part's size on disk is compared with what was verified (a part changed behind our
        back is dropped, with a warning). Returns False (part unlinked) then, when the file is
        larger than the whole cache, or when the cache directory refuses the rename; True once
        it is an entry. An fd the caller holds on the part stays valid either way.
        """
        version, part_path = verified.version, verified.part_path
        assert self._dir is not None
        if self._dir.spilled(part_path):
            self._dir.forget(part_path)
            return False  # read, never kept: the cache directory could not take it
        part = Path(part_path)
        if part.parent != self._parts or not part.name.endswith(PART_SUFFIX):
            raise ValueError(f"not a part file of this cache: {part_path}")
        try:
            size = os.stat(part).st_size
        except BaseException:
            self.discard(part_path)
            raise
        if size != verified.size:
            self.discard(part_path)
            self._rejected += 1
            self._maybe_persist()
            log.warning(
                "not caching %s: %d bytes on disk, %d were verified",
                version.uri,
                size,
                verified.size,
            )
            return False
        if size > self.max_bytes:
            self.discard(part_path)
            self._rejected += 1
            self._maybe_persist()
            log.info(
                "not caching %s: %d bytes exceed the cache limit of %d",
                version.uri,
                size,
                self.max_bytes,
            )
            return False
        name = entry_name(version)
        if name in self._index:
            # Same version downloaded twice: the new file replaces the old one in place.
            self._forget(name)
        self._evict_until(self.max_bytes - size)
        target = entry_path(self.root, name)
        try:
            os.utime(part, ns=(self._stamp(),) * 2)
            try:
                os.rename(part, target)
            except FileNotFoundError:
                if not part.exists():
                    raise
                make_private_dir(target.parent, self.root)
                os.rename(part, target)
        except (OSError, ConfigError) as exc:
            # The bytes are verified and the caller still holds them: failing to keep them is
            # no reason to fail the read.
            self.discard(part_path)
            log.warning("could not cache %s: %s", version.uri, exc)
            return False
        except BaseException:
            self.discard(part_path)
            raise
        self._index[name] = size
        self._maybe_persist()
        return True

    def discard(self, part_path: str) -> None:
        """Unlink a part after a failed download; no error if it is already gone."""
        if self._dir is not None:
            self._dir.forget(part_path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(part_path)

    def make_room(self, nbytes: int) -> int:
        """Evict least recently used entries until `nbytes` are freed (or the cache is empty).

        For the core to call after ENOSPC before its one retry. Returns the bytes freed.
        """
        freed = 0
        while freed < nbytes and self._index:
            _, size = self._index.popitem()
            freed += size
        self._maybe_persist()
        return freed

    def stats(self) -> CacheStats:
        return CacheStats(
            entries=len(self._index),
            bytes=int(self._index.currsize),
            limit=self.max_bytes,
            hits=self._hits,
            misses=self._misses,
            evictions=self._evictions,
            rejected=self._rejected,
        )

    def report(self) -> dict[str, object]:
        """The counters for the mount's stats xattr, under "cache"."""
        s = self.stats()
        return {
            "cache": {
                "entries": s.entries,
                "bytes": s.bytes,
                "limit": s.limit,
                "hits": s.hits,
                "misses": s.misses,
            }
        }

    def close(self) -> None:
        """Persist the counters for `xnatfs cache info` and release the lock. Idempotent."""
        directory, self._dir = self._dir, None
        if directory is None:
            return
        try:
            if hasattr(self, "_index"):
                self._persist_stats()
                # Lets the next start skip a stat of every entry (50,000 of them take seconds).
                save_index(self.root, self._index.in_lru_order())
        except OSError as exc:
            log.warning("could not save cache statistics in %s: %s", self.root, exc)
        finally:
            directory.close()

    def __enter__(self) -> DiskCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------

    def _miss(self) -> None:
        self._misses += 1
        self._maybe_persist()

    def _stamp(self) -> int:
        """A strictly increasing mtime, so restart order never depends on timestamp ties."""
        self._clock = max(time.time_ns(), self._clock + 1)
        return self._clock

    def _evict_until(self, budget: int) -> None:
        while self._index.currsize > budget:
            self._index.popitem()

    def _evicted(self, name: str, size: int) -> None:
        self._evictions += 1
        self._unlink_entry(name)
        log.debug("evicted %s (%d bytes)", name, size)

    def _forget(self, name: str) -> None:
        """Drop `name` from the index without counting an eviction or touching the file."""
        del self._index[name]

    def _unlink_entry(self, name: str) -> None:
        try:
            os.unlink(entry_path(self.root, name))
        except FileNotFoundError:
            pass
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                log.warning("could not remove cache entry %s: %s", name, exc)

    def _maybe_persist(self) -> None:
        if time.monotonic() - self._last_persist >= self._stats_interval:
            try:
                self._persist_stats()
                self._persist_failed = False
            except OSError as exc:
                level = logging.DEBUG if self._persist_failed else logging.WARNING
                log.log(level, "could not save cache statistics in %s: %s", self.root, exc)
                self._persist_failed = True

    def _persist_stats(self) -> None:
        self._last_persist = time.monotonic()
        s = self.stats()
        write_private_json(
            self.root / STATS_FILE,
            {
                "entries": s.entries,
                "bytes": s.bytes,
                "limit": s.limit,
                "hits": s.hits,
                "misses": s.misses,
                "evictions": s.evictions,
                "rejected": s.rejected,
                "pid": os.getpid(),
                "updated": time.time(),
            },
        )
