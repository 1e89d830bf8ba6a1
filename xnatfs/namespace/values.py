"""The virtual namespace: the values it is made of.

Every directory is described by a small frozen `Dir` value. `Dir.source()` names the one REST
listing behind it (None for fixed directories), `Dir.entries(parent, listing)` turns that listing
into child nodes, and `Dir.resolve(parent, name, listing)` answers names that are valid but not
listed (accession-ID aliases, comma selectors, hidden selector directories). Several directories
can share one source: the sub-folders of a resource and the per-owner groups of a selector
directory are views of a single files listing, so they cost no extra request, and what they
derive from it (groups, indexes) is computed once per fetch (`Listing.derived`). The directory
kinds live in `levels.py` (projects down to scans and assessors) and `files.py` (resources and
files); the name, size and date rules in `rules.py`. All of it is pure: no I/O, no trio, no FUSE.

Identity: every node has a stable 63-bit `key`. A directory's key is derived from its parent's key
and its name, so it names one path; a file's key is derived from its canonical URI alone, so the
same XNAT file reached through a scan ID, a type, `ALL` or a comma list is one key (one inode,
several links). Keys do not depend on the order things were seen, so they are the same on every
mount of the same server.

Requests built here always use IDs (project ID, accession IDs, scan IDs,
`xnat_abstractresource_id`), never labels: a resource labelled `1` is not resource ID 1.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from xnatfs.errors import ProtocolError
from xnatfs.fileversion import FileVersion
from xnatfs.namespace.rules import natural_key, parse_size
from xnatfs.xnat.paths import canonical_file_uri

log = logging.getLogger(__name__)

Row = Mapping[str, str]
Rows = Sequence[Row]
T = TypeVar("T")

NAME_MAX = 255  # bytes: what the kernel (and statfs's f_namemax) allows for one name
ROOT_KEY = 1
_KEY_MASK = (1 << 63) - 1


def _hash_key(*parts: bytes) -> int:
    h = hashlib.blake2b(digest_size=8)
    for part in parts:
        h.update(len(part).to_bytes(4, "little"))
        h.update(part)
    key = int.from_bytes(h.digest(), "little") & _KEY_MASK
    return key if key > ROOT_KEY else key + 2  # 0 is "no inode" to FUSE, 1 is the root


def _key_bytes(text: str) -> bytes:
    """`text` as the bytes its key is made of: its file-system bytes, or, for text that has none
    (a lone surrogate from a JSON escape), a form that cannot be confused with any of those."""
    try:
        return os.fsencode(text)
    except UnicodeEncodeError:
        return b"\0" + text.encode("utf-8", "surrogatepass")


def child_key(parent_key: int, name: str) -> int:
    """The key of the directory `name` inside the directory with key `parent_key`."""
    return _hash_key(b"d", parent_key.to_bytes(8, "little"), _key_bytes(name))


def file_key(uri: str) -> int:
    """The key of the XNAT file with canonical URI `uri`, whatever path reaches it."""
    return _hash_key(b"f", _key_bytes(uri))


@dataclass(frozen=True)
class FilesContext:
    """What a files listing of scans, reconstructions or assessors needs to be read right.

    `owners`: resource ID -> owner ID (what a comma-joined URI really means, and how a
    selector's rows are grouped); `labels`: owner ID -> group name (assessors are shown by
    label); `links`: owner ID -> how many listed paths lead to that owner's files (1 + a type
    directory + `ALL`, when selector directories are listed).
    """

    collection: str
    owners: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    links: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Source:
    """One REST listing request: an already-encoded path below the base URL, plus query."""

    path: str
    params: tuple[tuple[str, str], ...] = ()
    # A selector that matches nothing is answered with 404 when the path has no project
    # (REST reference §3.6); such a listing is empty, not an error.
    missing_ok: bool = False
    # Not part of the request: how its rows are read (files listings of owners only).
    context: FilesContext | None = field(default=None, compare=False)


# The only listing columns the namespace and the series prefetch read. The client keeps no
# others (`XnatClient(listing_columns=...)`), which halves what a big files listing holds;
# tests/namespace/test_listings.py checks that every column the code reads is here.
LISTING_COLUMNS = frozenset(
    {
        "ID",
        "label",
        "insert_date",
        "date",
        "type",
        "xsiType",
        "cat_id",
        "cat_ID",
        "xnat_abstractresource_id",
        "URI",
        "Size",
        "digest",
        "collection",
    }
)


class Listing:
    """The rows of one fetched listing, and what directories derive from them, computed once
    per fetch (`derived`) and dropped with the listing."""

    __slots__ = ("_memo", "rows", "source")

    def __init__(self, source: Source | None, rows: Rows) -> None:
        self.source = source
        self.rows = rows
        self._memo: dict[Any, Any] = {}

    def known(self, key: object) -> Any:
        """What `derived` remembered under `key`, or None (nothing is computed)."""
        return self._memo.get(key)

    def derived(self, key: object, compute: Callable[[], T]) -> T:
        """`compute()`'s result, remembered under `key` for as long as this listing lives."""
        try:
            return self._memo[key]  # type: ignore[no-any-return]
        except KeyError:
            value = self._memo[key] = compute()
            return value

    def copy(self) -> Listing:
        """The same rows with a copy of what was derived so far: work on it touches nothing
        this listing holds (entries built in a worker thread)."""
        twin = Listing(self.source, self.rows)
        twin._memo = dict(self._memo)
        return twin

    def adopt(self, twin: Listing) -> None:
        """Keep what was derived on `twin` (a `copy`) and not here yet."""
        for key, value in twin._memo.items():
            self._memo.setdefault(key, value)


