"""Directory kinds from the root down to scans, reconstructions and assessors."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from xnatfs.namespace.files import FilesDir, GroupedFilesDir, ResourcesDir, resource_name
from xnatfs.namespace.rules import display_name, parse_time_ns, server_value
from xnatfs.namespace.values import (
    Dir,
    FilesContext,
    Listing,
    Node,
    Row,
    Source,
    XnatObject,
    need,
    unique,
)
from xnatfs.xnat.paths import (
    collection_path,
    experiment_path,
    experiments_path,
    owner_path,
    project_path,
    projects_path,
    resource_files_path,
    resources_path,
    subject_path,
    subjects_path,
)

# Newest subject first, one row: the root's time in one small request (reference §2.3).
NEWEST_SUBJECT = (
    ("columns", "ID,insert_date"),
    ("sortBy", "insert_date"),
    ("sortOrder", "DESC"),
    ("limit", "1"),
)


def newest_time(rows: Iterable[Row], *keys: str) -> int | None:
    """The newest of the dates in `keys` over all `rows`, or None when no row has one."""
    times = [t for row in rows for k in keys if (t := parse_time_ns(row.get(k, "")))]
    return max(times) if times else None


@dataclass(frozen=True)
class RootDir(Dir):
    """`/`: projects by ID (`projects`: only these, when given). `selectors`: whether `ALL` and
    type directories are listed (they always resolve by name)."""

    projects: tuple[str, ...] = ()
    selectors: bool = True

    def source(self) -> Source:
        # Real XNAT sends no project date and ignores `columns=` here (reference §11a).
        return Source(projects_path())

    def time_source(self) -> Source | None:
        """Where the root's time comes from (the newest subject's insert date), or None when it
        is the newest of the mounted projects' own times."""
        if self.projects:
            return None
        return Source("/data/subjects", NEWEST_SUBJECT)

    def entries(self, parent: Node, listing: Listing) -> list[Node]:
        wanted = set(self.projects)
        nodes = []
        for row in listing.rows:
            pid = need(row, "ID", listing.source)
            name = display_name(pid)
            if name is None or (wanted and pid not in wanted):
                continue
            # A project's time comes from its own listing (mtime 0: derived when asked).
            nodes.append(parent.child(name, dir=ProjectDir(pid, self.selectors), mtime_ns=0))
        return unique(nodes)

    def time(self, listing: Listing) -> int | None:
        return newest_time(listing.rows, "insert_date")


class _LabelledLevel(Dir):
    """A level whose children are listed by label and resolve by accession ID too (a project's
    subjects, a subject's experiments), plus the owner's `resources/`."""

    def owner(self) -> str:
        """The REST path of this level's own object (the owner of its resources)."""
        raise NotImplementedError

    def _child(self, parent: Node, row: Row, name: str, listing: Listing) -> Node:
        raise NotImplementedError

    def entries(self, parent: Node, listing: Listing) -> list[Node]:
        nodes = [parent.child("resources", dir=ResourcesDir(self.owner()))]
        for row in listing.rows:
            name = display_name(row.get("label") or need(row, "ID", listing.source))
            if name is not None:
                nodes.append(self._child(parent, row, name, listing))
        return unique(nodes)

    def resolve(self, parent: Node, name: str, listing: Listing) -> Node | None:
        by_id = listing.derived("by-id", lambda: {r.get("ID"): r for r in listing.rows})
        row = by_id.get(name)
        return None if row is None else self._child(parent, row, name, listing)


@dataclass(frozen=True)
class ProjectDir(_LabelledLevel):
    project: str
    selectors: bool = True

    def source(self) -> Source:
        return Source(subjects_path(self.project))

    def owner(self) -> str:
        return project_path(self.project)

    def describe(self) -> XnatObject:
        return XnatObject(f"/data/projects/{self.project}", self.project, "xnat:projectData")

    def time(self, listing: Listing) -> int | None:
        # XNAT keeps no project date: the newest of its subjects' insert dates.
        return newest_time(listing.rows, "insert_date")

    def _child(self, parent: Node, row: Row, name: str, listing: Listing) -> Node:
        sid = need(row, "ID", listing.source)
        mtime = parse_time_ns(row.get("insert_date", "")) or parent.mtime_ns
        return parent.child(name, dir=SubjectDir(self.project, sid, self.selectors), mtime_ns=mtime)


