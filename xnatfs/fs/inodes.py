"""Inode numbers and kernel lookup counts.

Numbers come from a counter that only grows, so a number is never reused within a mount. An entry
lives while the kernel holds a reference (its lookup count is above zero); `forget` drops it at
zero and a later lookup of the same path gets a new number, which is legal because the kernel has
forgotten the old one. The root is pinned. No I/O and no pyfuse3 here: inode numbers are ints.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

ROOT_INODE = 1

log = logging.getLogger(__name__)

N = TypeVar("N")


class InodeTable(Generic[N]):
    """Maps identity keys to inode numbers and inode numbers to the node they stand for."""

    def __init__(self, root: N, root_key: Hashable) -> None:
        self._next = ROOT_INODE + 1
        self._by_key: dict[Hashable, int] = {root_key: ROOT_INODE}
        self._nodes: dict[int, N] = {ROOT_INODE: root}
        self._keys: dict[int, Hashable] = {ROOT_INODE: root_key}
        self._counts: dict[int, int] = {ROOT_INODE: 1}

    def __len__(self) -> int:
        return len(self._nodes)

    def get(self, ino: int) -> N | None:
        return self._nodes.get(ino)

    def peek(self, key: Hashable) -> int | None:
        """The inode currently standing for `key`, without taking a reference."""
        return self._by_key.get(key)

    def remember(self, key: Hashable, node: N) -> int:
        """Take one kernel reference to `key` and return its inode (allocated if new).

        The node stored is refreshed, so a re-listed entry shows its newest attributes.
        """
        ino = self._by_key.get(key)
        if ino is None:
            ino = self._next
            self._next += 1
            self._by_key[key] = ino
            self._keys[ino] = key
            self._counts[ino] = 0
        self._nodes[ino] = node
        self._counts[ino] += 1
        return ino

    def forget(self, items: Iterable[tuple[int, int]]) -> None:
        """Drop `n` references for each `(ino, n)`; never raises (pyfuse3 forbids it)."""
        for ino, n in items:
            count = self._counts.get(ino)
            if count is None:
                log.debug("forget of unknown inode %d", ino)
                continue
            if ino == ROOT_INODE:
                continue  # pinned for the life of the mount
            count -= n
            if count > 0:
                self._counts[ino] = count
                continue
            if count < 0:
                log.debug("inode %d forgotten %d times more than looked up", ino, -count)
            del self._counts[ino]
            del self._nodes[ino]
            key = self._keys.pop(ino)
            if self._by_key.get(key) == ino:
                del self._by_key[key]

    def count(self, ino: int) -> int:
        return self._counts.get(ino, 0)

    def counts(self) -> dict[int, int]:
        """A copy of every live lookup count (for tests and debugging)."""
        return dict(self._counts)