EMPTY = Listing(None, ())


def file_uri(row: Row, source: Source | None) -> str:
    """The row's URI, naming the file's one owner where XNAT wrote a comma list of them."""
    uri = row["URI"]
    context = source.context if source is not None else None
    if context is not None and "," in uri:
        owner = context.owners.get(row.get("cat_ID", ""))
        if owner is not None:
            uri = canonical_file_uri(uri, context.collection, owner)
    return uri


def file_version(row: Row, source: Source | None) -> FileVersion:
    """The file version a files-listing row describes (its canonical URI, Size and digest)."""
    return FileVersion(
        uri=file_uri(row, source),
        size=parse_size(row.get("Size", "")),
        digest=row.get("digest", ""),
    )


@dataclass(frozen=True, slots=True, eq=False)
class Node:
    """One entry of the tree: a directory (`dir`) or a file (`file`).

    `key` is its stable identity (see the module docstring); `links` is, for a file, how many
    listed paths lead to it (its `st_nlink`); `listing` the files listing a file came from (its
    siblings can be fetched in bulk). `mtime_ns` 0 means "derived from its own listing"
    (projects, whose rows carry no date).
    """

    name: str
    parent: Node | None
    key: int
    mtime_ns: int
    dir: Dir | None = None
    file: FileVersion | None = None
    listing: Source | None = None
    links: int = 1

    @property
    def is_dir(self) -> bool:
        return self.dir is not None

    @property
    def path(self) -> tuple[str, ...]:
        """Names from the root (the root's own name is not part of it)."""
        names = []
        node: Node | None = self
        while node is not None and node.parent is not None:
            names.append(node.name)
            node = node.parent
        return tuple(reversed(names))

    def display(self) -> str:
        return "/" + "/".join(self.path)

    def child(
        self,
        name: str,
        *,
        dir: Dir | None = None,
        file: FileVersion | None = None,
        listing: Source | None = None,
        mtime_ns: int | None = None,
        links: int = 1,
    ) -> Node:
        key = file_key(file.uri) if file is not None else child_key(self.key, name)
        return Node(
            name=name,
            parent=self,
            key=key,
            mtime_ns=self.mtime_ns if mtime_ns is None else mtime_ns,
            dir=dir,
            file=file,
            listing=listing,
            links=links,
        )


def root_node(root: Dir, mtime_ns: int = 0) -> Node:
    """The mount's root."""
    return Node(name="", parent=None, key=ROOT_KEY, mtime_ns=mtime_ns, dir=root)


