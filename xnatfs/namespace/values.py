"""The virtual namespace: the values it is made of, and the rules for names, sizes and dates.

Every directory is described by a small frozen `Dir` value. `Dir.source()` names the one REST
listing behind it (None for fixed directories), `Dir.entries(rows)` turns that listing into child
nodes, and `Dir.resolve(name, rows)` answers names that are valid but not listed (accession-ID
aliases, comma selectors). Several directories can share one source: the sub-folders of a resource
and the per-scan groups of a selector directory are views of a single files listing, so they cost
no extra request. The directory kinds live in `hierarchy.py` (projects down to scans and
assessors) and `filedirs.py` (resources and files). All of it is pure: no I/O, no trio, no FUSE.

Requests built here always use IDs (project ID, accession IDs, scan IDs,
`xnat_abstractresource_id`), never labels: a resource labelled `1` is not resource ID 1.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from xnatfs.errors import ProtocolError
from xnatfs.fileversion import FileVersion
from xnatfs.namespace.rules import natural_key, parse_size
from xnatfs.xnat.paths import canonical_file_uri

log = logging.getLogger(__name__)

Row = Mapping[str, str]
Rows = Sequence[Row]


@dataclass(frozen=True)
class Source:
    """One REST listing request: an already-encoded path below the base URL, plus query."""

    path: str
    params: tuple[tuple[str, str], ...] = ()
    # A selector that matches nothing is answered with 404 when the path has no project
    # (REST reference §3.6); such a listing is empty, not an error.
    missing_ok: bool = False
    # For files listings of scans, reconstructions or assessors: the collection, and which
    # owner each listed resource ID belongs to (what a comma-joined URI really means).
    collection: str = field(default="", compare=False)
    owners: tuple[tuple[str, str], ...] = field(default=(), compare=False)


def file_uri(row: Row, listing: Source | None) -> str:
    """The row's URI, naming the file's one owner where XNAT wrote a comma list of them."""
    uri = row["URI"]
    if listing is not None and listing.owners and "," in uri:
        owner = dict(listing.owners).get(row.get("cat_ID", ""))
        if owner is not None:
            uri = canonical_file_uri(uri, listing.collection, owner)
    return uri


def file_version(row: Row, listing: Source | None) -> FileVersion:
    """The file version a files-listing row describes (its canonical URI, Size and digest)."""
    return FileVersion(
        uri=file_uri(row, listing),
        size=parse_size(row.get("Size", "")),
        digest=row.get("digest", ""),
    )


@dataclass(frozen=True)
class Node:
    """One entry of the tree. `path` (names from the root) identifies it within the mount."""

    name: str
    path: tuple[str, ...]
    mtime_ns: int
    dir: Dir | None = None
    file: FileVersion | None = None
    # The files listing a file came from: its siblings can be fetched in bulk.
    listing: Source | None = field(default=None, compare=False)

    @property
    def is_dir(self) -> bool:
        return self.dir is not None

    @property
    def identity(self) -> tuple[object, ...]:
        """The inode identity: a file's version is part of it, so changed bytes get a new inode
        and the kernel's page cache (`keep_cache`) can never show old bytes for it."""
        if self.file is not None:
            return (self.path, self.file)
        return (self.path,)

    def child(
        self,
        name: str,
        *,
        dir: Dir | None = None,
        file: FileVersion | None = None,
        listing: Source | None = None,
        mtime_ns: int | None = None,
    ) -> Node:
        return Node(
            name=name,
            path=(*self.path, name),
            mtime_ns=self.mtime_ns if mtime_ns is None else mtime_ns,
            dir=dir,
            file=file,
            listing=listing,
        )


@dataclass(frozen=True)
class Dir:
    """How one directory is listed. Subclasses are frozen, hashable values."""

    def source(self) -> Source | None:
        return None

    def entries(self, parent: Node, rows: Rows) -> list[Node]:
        raise NotImplementedError

    def resolve(self, parent: Node, name: str, rows: Rows) -> Node | None:
        """A child that exists although the listing does not show it (alias, selector)."""
        return None


def sort_nodes(nodes: Iterable[Node]) -> list[Node]:
    return sorted(nodes, key=lambda n: natural_key(n.name))


def need(row: Row, key: str, source: Source | None) -> str:
    value = row.get(key)
    if not isinstance(value, str) or (
        key in ("ID", "URI", "xnat_abstractresource_id") and not value
    ):
        where = source.path if source else "a listing"
        raise ProtocolError(f"malformed listing from {where}: a row has no {key!r}")
    return value


def unique(nodes: Iterable[Node]) -> list[Node]:
    """Drop later entries whose name is taken (fixed names and IDs were added first)."""
    seen: set[str] = set()
    out: list[Node] = []
    for node in nodes:
        if node.name in seen:
            log.debug("hiding duplicate name %r in %s", node.name, "/".join(node.path[:-1]))
            continue
        seen.add(node.name)
        out.append(node)
    return out


@dataclass(frozen=True)
class Children:
    """A directory's entries, sorted for readdir, and by name for lookup."""

    ordered: tuple[Node, ...]
    by_name: Mapping[str, Node] = field(hash=False, compare=False)

    @classmethod
    def of(cls, nodes: Iterable[Node]) -> Children:
        ordered = tuple(sort_nodes(nodes))
        return cls(ordered, {n.name: n for n in ordered})
