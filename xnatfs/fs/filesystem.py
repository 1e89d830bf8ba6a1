"""The filesystem core: lookup, attributes, directory snapshots, open and read.

It knows nothing of FUSE (the pyfuse3 adapter in `xnatfs.fuse` translates): it works with inode
numbers, `str` names and `Node` values, and raises `xnatfs.errors` exceptions.

Ownership: the inode table, the handle tables and the sizes learned from downloads belong to this
object and are touched only from trio tasks.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from xnatfs.data.downloads import Downloads
from xnatfs.data.reader import FileReader
from xnatfs.errors import NotCached, NotFound, ReadOnly, XnatfsError
from xnatfs.fileversion import FileVersion
from xnatfs.fs.handles import HandleTable
from xnatfs.fs.inodes import InodeTable
from xnatfs.namespace.levels import ROOT_DIR
from xnatfs.namespace.listings import Listings
from xnatfs.namespace.values import Children, Dir, Node, root_node
from xnatfs.namespace.walk import WalkAhead

log = logging.getLogger(__name__)

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


@dataclass(frozen=True, slots=True)
class Entry:
    """A node with what the kernel is told about it: its inode number, size (0 while unknown),
    link count and time; `settled` is False while the size or time is not known yet, so the
    kernel asks again instead of keeping them."""

    ino: int
    node: Node
    size: int
    nlink: int
    mtime_ns: int
    settled: bool = True


@dataclass
class OpenFile:
    node: Node
    reader: FileReader


@dataclass(frozen=True, slots=True)
class DirEntry:
    """One readdir entry: `counted` entries take a kernel reference (`.` and `..` do not)."""

    name: str
    node: Node
    counted: bool = True


# The extended attributes a file or directory may have (`Filesystem.xattrs`): documented in
# docs/semantics.md, and stable.
XATTR_NAMES = (
    "user.xnat.uri",
    "user.xnat.id",
    "user.xnat.type",
    "user.xnat.digest",
    "user.xnat.cached",
)

# The counters of one owner (listings, downloads, prefetch, the disk cache), merged into stats().
Reporter = Callable[[], Mapping[str, object]]


class Filesystem:
    """The mount's core over `root` (a `RootDir`); `reporters` add their counters to `stats()`."""

    def __init__(
        self,
        listings: Listings,
        data: Downloads,
        root: Dir = ROOT_DIR,
        reporters: Sequence[Reporter] = (),
        first_seen_ns: int | None = None,
        walker: WalkAhead | None = None,
    ) -> None:
        self.listings = listings
        self.data = data
        self._walker = walker
        self._reporters = (listings.stats, data.stats, *reporters)
        self.root = root_node(root)
        self.inodes = InodeTable(self.root)
        self._dirs: HandleTable[tuple[tuple[DirEntry, ...], tuple[Node, ...]]] = HandleTable()
        self._files: HandleTable[OpenFile] = HandleTable()
        # Times of directories whose rows carry none (projects, the root), once derived: they
        # stay what they were if the listing later cannot be had.
        self._times: dict[int, int] = {}
        # The version whose pages the kernel may hold for an inode (opened with keep_cache).
        self._paged: dict[int, FileVersion] = {}
        # When this archive was first mounted: the root's time when nothing else has a date.
        self._first_seen = time.time_ns() if first_seen_ns is None else first_seen_ns

    # -- attributes --------------------------------------------------------------------------

    def node(self, ino: int) -> Node:
        node = self.inodes.get(ino)
        if node is None:
            raise NotFound(f"inode {ino} is not known (forgotten or never looked up)")
        return node

    def describe(self, ino: int, node: Node) -> Entry:
        """What is known of `node` without a request."""
        if node.file is not None:
            size = self.data.known_size(node.file)
            return Entry(ino, node, size or 0, node.links, node.mtime_ns, size is not None)
        children = self.listings.peek(node)
        # Unknown until listed, as sshfs says: 1 makes walkers that trust link counts look.
        nlink = 1 if children is None else 2 + children.subdirectories
        mtime = node.mtime_ns or self._times.get(node.key, 0)
        return Entry(ino, node, 0, nlink, mtime, mtime != 0)

    async def entry(self, ino: int) -> Entry:
        """The attributes of inode `ino`, learning with one request what no listing says (a
        file's size when its listing has none, a project's time)."""
        node = self.node(ino)
        if node.file is not None and self.data.known_size(node.file) is None:
            await self.data.size(node.file)
        elif node.dir is not None and not node.mtime_ns and node.key not in self._times:
            await self._derive_time(node)
        return self.describe(ino, node)

    async def _derive_time(self, node: Node, *, root_fallback: bool = True) -> None:
        """Find the time of a directory whose rows carry none (a project, the root)."""
        try:
            try:
                found = await self.listings.time(node)
            except (NotFound, NotCached):
                found = None  # a server without the listing, or offline: the fallbacks below
            if found is None and node.parent is None:
                # The root of a `--project` mount: the newest of its projects.
                found = await self._newest_child_time(node)
        except XnatfsError as exc:
            # Not remembered: asked again next time (the kernel is told it is not settled).
            log.info("no time for %s yet: %s", node.display(), exc)
            return
        if found is None and node.parent is not None and root_fallback:
            # A project without subjects: the root's time, the newest of all.
            if self.root.key not in self._times:
                await self._derive_time(self.root)
            found = self._times.get(self.root.key)
        if found is None and node.parent is None:
            # An archive without a single dated subject: when this mount first listed it.
            found = self._first_seen
        if found:
            self._times[node.key] = found

    async def _newest_child_time(self, node: Node) -> int | None:
        times = []
        for child in (await self.listings.children(node)).ordered:
            if child.dir is not None and not child.mtime_ns and child.key not in self._times:
                await self._derive_time(child, root_fallback=False)
            times.append(child.mtime_ns or self._times.get(child.key, 0))
        return max(times, default=0) or None

    def remember(self, node: Node) -> Entry:
        """Take one kernel reference to `node` (lookup, or a readdir entry the kernel kept)."""
        return self.describe(self.inodes.remember(node), node)

    def forget(self, items: list[tuple[int, int]]) -> None:
        self.inodes.forget(items)
        if self._paged:
            for ino, _ in items:
                if self.inodes.get(ino) is None:
                    self._paged.pop(ino, None)

    # -- names -------------------------------------------------------------------------------

    async def lookup(self, parent_ino: int, name: str) -> Entry:
        parent = self.node(parent_ino)
        if parent.dir is None:
            raise NotFound(f"{name!r}: parent is a file")
        if name == ".":
            return self.remember(parent)
        if name == "..":
            return self.remember(parent.parent or parent)
        child = await self.listings.lookup(parent, name)
        if child is None:
            raise NotFound(f"no entry {name!r} in {parent.display()}")
        if child.file is not None and self.data.known_size(child.file) is None:
            await self.data.size(child.file)  # tools copy st_size bytes: never report 0
        elif child.dir is not None and not child.mtime_ns and child.key not in self._times:
            await self._derive_time(child)  # from the listing that is opened next anyway
        return self.remember(child)

    # -- directories -------------------------------------------------------------------------

    async def opendir(self, ino: int) -> int:
        node = self.node(ino)
        if node.dir is None:
            raise NotFound("not a directory")
        children: Children = await self.listings.children(node)
        if self._walker is not None:
            self._walker.seen(node)
        # An immutable snapshot per open: readdir offsets index into it, so entries are never
        # skipped or repeated while the listing changes underneath. The children's tuple is
        # shared, not copied: a directory of 200,000 entries opens in no time.
        dots = (
            DirEntry(".", node, counted=False),
            DirEntry("..", node.parent or node, counted=False),
        )
        return self._dirs.add((dots, children.ordered))

    def readdir(self, fh: int, start: int) -> Iterator[DirEntry]:
        """The snapshot's entries from offset `start` on (offset i+1 follows entry i), made as
        they are taken (the kernel takes a buffer's worth at a time)."""
        dots, ordered = self._dirs.get(fh)
        yield from dots[start:]
        for child in itertools.islice(ordered, max(0, start - len(dots)), None):
            yield DirEntry(child.name, child)

    def entry_of(self, item: DirEntry) -> Entry:
        """Attributes of a readdir entry: a counted one takes a kernel reference."""
        if item.counted:
            return self.remember(item.node)
        return self.describe(self.inodes.ino_of(item.node), item.node)

    def releasedir(self, fh: int) -> None:
        self._dirs.pop(fh)

    # -- files -------------------------------------------------------------------------------

    def open(self, ino: int, flags: int) -> tuple[int, bool, bool]:
        """A handle for reading; downloads nothing. Returns (fh, size_known, keep_pages).

        `keep_pages`: the kernel may reuse pages it kept from earlier reads: the file is
        complete and verified in the disk cache, and it is the version those pages came from.
        Otherwise they must be dropped: bytes served while a download was still running may
        belong to one that failed verification, and a file changed on the server keeps its
        inode number.
        """
        if flags & _WRITE_FLAGS:
            raise ReadOnly("the filesystem is read-only")
        node = self.node(ino)
        if node.file is None:
            raise NotFound("not a file")
        reader = self.data.open(node.file, node.listing)
        fh = self._files.add(OpenFile(node, reader))
        known = self.data.known_size(node.file) is not None
        verified = self.data.is_verified(node.file)
        keep = known and verified and self._paged.get(ino) in (None, node.file)
        if known and verified:
            self._paged[ino] = node.file
        else:
            self._paged.pop(ino, None)
        return fh, known, keep

    async def read(self, fh: int, offset: int, size: int) -> bytes:
        return await self._files.get(fh).reader.read(offset, size)

    def release(self, fh: int) -> None:
        handle = self._files.pop(fh)
        if handle is not None:
            handle.reader.close()

    # -- extended attributes -----------------------------------------------------------------

    def xattrs(self, ino: int) -> dict[str, str]:
        """The `user.xnat.*` attributes of inode `ino` (see `XATTR_NAMES`), from memory only:
        only those with a value. Raises NotFound for an unknown inode."""
        node = self.node(ino)
        out: dict[str, str] = {}
        if node.file is not None:
            out["user.xnat.uri"] = node.file.uri
            if node.file.digest:
                out["user.xnat.digest"] = node.file.digest
            out["user.xnat.cached"] = self.data.cached_state(node.file)
            return out
        described = node.dir.describe() if node.dir is not None else None
        if described is not None:
            out["user.xnat.uri"] = described.uri
            if described.id:
                out["user.xnat.id"] = described.id
            if described.type:
                out["user.xnat.type"] = described.type
        return out

    def stats(self) -> dict[str, object]:
        """Counters for troubleshooting and tests (the root's `user.xnatfs.stats` xattr)."""
        out: dict[str, object] = {
            "started": self._first_seen / 1e9,
            "uptime": round(time.time() - self._first_seen / 1e9, 3),
            "inodes": len(self.inodes),
            "open_files": len(self._files),
            "open_dirs": len(self._dirs),
        }
        for reporter in self._reporters:
            out.update(reporter())
        return out
