"""Directory kinds for resources and the files (and sub-folders) inside them.

A files listing is read once per fetch into a tree of folders (`Listing.derived`), so listing a
resource with thousands of sub-folders, or the per-owner groups of a selector over a thousand
scans, stays linear in the rows.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import unquote

from xnatfs.namespace.rules import display_name, server_value
from xnatfs.namespace.values import (
    Dir,
    Listing,
    Node,
    Row,
    Source,
    XnatObject,
    file_uri,
    file_version,
    need,
    unique,
)
from xnatfs.xnat.paths import resource_files_path, resources_path, split_file_uri

log = logging.getLogger(__name__)

Parts = tuple[str, ...]


def resource_name(row: Row, source: Source | None) -> tuple[str, str | None]:
    """(resource ID, entry name); an unlabeled resource is shown by its ID."""
    rid = need(row, "xnat_abstractresource_id", source)
    return rid, display_name(row.get("label") or rid)


@dataclass(frozen=True)
class ResourcesDir(Dir):
    """The resources of a project, subject or experiment."""

    owner_path: str

    def source(self) -> Source:
        return Source(resources_path(self.owner_path))

    def describe(self) -> XnatObject:
        return XnatObject(unquote(resources_path(self.owner_path)))

    def entries(self, parent: Node, listing: Listing) -> list[Node]:
        nodes = []
        for row in listing.rows:
            rid, name = resource_name(row, listing.source)
            if name is not None:
                files = Source(resource_files_path(self.owner_path, [rid]))
                nodes.append(parent.child(name, dir=FilesDir(files)))
        return unique(nodes)


def _resource_uri(files: Source) -> str:
    """The URI of the resource(s) a files listing lists: its path without `/files`, decoded."""
    return unquote(files.path.removesuffix("/files"))


def _folder_uri(resource_uri: str, prefix: Parts) -> str:
    return f"{resource_uri}/files/{'/'.join(prefix)}" if prefix else resource_uri


@dataclass
class _Folder:
    """One folder of a files listing: its files (name, row) and its sub-folders' names."""

    files: list[tuple[str, Row]] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)


def _file_rows(listing: Listing) -> Iterator[tuple[Parts, Row, str]]:
    """(path inside the resource, row, canonical URI) for every usable files-listing row; a row
    without a resource file URI is left out with one log line."""
    for row in listing.rows:
        uri = row.get("URI", "")
        parts = split_file_uri(uri) if uri else None
        if parts is None:
            where = listing.source.path if listing.source else "a listing"
            log.warning("leaving out a row of %s without a resource file URI: %r", where, uri)
            continue
        path = tuple(p for p in parts[2].split("/") if p)
        if path:
            yield path, row, file_uri(row, listing.source)


def _tree(items: Iterator[tuple[Parts, Row]]) -> dict[Parts, _Folder]:
    """Folders by their path inside the resource (the resource itself is `()`)."""
    folders: dict[Parts, _Folder] = {(): _Folder()}
    for path, row in items:
        for depth in range(len(path) - 1):
            prefix = path[: depth + 1]
            if prefix not in folders:
                folders[prefix] = _Folder()
                folders[path[:depth]].folders.append(path[depth])
        folders[path[:-1]].files.append((path[-1], row))
    return folders


def _folder_entries(
    parent: Node,
    listing: Listing,
    folder: _Folder | None,
    make_dir: Callable[[str], Dir],
    links: int,
) -> list[Node]:
    """The files and sub-folders of `folder` as nodes; `make_dir(raw name)` describes a
    sub-folder, `links` is each file's link count."""
    if folder is None:
        return []
    nodes = []
    for raw, row in folder.files:
        name = display_name(raw)
        if name is not None:
            version = file_version(row, listing.source)
            nodes.append(parent.child(name, file=version, listing=listing.source, links=links))
    for raw in folder.folders:
        name = display_name(raw)
        if name is not None:
            nodes.append(parent.child(name, dir=make_dir(raw)))
    return unique(nodes)


