"""Directory kinds from the root down to scans, reconstructions and assessors."""

from __future__ import annotations

from dataclasses import dataclass

from xnatfs.namespace.files import FilesDir, GroupedFilesDir, ResourcesDir, resource_name
from xnatfs.namespace.rules import display_name, parse_time_ns, server_value
from xnatfs.namespace.values import (
    Dir,
    Node,
    Row,
    Rows,
    Source,
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

# Projects are asked for their insert date; real XNAT ignores column names it does not know.
PROJECT_COLUMNS = "ID,secondary_ID,name,description,pi_firstname,pi_lastname,insert_date"


@dataclass(frozen=True)
class RootDir(Dir):
    def source(self) -> Source:
        return Source(projects_path(), (("columns", PROJECT_COLUMNS),))

    def entries(self, parent: Node, rows: Rows) -> list[Node]:
        nodes = []
        for row in rows:
            pid = need(row, "ID", self.source())
            name = display_name(pid)
            if name is None:
                continue
            mtime = parse_time_ns(row.get("insert_date", "")) or parent.mtime_ns
            nodes.append(parent.child(name, dir=ProjectDir(pid), mtime_ns=mtime))
        return unique(nodes)


class _LabelledLevel(Dir):
    """A level whose children are listed by label and resolve by accession ID too (a project's
    subjects, a subject's experiments), plus the owner's `resources/`."""

    def owner(self) -> str:
        """The REST path of this level's own object (the owner of its resources)."""
        raise NotImplementedError

    def _child(self, parent: Node, row: Row, name: str) -> Node:
        raise NotImplementedError

    def entries(self, parent: Node, rows: Rows) -> list[Node]:
        nodes = [parent.child("resources", dir=ResourcesDir(self.owner()))]
        for row in rows:
            name = display_name(row.get("label") or need(row, "ID", self.source()))
            if name is not None:
                nodes.append(self._child(parent, row, name))
        return unique(nodes)

    def resolve(self, parent: Node, name: str, rows: Rows) -> Node | None:
        for row in rows:
            if row.get("ID") == name:
                return self._child(parent, row, name)
        return None


@dataclass(frozen=True)
class ProjectDir(_LabelledLevel):
    project: str

    def source(self) -> Source:
        return Source(subjects_path(self.project))

    def owner(self) -> str:
        return project_path(self.project)

    def _child(self, parent: Node, row: Row, name: str) -> Node:
        sid = need(row, "ID", self.source())
        mtime = parse_time_ns(row.get("insert_date", "")) or parent.mtime_ns
        return parent.child(name, dir=SubjectDir(self.project, sid), mtime_ns=mtime)


@dataclass(frozen=True)
class SubjectDir(_LabelledLevel):
    project: str
    subject: str  # accession ID

    def source(self) -> Source:
        return Source(experiments_path(self.project, self.subject))

    def owner(self) -> str:
        return subject_path(self.project, self.subject)

    def _child(self, parent: Node, row: Row, name: str) -> Node:
        eid = need(row, "ID", self.source())
        mtime = (
            parse_time_ns(row.get("date", ""))
            or parse_time_ns(row.get("insert_date", ""))
            or parent.mtime_ns
        )
        return parent.child(name, dir=ExperimentDir(eid), mtime_ns=mtime)


@dataclass(frozen=True)
class ExperimentDir(Dir):
    experiment: str  # accession ID

    def entries(self, parent: Node, rows: Rows) -> list[Node]:
        e = self.experiment
        return [
            parent.child("scans", dir=CollectionDir(e, "scans")),
            parent.child("reconstructions", dir=CollectionDir(e, "reconstructions")),
            parent.child("assessors", dir=AssessorsDir(e)),
            parent.child("resources", dir=ResourcesDir(experiment_path(e))),
        ]


@dataclass(frozen=True)
class CollectionDir(Dir):
    """`scans/` or `reconstructions/`: IDs, types that are not also IDs, and `ALL`."""

    experiment: str
    collection: str  # "scans" | "reconstructions"

    def source(self) -> Source:
        return Source(collection_path(self.experiment, self.collection))

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
        return unique(nodes)

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
        return Source(collection_path(self.experiment, "assessors"))

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
        return unique(nodes)

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


@dataclass(frozen=True)
class OwnerDir(Dir):
    """One scan, reconstruction or assessor: its resources, and only its own.

    XNAT matches `scans/2` against scan IDs *and* types, so rows are filtered by `cat_id`.
    """

    experiment: str
    collection: str
    owner: str

    def _path(self) -> str:
        return owner_path(self.experiment, self.collection, [self.owner])

    def source(self) -> Source:
        return Source(resources_path(self._path()))

    def entries(self, parent: Node, rows: Rows) -> list[Node]:
        nodes = []
        for row in rows:
            if row.get("cat_id", self.owner) != self.owner:
                continue
            rid, name = resource_name(row, self.source())
            if name is not None:
                files = Source(
                    resource_files_path(self._path(), [rid]),
                    collection=self.collection,
                    owners=((rid, self.owner),),
                )
                nodes.append(parent.child(name, dir=FilesDir(files)))
        return unique(nodes)


@dataclass(frozen=True)
class SelectorDir(Dir):
    """`ALL`, a type, an xsi:type or a comma list: resource labels found in any matched owner."""

    experiment: str
    collection: str
    tokens: tuple[str, ...]
    labels: tuple[tuple[str, str], ...] = ()  # assessor ID -> label, for naming groups

    def _path(self) -> str:
        return owner_path(self.experiment, self.collection, self.tokens)

    def source(self) -> Source:
        return Source(resources_path(self._path()), missing_ok=True)

    def entries(self, parent: Node, rows: Rows) -> list[Node]:
        by_name: dict[str, list[tuple[str, str]]] = {}
        for row in rows:
            rid, name = resource_name(row, self.source())
            if name is not None:
                by_name.setdefault(name, []).append((rid, row.get("cat_id", "")))
        nodes = []
        for name, members in by_name.items():
            files = Source(
                resource_files_path(self._path(), [rid for rid, _ in members]),
                missing_ok=True,
                collection=self.collection,
                owners=tuple(members),
            )
            nodes.append(
                parent.child(
                    name,
                    dir=GroupedFilesDir(files, self.collection, tuple(members), self.labels),
                )
            )
        return nodes


ROOT_DIR = RootDir()
