"""Directory kinds from the root down to scans, reconstructions and assessors."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from xnatfs.namespace.files import ResourcesDir
from xnatfs.namespace.owners import CollectionDir
from xnatfs.namespace.rules import display_name, parse_time_ns
from xnatfs.namespace.values import (
    Dir,
    Listing,
    Node,
    Row,
    Source,
    XnatObject,
    need,
    unique,
)
from xnatfs.xnat.paths import (
    experiment_path,
    experiments_path,
    project_path,
    projects_path,
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


ROOT_DIR = RootDir()