@dataclass(frozen=True)
class FilesDir(Dir):
    """A resource (or a folder inside it): a view of one files listing below `prefix`."""

    files: Source
    prefix: Parts = ()

    def source(self) -> Source:
        return self.files

    def describe(self) -> XnatObject:
        uri = _resource_uri(self.files)
        if self.prefix:
            return XnatObject(_folder_uri(uri, self.prefix))
        return XnatObject(uri, uri.rpartition("/")[2])

    def entries(self, parent: Node, listing: Listing) -> list[Node]:
        tree = listing.derived("tree", lambda: _tree((p, r) for p, r, _ in _file_rows(listing)))
        context = self.files.context
        links = next(iter(context.links.values()), 1) if context is not None else 1

        def make(raw: str) -> Dir:
            return FilesDir(self.files, (*self.prefix, raw))

        return _folder_entries(parent, listing, tree.get(self.prefix), make, links)


_OWNER_IN_URI: dict[str, re.Pattern[str]] = {
    c: re.compile(rf"/{c}/([^/]+)/(?:(?:in|out)/)?resources/[^/]+/files/")
    for c in ("scans", "reconstructions", "assessors")
}


@dataclass(frozen=True)
class GroupedFilesDir(Dir):
    """`scans/<SEL>/<RES>/`: one sub-directory per matched owner that has this resource.

    The whole directory, its groups and their folders come from ONE files request made through
    the selector; rows are grouped by the owner ID in each row's canonical URI, once per fetch.
    """

    files: Source
    collection: str
    group: str | None = None  # set for one owner's group (its display name)
    prefix: Parts = ()

    def source(self) -> Source:
        return self.files

    def describe(self) -> XnatObject:
        uri = _resource_uri(self.files)
        context = self.files.context
        if self.group is None or context is None:
            return XnatObject(uri)
        # The group's owner (by label for assessors, else its ID) and its resource ID.
        owner = next(
            (o for o, label in context.labels.items() if display_name(label) == self.group),
            server_value(self.group),
        )
        rid = next((r for r, o in context.owners.items() if o == owner), "")
        # `/data/experiments/E/<collection>/...`: the owner's own path, as its file URIs have it.
        base = uri.split("/")[:5]
        out = "" if self.collection == "scans" else "/out"
        resource = f"{'/'.join(base)}/{owner}{out}/resources/{rid}"
        if self.prefix:
            return XnatObject(_folder_uri(resource, self.prefix))
        return XnatObject(resource, rid)

    def _groups(self, listing: Listing) -> dict[str, tuple[str, dict[Parts, _Folder]]]:
        """Group name -> (owner ID, that owner's folder tree)."""
        context = self.files.context
        labels = context.labels if context is not None else {}
        pattern = _OWNER_IN_URI[self.collection]
        rows: dict[str, list[tuple[Parts, Row]]] = {}
        for path, row, uri in _file_rows(listing):
            m = pattern.search(uri)
            owner = m.group(1) if m else None
            if owner and "," not in owner:
                rows.setdefault(owner, []).append((path, row))
        groups: dict[str, tuple[str, dict[Parts, _Folder]]] = {}
        for owner, items in rows.items():
            name = display_name(labels.get(owner, owner))
            if name is not None and name not in groups:
                groups[name] = (owner, _tree(iter(items)))
        return groups

    def entries(self, parent: Node, listing: Listing) -> list[Node]:
        groups = listing.derived(("groups", self.collection), lambda: self._groups(listing))
        if self.group is None:
            return unique(
                parent.child(name, dir=GroupedFilesDir(self.files, self.collection, name))
                for name in groups
            )
        found = groups.get(self.group)
        if found is None:
            return []
        owner, tree = found
        context = self.files.context
        links = context.links.get(owner, 1) if context is not None else 1
        group = self.group

        def make(raw: str) -> Dir:
            return GroupedFilesDir(self.files, self.collection, group, (*self.prefix, raw))

        return _folder_entries(parent, listing, tree.get(self.prefix), make, links)