@dataclass(frozen=True)
class SubjectDir(_LabelledLevel):
    project: str
    subject: str  # accession ID
    selectors: bool = True

    def source(self) -> Source:
        return Source(experiments_path(self.project, self.subject))

    def owner(self) -> str:
        return subject_path(self.project, self.subject)

    def describe(self) -> XnatObject:
        uri = f"/data/projects/{self.project}/subjects/{self.subject}"
        return XnatObject(uri, self.subject, "xnat:subjectData")

    def _child(self, parent: Node, row: Row, name: str, listing: Listing) -> Node:
        eid = need(row, "ID", listing.source)
        mtime = (
            parse_time_ns(row.get("date", ""))
            or parse_time_ns(row.get("insert_date", ""))
            or parent.mtime_ns
        )
        kind = row.get("xsiType", "")
        return parent.child(name, dir=ExperimentDir(eid, self.selectors, kind), mtime_ns=mtime)


@dataclass(frozen=True)
class ExperimentDir(Dir):
    experiment: str  # accession ID
    selectors: bool = True
    # Its xsi:type from the subject's listing; shown, not part of what the directory is.
    kind: str = field(default="", compare=False)

    def describe(self) -> XnatObject:
        return XnatObject(f"/data/experiments/{self.experiment}", self.experiment, self.kind)

    def entries(self, parent: Node, listing: Listing) -> list[Node]:
        e, sel = self.experiment, self.selectors
        return [
            parent.child("scans", dir=CollectionDir(e, "scans", sel)),
            parent.child("reconstructions", dir=CollectionDir(e, "reconstructions", sel)),
            parent.child("assessors", dir=CollectionDir(e, "assessors", sel)),
            parent.child("resources", dir=ResourcesDir(experiment_path(e))),
        ]


@dataclass(frozen=True)
class Owners:
    """What a collection listing says about its owners, computed once per fetch.

    `ids` in listing order; `labels`: ID -> entry name (assessors are shown by label, scans and
    reconstructions by ID); `kinds`: ID -> type (or xsi:type); `selectors`: the type (or
    xsi:type) directories, by name -> the value they select; `links`: ID -> how many listed
    paths lead to that owner's files.
    """

    ids: tuple[str, ...]
    labels: Mapping[str, str]
    kinds: Mapping[str, str]
    selectors: Mapping[str, str]
    links: Mapping[str, int]


@dataclass(frozen=True)
class CollectionDir(Dir):
    """`scans/`, `reconstructions/` or `assessors/`: one directory per owner (scan and
    reconstruction IDs, assessor labels), one per type (xsi:type for assessors) that is not
    also an owner's name, and `ALL`. Accession IDs of assessors and comma lists resolve on
    lookup; with `selectors` False, type directories and `ALL` only resolve."""

    experiment: str
    collection: str  # "scans" | "reconstructions" | "assessors"
    selectors: bool = True

    def source(self) -> Source:
        return Source(collection_path(self.experiment, self.collection))

    def describe(self) -> XnatObject:
        return XnatObject(f"/data/experiments/{self.experiment}/{self.collection}")

    def _owners(self, listing: Listing) -> Owners:
        return listing.derived(("owners", self.selectors), lambda: self._read(listing))

    def _read(self, listing: Listing) -> Owners:
        assessors = self.collection == "assessors"
        type_key = "xsiType" if assessors else "type"
        ids: list[str] = []
        labels: dict[str, str] = {}
        kinds: dict[str, str] = {}
        for row in listing.rows:
            oid = need(row, "ID", listing.source)
            ids.append(oid)
            labels[oid] = (row.get("label") or oid) if assessors else oid
            kinds[oid] = row.get(type_key, "")
        taken = set(labels.values()) | {"ALL"}
        selectors: dict[str, str] = {}
        for kind in kinds.values():
            name = display_name(kind)
            if name is not None and kind not in taken and name not in selectors:
                selectors[name] = kind
        listed_kinds = set(selectors.values())
        links = {oid: 1 + (2 if kinds[oid] in listed_kinds else 1) * self.selectors for oid in ids}
        return Owners(tuple(ids), labels, kinds, selectors, links)

    def _selector(self, parent: Node, name: str, tokens: tuple[str, ...], o: Owners) -> Node:
        return parent.child(name, dir=SelectorDir(self.experiment, self.collection, tokens, o))

    def _owner(self, oid: str, o: Owners) -> OwnerDir:
        return OwnerDir(self.experiment, self.collection, oid, o.links[oid], o.kinds[oid])

    def entries(self, parent: Node, listing: Listing) -> list[Node]:
        o = self._owners(listing)
        nodes = []
        for oid in o.ids:
            name = display_name(o.labels[oid])
            if name is not None:
                nodes.append(parent.child(name, dir=self._owner(oid, o)))
        if self.selectors:
            for name, kind in o.selectors.items():
                nodes.append(self._selector(parent, name, (kind,), o))
            nodes.append(self._selector(parent, "ALL", ("ALL",), o))
        return unique(nodes)

    def resolve(self, parent: Node, name: str, listing: Listing) -> Node | None:
        o = self._owners(listing)
        if name in o.kinds and self.collection == "assessors":  # an assessor's accession ID
            return parent.child(name, dir=self._owner(name, o))
        if name == "ALL":
            return self._selector(parent, name, ("ALL",), o)
        if name in o.selectors:
            return self._selector(parent, name, (o.selectors[name],), o)
        if "," not in name:
            return None
        tokens = tuple(server_value(t) for t in name.split(","))
        if any(not t for t in tokens):
            return None
        return self._selector(parent, name, tokens, o)


