"""The cache's index: entry name -> size in LRU order, and the copy of it a clean unmount saves.

At a clean unmount the LRU order and sizes are written to `root/index`; the next start reads that
one file instead of stat-ing every entry, and removes it at once, so a mount that ends without
closing (a crash, a SIGKILL) leaves none and the next start scans the directory instead.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from cachetools import LRUCache

from xnatfs.cache.layout import (
    INDEX_FILE,
    INDEX_HEADER,
    iter_entries,
    read_private,
    write_private_text,
)

log = logging.getLogger(__name__)

_SAVED_INDEX = re.compile(r"(?:[0-9a-f]{64} [0-9]+\n)*")


class LruIndex(LRUCache[str, int]):
    """entry name -> size in bytes, least recently used first.

    `popitem` (which cachetools also calls when an insert needs room) reports every eviction to
    `on_evict`, which unlinks the file: the index and the directory never disagree for long.
    """

    def __init__(self, maxsize: int, on_evict: Callable[[str, int], None]) -> None:
        # Our own copy of the recency order (cachetools keeps its own privately), so the
        # order can be saved at unmount.
        self._recency: OrderedDict[str, None] = OrderedDict()
        super().__init__(maxsize=maxsize, getsizeof=_identity)
        self._on_evict = on_evict

    def __setitem__(self, name: str, size: int) -> None:
        super().__setitem__(name, size)
        self._recency[name] = None
        self._recency.move_to_end(name)

    def __delitem__(self, name: str) -> None:
        super().__delitem__(name)
        self._recency.pop(name, None)

    def popitem(self) -> tuple[str, int]:
        name, size = super().popitem()
        self._on_evict(name, size)
        return name, size

    def touch(self, name: str) -> None:
        """Mark `name` most recently used (a cachetools lookup does exactly that)."""
        self[name]
        self._recency.move_to_end(name)

    def load(self, items: list[tuple[str, int]]) -> None:
        """Insert many entries, least recently used first (start-up: no per-item reordering)."""
        setitem = LRUCache.__setitem__
        recency = self._recency
        for name, size in items:
            setitem(self, name, size)  # may evict the oldest through popitem
            recency[name] = None

    def in_lru_order(self) -> list[tuple[str, int]]:
        """(name, size), least recently used first."""
        return [(name, self[name]) for name in list(self._recency) if name in self]


def _identity(size: int) -> int:
    return size


def read_saved_index(root: Path) -> list[tuple[str, int]] | None:
    """The (name, size) list of the last clean unmount, least recent first, or None.

    The file is removed as it is read. Entries listed here but gone from disk cost nothing:
    opening one is simply a miss.
    """
    path = root / INDEX_FILE
    try:
        text = read_private(path).decode("ascii")
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    except OSError as exc:
        log.warning("could not read %s: %s", path, exc)
        return None
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
    header, _, body = text.partition("\n")
    # One pass of the regex engine checks all 50,000 lines at C speed.
    if header != INDEX_HEADER or _SAVED_INDEX.fullmatch(body) is None:
        log.warning("ignoring a damaged cache index in %s", root)
        return None
    fields = body.split()
    return [(fields[i], int(fields[i + 1])) for i in range(0, len(fields), 2)]


def save_index(root: Path, items: list[tuple[str, int]]) -> None:
    """Write (name, size) pairs, least recently used first, for the next start."""
    lines = [INDEX_HEADER, *(f"{name} {size}" for name, size in items)]
    write_private_text(root / INDEX_FILE, "\n".join(lines) + "\n")


def scan_entries(root: Path) -> list[tuple[int, str, int]]:
    """Every entry on disk as (mtime, name, size), oldest mtime (least recent) first."""
    found: list[tuple[int, str, int]] = []
    for entry in iter_entries(root):
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        found.append((st.st_mtime_ns, entry.name, st.st_size))
    found.sort()
    return found
