"""The filesystem core: lookup, attributes, directory snapshots, open and read.

It knows nothing of FUSE (the pyfuse3 adapter in `xnatfs.fuse` translates): it works with inode
numbers, `str` names and `Node` values, and raises `xnatfs.errors` exceptions.

Ownership: the inode table, the handle tables and the sizes learned from downloads belong to this
object and are touched only from trio tasks.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from xnatfs.data.downloads import Downloads
from xnatfs.data.reader import FileReader
from xnatfs.errors import NotFound, ReadOnly
from xnatfs.fileversion import FileVersion
from xnatfs.fs.handles import HandleTable
from xnatfs.fs.inodes import InodeTable
from xnatfs.namespace.levels import ROOT_DIR
from xnatfs.namespace.listings import Listings
from xnatfs.namespace.values import Children, Node

log = logging.getLogger(__name__)

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


@dataclass(frozen=True)
class Entry:
    """A node together with the inode number the kernel knows it by."""

    ino: int
    node: Node
    size: int


@dataclass
class OpenFile:
    node: Node
    reader: FileReader


# The counters of one owner (listings, downloads, prefetch, the disk cache), merged into stats().
Reporter = Callable[[], Mapping[str, object]]


class Filesystem:
    """The mount's core; `reporters` add their counters to `stats()`."""

    def __init__(
        self,
        listings: Listings,
        data: Downloads,
        root_mtime_ns: int,
        reporters: Sequence[Reporter] = (),
    ) -> None:
        self.listings = listings
        self.data = data
        self._reporters = (listings.stats, data.stats, *reporters)
        self.root = Node(name="", path=(), mtime_ns=root_mtime_ns, dir=ROOT_DIR)
        self.inodes: InodeTable[Node] = InodeTable(self.root, self.root.identity)
        self._dirs: HandleTable[tuple[Node, ...]] = HandleTable()
        self._files: HandleTable[OpenFile] = HandleTable()
        # Sizes of files whose listing had no Size, learned when a download completed.
        self._learned: dict[FileVersion, int] = {}

    # -- attributes --------------------------------------------------------------------------

    def node(self, ino: int) -> Node:
        node = self.inodes.get(ino)
        if node is None:
            raise NotFound(f"inode {ino} is not known (forgotten or never looked up)")
        return node

    def size_of(self, node: Node) -> int:
        if node.file is None:
            return 0
        if node.file.size is not None:
            return node.file.size
        return self._learned.get(node.file, 0)

    def entry(self, ino: int) -> Entry:
        node = self.node(ino)
        return Entry(ino, node, self.size_of(node))

    def remember(self, node: Node) -> Entry:
        """Take one kernel reference to `node` (lookup, or a readdir entry the kernel kept)."""
        ino = self.inodes.remember(node.identity, node)
        return Entry(ino, node, self.size_of(node))

    def forget(self, items: list[tuple[int, int]]) -> None:
        self.inodes.forget(items)

    # -- names -------------------------------------------------------------------------------

    async def lookup(self, parent_ino: int, name: str) -> Entry:
        parent = self.node(parent_ino)
        if parent.dir is None:
            raise NotFound(f"{name!r}: parent is a file")
        if name == ".":
            return self.remember(parent)
        if name == "..":
            return self.remember(self._parent_of(parent))
        child = await self.listings.lookup(parent, name)
        if child is None:
            raise NotFound(f"no entry {name!r} in /{'/'.join(parent.path)}")
        return self.remember(child)

    def _parent_of(self, node: Node) -> Node:
        if not node.path:
            return node
        # The kernel keeps a directory's parent referenced while the directory is, so the
        # parent is still in the table (directories' identity is their path).
        ino = self.inodes.peek((node.path[:-1],))
        parent = self.inodes.get(ino) if ino is not None else None
        if parent is None:
            raise NotFound(f"parent of /{'/'.join(node.path)} is not known")
        return parent

    # -- directories -------------------------------------------------------------------------

    async def opendir(self, ino: int) -> int:
        node = self.node(ino)
        if node.dir is None:
            raise NotFound("not a directory")
        children: Children = await self.listings.children(node)
        # An immutable snapshot per open: readdir offsets index into it, so entries are never
        # skipped or repeated while the listing changes underneath.
        return self._dirs.add(children.ordered)

    def readdir(self, fh: int, start: int) -> tuple[Node, ...]:
        """The snapshot's entries from offset `start` on (offset i+1 follows entry i)."""
        return self._dirs.get(fh)[start:]

    def releasedir(self, fh: int) -> None:
        self._dirs.pop(fh)

    # -- files -------------------------------------------------------------------------------

    def open(self, ino: int, flags: int) -> tuple[int, bool, bool]:
        """A handle for reading; downloads nothing. Returns (fh, size_known, verified).

        `verified`: the file is complete and verified in the disk cache, so pages the kernel
        kept from earlier reads may be reused; otherwise they must be dropped, because bytes
        served while a download was still running may belong to one that failed verification.
        """
        if flags & _WRITE_FLAGS:
            raise ReadOnly("the filesystem is read-only")
        node = self.node(ino)
        if node.file is None:
            raise NotFound("not a file")
        reader = self.data.open(node.file, node.listing)
        fh = self._files.add(OpenFile(node, reader))
        known = node.file.size is not None or node.file in self._learned
        return fh, known, self.data.is_verified(node.file)

    async def read(self, fh: int, offset: int, size: int) -> bytes:
        handle = self._files.get(fh)
        data = await handle.reader.read(offset, size)
        learned = handle.reader.learned_size
        if learned is not None and handle.node.file is not None and handle.node.file.size is None:
            self._learned[handle.node.file] = learned
        return data

    def release(self, fh: int) -> None:
        handle = self._files.pop(fh)
        if handle is not None:
            handle.reader.close()

    def stats(self) -> dict[str, object]:
        """Counters for troubleshooting and tests (the root's `user.xnatfs.stats` xattr)."""
        out: dict[str, object] = {
            "inodes": len(self.inodes),
            "open_files": len(self._files),
            "open_dirs": len(self._dirs),
        }
        for reporter in self._reporters:
            out.update(reporter())
        return out