@dataclass(frozen=True)
class OwnerDir(Dir):
    """One scan, reconstruction or assessor: its resources, and only its own.

    XNAT matches `scans/2` against scan IDs *and* types, so rows are filtered by `cat_id`.
    `links`: how many listed paths lead to each of its files.
    """

    experiment: str
    collection: str
    owner: str
    links: int = 1
    # Its type (xsi:type for assessors) from the collection listing; shown, not part of what
    # the directory is.
    kind: str = field(default="", compare=False)

    def _path(self) -> str:
        return owner_path(self.experiment, self.collection, [self.owner])

    def describe(self) -> XnatObject:
        uri = f"/data/experiments/{self.experiment}/{self.collection}/{self.owner}"
        return XnatObject(uri, self.owner, self.kind)

    def source(self) -> Source:
        return Source(resources_path(self._path()))

    def entries(self, parent: Node, listing: Listing) -> list[Node]:
        nodes = []
        for row in listing.rows:
            if row.get("cat_id", self.owner) != self.owner:
                continue
            rid, name = resource_name(row, listing.source)
            if name is not None:
                context = FilesContext(
                    self.collection, {rid: self.owner}, links={self.owner: self.links}
                )
                files = Source(resource_files_path(self._path(), [rid]), context=context)
                nodes.append(parent.child(name, dir=FilesDir(files)))
        return unique(nodes)


@dataclass(frozen=True)
class SelectorDir(Dir):
    """`ALL`, a type, an xsi:type or a comma list: the resource labels found in any matched
    owner, each a directory of per-owner groups (one request for all of them)."""

    experiment: str
    collection: str
    tokens: tuple[str, ...]
    # Read from the collection listing; not part of what the directory is.
    owners: Owners | None = field(default=None, compare=False, repr=False)

    def _path(self) -> str:
        return owner_path(self.experiment, self.collection, self.tokens)

    def source(self) -> Source:
        return Source(resources_path(self._path()), missing_ok=True)

    def describe(self) -> XnatObject:
        selected = ",".join(self.tokens)
        return XnatObject(f"/data/experiments/{self.experiment}/{self.collection}/{selected}")

    def entries(self, parent: Node, listing: Listing) -> list[Node]:
        by_name: dict[str, dict[str, str]] = {}
        for row in listing.rows:
            rid, name = resource_name(row, listing.source)
            if name is not None:
                by_name.setdefault(name, {})[rid] = row.get("cat_id", "")
        o = self.owners
        nodes = []
        for name, members in by_name.items():
            context = FilesContext(
                self.collection,
                members,
                labels=o.labels if o is not None else {},
                links=o.links if o is not None else {},
            )
            files = Source(
                resource_files_path(self._path(), list(members)),
                missing_ok=True,
                context=context,
            )
            nodes.append(parent.child(name, dir=GroupedFilesDir(files, self.collection)))
        return unique(nodes)


ROOT_DIR = RootDir()
