"""Directory kinds for resources and the files (and sub-folders) inside them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from xnatfs.namespace.rules import display_name
from xnatfs.namespace.values import (
    Dir,
    Node,
    Row,
    Rows,
    Source,
    file_uri,
    file_version,
    need,
    unique,
)
from xnatfs.xnat.paths import (
    relative_file_path,
    resource_files_path,
    resources_path,
    scan_id_from_uri,
)


def resource_name(row: Row, source: Source) -> tuple[str, str | None]:
    """(resource ID, entry name); an unlabeled resource is shown by its ID."""
    rid = need(row, "xnat_abstractresource_id", source)
    return rid, display_name(row.get("label") or rid)


@dataclass(frozen=True)
class ResourcesDir(Dir):
    """The resources of a project, subject or experiment."""

    owner_path: str

    def source(self) -> Source:
        return Source(resources_path(self.owner_path))

    def entries(self, parent: Node, rows: Rows) -> list[Node]:
        nodes = []
        for row in rows:
            rid, name = resource_name(row, self.source())
            if name is not None:
                files = Source(resource_files_path(self.owner_path, [rid]))
                nodes.append(parent.child(name, dir=FilesDir(files)))
        return unique(nodes)


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
            nodes.append(parent.child(name, file=file_version(row, source), listing=source))
        elif name not in folders:
            folders.add(name)
            nodes.append(parent.child(name, dir=make_dir((*prefix, parts[depth]))))
    return unique(nodes)


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
        # `file_uri` names the one owner where XNAT wrote a comma list of them.
        owner = scan_id_from_uri(file_uri(row, self.files), self.collection)
        return owner if owner and "," not in owner else None

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
