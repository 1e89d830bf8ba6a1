"""Inode numbers and kernel lookup counts.

An inode number is the node's stable key (`xnatfs.namespace.values`): a directory's comes from
its path, a file's from its canonical URI, so the same object has the same number for the life of
the mount whatever the kernel forgets, and on every later mount of the same server, and one XNAT
file reached through several paths is one inode. Two different objects whose keys collide (a 63-bit
hash; astronomically rare) are told apart by their identity and the later one is given the next
free number in a fixed probe sequence.

An entry lives while the kernel holds a reference (its lookup count is above zero); `forget`
drops it at zero. The root is pinned. Memory is what the kernel holds: one node and one count
per inode, and the tables shrink again after the kernel has forgotten most of them. No I/O and
no pyfuse3 here: inode numbers are ints.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from xnatfs.namespace.values import ROOT_KEY, Node

ROOT_INODE = ROOT_KEY
_MASK = (1 << 63) - 1
_SHRINK_BELOW = 4096

log = logging.getLogger(__name__)


def _identity(node: Node) -> tuple[object, ...]:
    if node.file is not None:
        return ("f", node.file.uri)
    parent = node.parent.key if node.parent is not None else 0
    return ("d", parent, node.name)


def _same(a: Node, b: Node) -> bool:
    """Whether two nodes with one key stand for one object (a file by URI, a directory by its
    parent and name)."""
    if a.file is not None or b.file is not None:
        return a.file is not None and b.file is not None and a.file.uri == b.file.uri
    pa = a.parent.key if a.parent is not None else 0
    pb = b.parent.key if b.parent is not None else 0
    return pa == pb and a.name == b.name


def _probe(ino: int) -> int:
    nxt = (ino * 6364136223846793005 + 1442695040888963407) & _MASK
    return nxt if nxt > ROOT_INODE else nxt + 2


class InodeTable:
    """Inode number -> the node it stands for, and the kernel's lookup count of each."""

    def __init__(self, root: Node) -> None:
        self._nodes: dict[int, Node] = {ROOT_INODE: root}
        self._counts: dict[int, int] = {ROOT_INODE: 1}
        self._peak = 1
        # Objects whose key collided with another's, by identity (almost always empty).
        self._probed: dict[tuple[object, ...], int] = {}
        self.collisions = 0

    def __len__(self) -> int:
        return len(self._nodes)

    def get(self, ino: int) -> Node | None:
        return self._nodes.get(ino)

    def replace(self, ino: int, node: Node) -> None:
        """Show newer attributes for a live inode (the same object, re-listed)."""
        if ino in self._nodes:
            self._nodes[ino] = node

    def ino_of(self, node: Node) -> int:
        """The number `node` has (or would get), without taking a reference."""
        if node.key == ROOT_KEY:
            return ROOT_INODE
        if self._probed:
            probed = self._probed.get(_identity(node))
            if probed is not None:
                return probed
        ino = node.key
        while True:
            existing = self._nodes.get(ino)
            if existing is None or existing is node:
                return ino
            if existing.key == node.key and _same(existing, node):
                return ino
            ino = _probe(ino)

    def remember(self, node: Node) -> int:
        """Take one kernel reference to `node` and return its inode number.

        The node stored is refreshed, so a re-listed entry shows its newest attributes.
        """
        ino = self.ino_of(node)
        if ino == ROOT_INODE:
            return ino
        if ino != node.key and ino not in self._nodes:
            self.collisions += 1
            self._probed[_identity(node)] = ino
            log.warning("inode key collision for %s; it is inode %d", node.display(), ino)
        self._nodes[ino] = node
        self._counts[ino] = self._counts.get(ino, 0) + 1
        if len(self._nodes) > self._peak:
            self._peak = len(self._nodes)
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
            node = self._nodes.pop(ino)
            if self._probed:
                self._probed.pop(_identity(node), None)
        if self._peak > _SHRINK_BELOW and len(self._nodes) < self._peak // 8:
            # Python dicts keep their size after deletions; copying gives the memory back.
            self._nodes = dict(self._nodes)
            self._counts = dict(self._counts)
            self._peak = len(self._nodes)

    def count(self, ino: int) -> int:
        return self._counts.get(ino, 0)

    def counts(self) -> dict[int, int]:
        """A copy of every live lookup count (for tests and debugging)."""
        return dict(self._counts)