@dataclass(frozen=True, slots=True)
class XnatObject:
    """The XNAT object a directory stands for, as its extended attributes show it: `uri` as
    XNAT writes URIs (not percent-encoded), `id` the accession, scan or resource ID and `type`
    the scan type or xsi:type ("" where the object has none, or the listings do not say)."""

    uri: str
    id: str = ""
    type: str = ""


@dataclass(frozen=True)
class Batch:
    """One request that answers many directories' listings at once: `source` is asked, and
    `split(rows)` says which rows each of those directories' own sources would have listed
    (every source the batch covers is in it, empty ones too)."""

    source: Source
    split: Callable[[Rows], dict[Source, Rows]]


@dataclass(frozen=True)
class Dir:
    """How one directory is listed. Subclasses are frozen, small, hashable values."""

    def source(self) -> Source | None:
        return None

    def describe(self) -> XnatObject | None:
        """The XNAT object this directory stands for, from what it holds (never a request);
        None for directories that stand for none (the root)."""
        return None

    def entries(self, parent: Node, listing: Listing) -> list[Node]:
        raise NotImplementedError

    def resolve(self, parent: Node, name: str, listing: Listing) -> Node | None:
        """A child that exists although the listing does not show it (alias, selector)."""
        return None

    def time(self, listing: Listing) -> int | None:
        """For directories whose rows carry no date of their own (projects): the time to show,
        derived from their listing; None when it has none."""
        return None

    def batches(self, listing: Listing) -> list[Batch]:
        """Requests that list this directory's sub-directories, and theirs, in one go each
        (for walks), in the order to ask them; `listing` is this directory's own."""
        return []


def sort_nodes(nodes: Iterable[Node]) -> list[Node]:
    return sorted(nodes, key=lambda n: natural_key(n.name))


def need(row: Row, key: str, source: Source | None) -> str:
    """`row[key]`, or ProtocolError naming the listing when it is missing (or empty, for keys
    that identify the row)."""
    value = row.get(key)
    if not isinstance(value, str) or (
        key in ("ID", "URI", "xnat_abstractresource_id") and not value
    ):
        where = source.path if source else "a listing"
        raise ProtocolError(f"malformed listing from {where}: a row has no {key!r}")
    return value


def unique(nodes: Iterable[Node]) -> list[Node]:
    """The nodes the kernel can be given, each name once, each under the one name a lookup of
    its bytes finds.

    Names that cannot be a file name (not encodable, longer than 255 bytes) are left out, and
    of several names that encode to the same bytes only the first is kept (fixed names and IDs
    are added first), each with one log line: one odd row never hides its neighbours. A kept
    name is the text the kernel's bytes decode to (`os.fsdecode`): `\udcc3\udca9` (escaped
    bytes) and `é` are the same two bytes, and a lookup of them asks for `é`.
    """
    seen: set[bytes] = set()
    out: list[Node] = []
    for node in nodes:
        try:
            raw = os.fsencode(node.name)
        except UnicodeEncodeError:
            log.warning("leaving out an entry whose name cannot be encoded: %r", node.name)
            continue
        if len(raw) > NAME_MAX:
            log.warning("leaving out an entry whose name is over %d bytes: %r", NAME_MAX, node.name)
            continue
        if raw in seen:
            log.info("hiding duplicate name %r in %s", node.name, parent_display(node))
            continue
        seen.add(raw)
        name = os.fsdecode(raw)
        if name != node.name:
            # The key stays: a directory's key is made of the same bytes, a file's of its URI.
            node = dataclasses.replace(node, name=name)
        out.append(node)
    return out


def parent_display(node: Node) -> str:
    return node.parent.display() if node.parent is not None else "/"


@dataclass(frozen=True)
class Children:
    """A directory's entries, sorted for readdir, and by name for lookup."""

    ordered: tuple[Node, ...]
    by_name: Mapping[str, Node] = field(hash=False, compare=False)

    @classmethod
    def of(cls, nodes: Iterable[Node]) -> Children:
        ordered = tuple(sort_nodes(nodes))
        return cls(ordered, {n.name: n for n in ordered})

    @property
    def subdirectories(self) -> int:
        return sum(1 for n in self.ordered if n.dir is not None)
