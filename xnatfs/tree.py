"""The virtual namespace: which directories exist, which REST listing lies behind each one, and
how listing rows become named entries. Pure functions over rows: no I/O, no trio, no FUSE.

Every directory is described by a small frozen `Dir` value. `Dir.source()` names the one REST
listing behind it (None for fixed directories), `Dir.entries(rows)` turns that listing into child
nodes, and `Dir.resolve(name, rows)` answers names that are valid but not listed (accession-ID
aliases, comma selectors). Several directories can share one source: the sub-folders of a resource
and the per-scan groups of a selector directory are views of a single files listing, so they cost
no extra request.

Requests built here always use IDs (project ID, accession IDs, scan IDs,
`xnat_abstractresource_id`), never labels: a resource labelled `1` is not resource ID 1.
"""

from __future__ import annotations

import calendar
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from xnatfs.errors import ProtocolError
from xnatfs.xnat.paths import quote_segment, relative_file_path, scan_id_from_uri, selector

log = logging.getLogger(__name__)

Row = Mapping[str, str]
Rows = Sequence[Row]

# A `/` inside an XNAT value (scan types may hold one) cannot be a name character.
SLASH_STANDIN = "\u2215"

# Projects are asked for their insert date; real XNAT ignores column names it does not know.
PROJECT_COLUMNS = "ID,secondary_ID,name,description,pi_firstname,pi_lastname,insert_date"


@dataclass(frozen=True)
class Source:
    """One REST listing request: an already-encoded path below the base URL, plus query."""

    path: str
    params: tuple[tuple[str, str], ...] = ()
    # A selector that matches nothing is answered with 404 when the path has no project
    # (REST reference §3.6); such a listing is empty, not an error.
    missing_ok: bool = False


@dataclass(frozen=True)
class RemoteFile:
    """What identifies one stored file version on the server."""

    uri: str  # canonical, ID-based URI from the listing row, as the server wrote it
    size: int | None  # None when the listing's Size is empty
    digest: str  # MD5 hex, "" when the server has no checksum
    # The files listing this entry came from: its siblings can be fetched in bulk.
    listing: Source | None = field(default=None, compare=False)


def remote_file(row: Row, listing: Source | None) -> RemoteFile:
    return RemoteFile(
        uri=row["URI"],
        size=parse_size(row.get("Size", "")),
        digest=row.get("digest", ""),
        listing=listing,
    )


@dataclass(frozen=True)
class Node:
    """One entry of the tree. `path` (names from the root) identifies it within the mount."""

    name: str
    path: tuple[str, ...]
    mtime_ns: int
    dir: Dir | None = None
    file: RemoteFile | None = None

    @property
    def is_dir(self) -> bool:
        return self.dir is not None

    @property
    def identity(self) -> tuple[object, ...]:
        """The inode identity: a file's version is part of it, so changed bytes get a new inode
        and the kernel's page cache (`keep_cache`) can never show old bytes for it."""
        if self.file is not None:
            return (self.path, self.file.size, self.file.digest)
        return (self.path,)

    def child(
        self,
        name: str,
        *,
        dir: Dir | None = None,
        file: RemoteFile | None = None,
        mtime_ns: int | None = None,
    ) -> Node:
        return Node(
            name=name,
            path=(*self.path, name),
            mtime_ns=self.mtime_ns if mtime_ns is None else mtime_ns,
            dir=dir,
            file=file,
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


# ---------------------------------------------------------------------------------------------
# names, numbers and dates


def display_name(value: str) -> str | None:
    """The entry name for an XNAT value, or None when it cannot be shown."""
    name = value.replace("/", SLASH_STANDIN).replace("\0", "")
    if name in ("", ".", ".."):
        return None
    return name


def server_value(name: str) -> str:
    return name.replace(SLASH_STANDIN, "/")


def parse_size(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return value if value >= 0 else None


_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d")


def parse_time_ns(text: str) -> int | None:
    """XNAT date/time strings (server-local, taken as UTC) to epoch nanoseconds."""
    text = text.strip()
    for fmt in _DATE_FORMATS:
        try:
            parsed = time.strptime(text, fmt)
        except ValueError:
            continue
        return calendar.timegm(parsed) * 1_000_000_000
    return None


def _natural_key(name: str) -> tuple[object, ...]:
    """Sort `2.dcm` before `10.dcm`, as people and DICOM instance numbers expect."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


def sort_nodes(nodes: Iterable[Node]) -> list[Node]:
    return sorted(nodes, key=lambda n: _natural_key(n.name))


def need(row: Row, key: str, source: Source | None) -> str:
    value = row.get(key)
    if not isinstance(value, str) or (
        key in ("ID", "URI", "xnat_abstractresource_id") and not value
    ):
        where = source.path if source else "a listing"
        raise ProtocolError(f"malformed listing from {where}: a row has no {key!r}")
    return value


def _unique(nodes: Iterable[Node]) -> list[Node]:
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


# ---------------------------------------------------------------------------------------------
# projects, subjects, experiments


@dataclass(frozen=True)
class RootDir(Dir):
    def source(self) -> Source:
        return Source("/data/projects", (("columns", PROJECT_COLUMNS),))

    def entries(self, parent: Node, rows: Rows) -> list[Node]:
        nodes = []
        for row in rows:
            pid = need(row, "ID", self.source())
            name = display_name(pid)
            if name is None:
                continue
            mtime = parse_time_ns(row.get("insert_date", "")) or parent.mtime_ns
            nodes.append(parent.child(name, dir=ProjectDir(pid), mtime_ns=mtime))
        return _unique(nodes)


@dataclass(frozen=True)
class ProjectDir(Dir):
    project: str

    def source(self) -> Source:
        return Source(f"/data/projects/{quote_segment(self.project)}/subjects")

    def _subject(self, parent: Node, row: Row, name: str) -> Node:
        sid = need(row, "ID", self.source())
        mtime = parse_time_ns(row.get("insert_date", "")) or parent.mtime_ns
        return parent.child(name, dir=SubjectDir(self.project, sid), mtime_ns=mtime)

    def entries(self, parent: Node, rows: Rows) -> list[Node]:
        owner = f"/data/projects/{quote_segment(self.project)}"
        nodes = [parent.child("resources", dir=ResourcesDir(owner))]
        for row in rows:
            name = display_name(row.get("label") or need(row, "ID", self.source()))
            if name is not None:
                nodes.append(self._subject(parent, row, name))
        return _unique(nodes)

    def resolve(self, parent: Node, name: str, rows: Rows) -> Node | None:
        for row in rows:
            if row.get("ID") == name:
                return self._subject(parent, row, name)
        return None


@dataclass(frozen=True)
class SubjectDir(Dir):
    project: str
    subject: str  # accession ID

    def source(self) -> Source:
        return Source(
            f"/data/projects/{quote_segment(self.project)}/subjects/"
            f"{quote_segment(self.subject)}/experiments"
        )

    def _experiment(self, parent: Node, row: Row, name: str) -> Node:
        eid = need(row, "ID", self.source())
        mtime = (
            parse_time_ns(row.get("date", ""))
            or parse_time_ns(row.get("insert_date", ""))
            or parent.mtime_ns
        )
        return parent.child(name, dir=ExperimentDir(eid), mtime_ns=mtime)

    def entries(self, parent: Node, rows: Rows) -> list[Node]:
        owner = (
            f"/data/projects/{quote_segment(self.project)}/subjects/{quote_segment(self.subject)}"
        )
        nodes = [parent.child("resources", dir=ResourcesDir(owner))]
        for row in rows:
            name = display_name(row.get("label") or need(row, "ID", self.source()))
            if name is not None:
                nodes.append(self._experiment(parent, row, name))
        return _unique(nodes)

    def resolve(self, parent: Node, name: str, rows: Rows) -> Node | None:
        for row in rows:
            if row.get("ID") == name:
                return self._experiment(parent, row, name)
        return None


@dataclass(frozen=True)
class ExperimentDir(Dir):
    experiment: str  # accession ID

    def entries(self, parent: Node, rows: Rows) -> list[Node]:
        e = self.experiment
        return [
            parent.child("scans", dir=CollectionDir(e, "scans")),
            parent.child("reconstructions", dir=CollectionDir(e, "reconstructions")),
            parent.child("assessors", dir=AssessorsDir(e)),
            parent.child("resources", dir=ResourcesDir(f"/data/experiments/{quote_segment(e)}")),
        ]


# ---------------------------------------------------------------------------------------------
# scans, reconstructions, assessors


def _experiment_path(experiment: str) -> str:
    return f"/data/experiments/{quote_segment(experiment)}"


def _owner_path(experiment: str, collection: str, segment: str) -> str:
    """The path of one owner (or selector) whose resources we list, already encoded.

    Reconstructions and assessors name the `out` side explicitly: it is XNAT's default, and the
    file URIs it returns carry `/out/` too.
    """
    base = f"{_experiment_path(experiment)}/{collection}/{segment}"
    return base if collection == "scans" else f"{base}/out"


@dataclass(frozen=True)
class CollectionDir(Dir):
    """`scans/` or `reconstructions/`: IDs, types that are not also IDs, and `ALL`."""

    experiment: str
    collection: str  # "scans" | "reconstructions"

    def source(self) -> Source:
        return Source(f"{_experiment_path(self.experiment)}/{self.collection}")

    def entries(self, parent: Node, rows: Rows) -> list[Node]:
        ids = [need(row, "ID", self.source()) for row in rows]
        nodes = []
        for oid in ids:
            name = display_name(oid)
            if name is not None:
                nodes.append(
                    parent.child(name, dir=OwnerDir(self.experiment, self.collection, oid))
                )
        taken = set(ids) | {"ALL"}
        for row in rows:
            kind = row.get("type", "")
            name = display_name(kind)
            if name is None or kind in taken:
                continue
            taken.add(kind)
            nodes.append(
                parent.child(name, dir=SelectorDir(self.experiment, self.collection, (kind,)))
            )
        nodes.append(
            parent.child("ALL", dir=SelectorDir(self.experiment, self.collection, ("ALL",)))
        )
        return _unique(nodes)

    def resolve(self, parent: Node, name: str, rows: Rows) -> Node | None:
        if "," not in name:
            return None
        tokens = tuple(server_value(t) for t in name.split(","))
        if any(not t for t in tokens):
            return None
        return parent.child(name, dir=SelectorDir(self.experiment, self.collection, tokens))


@dataclass(frozen=True)
class AssessorsDir(Dir):
    """`assessors/`: labels, xsi:types and `ALL`; accession IDs and comma lists on lookup."""

    experiment: str

    def source(self) -> Source:
        return Source(f"{_experiment_path(self.experiment)}/assessors")

    def _labels(self, rows: Rows) -> tuple[tuple[str, str], ...]:
        return tuple(
            (need(row, "ID", self.source()), row.get("label") or row["ID"]) for row in rows
        )

    def entries(self, parent: Node, rows: Rows) -> list[Node]:
        labels = self._labels(rows)
        nodes = []
        for aid, label in labels:
            name = display_name(label)
            if name is not None:
                nodes.append(parent.child(name, dir=OwnerDir(self.experiment, "assessors", aid)))
        taken = {label for _, label in labels} | {"ALL"}
        for row in rows:
            xsi = row.get("xsiType", "")
            name = display_name(xsi)
            if name is None or xsi in taken:
                continue
            taken.add(xsi)
            nodes.append(
                parent.child(name, dir=SelectorDir(self.experiment, "assessors", (xsi,), labels))
            )
        nodes.append(
            parent.child("ALL", dir=SelectorDir(self.experiment, "assessors", ("ALL",), labels))
        )
        return _unique(nodes)

    def resolve(self, parent: Node, name: str, rows: Rows) -> Node | None:
        labels = self._labels(rows)
        for aid, _ in labels:
            if aid == name:
                return parent.child(name, dir=OwnerDir(self.experiment, "assessors", aid))
        if "," not in name:
            return None
        tokens = tuple(server_value(t) for t in name.split(","))
        if any(not t for t in tokens):
            return None
        return parent.child(name, dir=SelectorDir(self.experiment, "assessors", tokens, labels))


def _resource_name(row: Row, source: Source) -> tuple[str, str | None]:
    """(resource ID, entry name); an unlabeled resource is shown by its ID."""
    rid = need(row, "xnat_abstractresource_id", source)
    return rid, display_name(row.get("label") or rid)


@dataclass(frozen=True)
class OwnerDir(Dir):
    """One scan, reconstruction or assessor: its resources, and only its own.

    XNAT matches `scans/2` against scan IDs *and* types, so rows are filtered by `cat_id`.
    """

    experiment: str
    collection: str
    owner: str

    def _path(self) -> str:
        return _owner_path(self.experiment, self.collection, selector([self.owner]))

    def source(self) -> Source:
        return Source(f"{self._path()}/resources")

    def entries(self, parent: Node, rows: Rows) -> list[Node]:
        nodes = []
        for row in rows:
            if row.get("cat_id", self.owner) != self.owner:
                continue
            rid, name = _resource_name(row, self.source())
            if name is not None:
                files = Source(f"{self._path()}/resources/{quote_segment(rid)}/files")
                nodes.append(parent.child(name, dir=FilesDir(files)))
        return _unique(nodes)


@dataclass(frozen=True)
class SelectorDir(Dir):
    """`ALL`, a type, an xsi:type or a comma list: resource labels found in any matched owner."""

    experiment: str
    collection: str
    tokens: tuple[str, ...]
    labels: tuple[tuple[str, str], ...] = ()  # assessor ID -> label, for naming groups

    def _path(self) -> str:
        return _owner_path(self.experiment, self.collection, selector(list(self.tokens)))

    def source(self) -> Source:
        return Source(f"{self._path()}/resources", missing_ok=True)

    def entries(self, parent: Node, rows: Rows) -> list[Node]:
        by_name: dict[str, list[tuple[str, str]]] = {}
        for row in rows:
            rid, name = _resource_name(row, self.source())
            if name is not None:
                by_name.setdefault(name, []).append((rid, row.get("cat_id", "")))
        nodes = []
        for name, members in by_name.items():
            ids = ",".join(quote_segment(rid) for rid, _ in members)
            files = Source(f"{self._path()}/resources/{ids}/files", missing_ok=True)
            nodes.append(
                parent.child(
                    name,
                    dir=GroupedFilesDir(files, self.collection, tuple(members), self.labels),
                )
            )
        return nodes


# ---------------------------------------------------------------------------------------------
# resources and files


@dataclass(frozen=True)
class ResourcesDir(Dir):
    """The resources of a project, subject or experiment."""

    owner_path: str

    def source(self) -> Source:
        return Source(f"{self.owner_path}/resources")

    def entries(self, parent: Node, rows: Rows) -> list[Node]:
        nodes = []
        for row in rows:
            rid, name = _resource_name(row, self.source())
            if name is not None:
                files = Source(f"{self.owner_path}/resources/{quote_segment(rid)}/files")
                nodes.append(parent.child(name, dir=FilesDir(files)))
        return _unique(nodes)


def _file_rows(rows: Rows, source: Source) -> list[tuple[tuple[str, ...], Row]]:
    """(relative path components, row) for every files-listing row."""
    out = []
    for row in rows:
        uri = need(row, "URI", source)
        parts = tuple(p for p in relative_file_path(uri).split("/") if p)
        if parts:
            out.append((parts, row))
    return out


def _tree_entries(
    parent: Node,
    source: Source,
    items: Iterable[tuple[tuple[str, ...], Row]],
    prefix: tuple[str, ...],
    make_dir: Callable[[tuple[str, ...]], Dir],
) -> list[Node]:
    """Files directly under `prefix`, and one folder per first path component below it."""
    nodes: list[Node] = []
    folders: set[str] = set()
    depth = len(prefix)
    for parts, row in items:
        if len(parts) <= depth or parts[:depth] != prefix:
            continue
        name = display_name(parts[depth])
        if name is None:
            continue
        if len(parts) == depth + 1:
            nodes.append(parent.child(name, file=remote_file(row, source)))
        elif name not in folders:
            folders.add(name)
            nodes.append(parent.child(name, dir=make_dir((*prefix, parts[depth]))))
    return _unique(nodes)


@dataclass(frozen=True)
class FilesDir(Dir):
    """A resource (or a folder inside it): a view of one files listing below `prefix`."""

    files: Source
    prefix: tuple[str, ...] = ()

    def source(self) -> Source:
        return self.files

    def entries(self, parent: Node, rows: Rows) -> list[Node]:
        def make(prefix: tuple[str, ...]) -> Dir:
            return FilesDir(self.files, prefix)

        return _tree_entries(parent, self.files, _file_rows(rows, self.files), self.prefix, make)


@dataclass(frozen=True)
class GroupedFilesDir(Dir):
    """`scans/<SEL>/<RES>/`: one sub-directory per matched owner that has this resource.

    The whole directory, its groups and their folders come from ONE files request made through
    the selector; rows are grouped by the owner ID in each row's URI (by `cat_ID` when XNAT
    comma-joins owner IDs into the URI).
    """

    files: Source
    collection: str
    members: tuple[tuple[str, str], ...]  # (resource ID, owner ID)
    labels: tuple[tuple[str, str], ...] = ()
    group: str | None = None  # set for one owner's group
    prefix: tuple[str, ...] = ()

    def source(self) -> Source:
        return self.files

    def _owner(self, row: Row) -> str | None:
        owner = scan_id_from_uri(row["URI"], self.collection)
        if owner and "," not in owner:
            return owner
        by_resource = dict(self.members)
        return by_resource.get(row.get("cat_ID", "")) or None

    def _group_name(self, owner: str) -> str | None:
        return display_name(dict(self.labels).get(owner, owner))

    def entries(self, parent: Node, rows: Rows) -> list[Node]:
        items = _file_rows(rows, self.files)
        if self.group is None:
            names: dict[str, str] = {}
            for _, row in items:
                owner = self._owner(row)
                name = self._group_name(owner) if owner else None
                if owner and name is not None:
                    names.setdefault(name, owner)
            return [
                parent.child(
                    name,
                    dir=GroupedFilesDir(
                        self.files, self.collection, self.members, self.labels, owner
                    ),
                )
                for name, owner in names.items()
            ]
        mine = [(parts, row) for parts, row in items if self._owner(row) == self.group]

        def make(prefix: tuple[str, ...]) -> Dir:
            return GroupedFilesDir(
                self.files, self.collection, self.members, self.labels, self.group, prefix
            )

        return _tree_entries(parent, self.files, mine, self.prefix, make)


ROOT_DIR = RootDir()


@dataclass(frozen=True)
class Children:
    """A directory's entries, sorted for readdir, and by name for lookup."""

    ordered: tuple[Node, ...]
    by_name: Mapping[str, Node] = field(hash=False, compare=False)

    @classmethod
    def of(cls, nodes: Iterable[Node]) -> Children:
        ordered = tuple(sort_nodes(nodes))
        return cls(ordered, {n.name: n for n in ordered})
