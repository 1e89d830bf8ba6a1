"""Scans, reconstructions and assessors: the collection directories, one owner's
directory, and the selector (`ALL`, type, comma list) directories."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from xnatfs.namespace.files import FilesDir, GroupedFilesDir, resource_name
from xnatfs.namespace.rules import display_name, server_value
from xnatfs.namespace.values import (
    Batch,
    Dir,
    FilesContext,
    Listing,
    Node,
    Row,
    Rows,
    Source,
    XnatObject,
    need,
    root_node,
    unique,
)
from xnatfs.xnat.paths import (
    collection_path,
    owner_path,
    resource_files_path,
    resources_path,
)

# The owner and resource of a file in an `<collection>/ALL/files` row's URI.
_FILE_OWNER = {
    c: re.compile(rf"/{c}/([^/,]+)/(?:(?:in|out)/)?resources/([^/]+)/files/")
    for c in ("scans", "reconstructions", "assessors")
}


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

    def batches(self, listing: Listing) -> list[Batch]:
        """Every owner's resources in one request (`<collection>/ALL/resources`), then every
        owner's files in one more (`<collection>/ALL/files`), rows split as each owner's,
        each resource's and each listed selector's own listing would have them (REST
        reference §1.3, §2.2.6, §3: the rows carry `cat_id`, each file's URI names its owner
        and resource, and a type selector matches the owners of that type or ID)."""
        o = self._owners(listing)
        if not o.ids:
            return []
        e, c = self.experiment, self.collection
        everyone = owner_path(e, c, ["ALL"])
        own = {oid: Source(resources_path(owner_path(e, c, [oid]))) for oid in o.ids}
        selectors = [("ALL", ("ALL",))]
        if self.selectors:
            selectors += [(name, (kind,)) for name, kind in o.selectors.items()]
        # Filled by the first batch for the second: each resource's files source, and each
        # selector resource directory's files sources with the resource IDs they cover.
        found: list[Source] = []
        grouped: list[tuple[Source, frozenset[str]]] = []

        def matched(token: str) -> set[str]:
            if token == "ALL":
                return set(o.ids)
            return {oid for oid in o.ids if oid == token or o.kinds[oid] == token}

        def split_resources(rows: Rows) -> dict[Source, Rows]:
            out: dict[Source, list[Row]] = {source: [] for source in own.values()}
            for row in rows:
                oid = row.get("cat_id", "")
                source = own.get(oid)
                rid = row.get("xnat_abstractresource_id")
                if source is not None and rid:
                    out[source].append(row)
                    found.append(Source(resource_files_path(owner_path(e, c, [oid]), [rid])))
            for _name, tokens in selectors:
                chosen = matched(tokens[0])
                spec = SelectorDir(e, c, tokens, o)
                source = spec.source()
                if source is None:
                    continue
                mine = tuple(r for r in rows if r.get("cat_id", "") in chosen)
                out[source] = list(mine)
                # The files sources the selector's resource directories will ask for.
                for node in spec.entries(_SCRATCH, Listing(source, mine)):
                    assert isinstance(node.dir, GroupedFilesDir) and node.dir.files.context
                    grouped.append((node.dir.files, frozenset(node.dir.files.context.owners)))
            return {k: tuple(v) for k, v in out.items()}

        resources = Batch(Source(resources_path(everyone), missing_ok=True), split_resources)
        pattern = _FILE_OWNER[c]

        def split_files(rows: Rows) -> dict[Source, Rows]:
            out: dict[Source, list[Row]] = {source: [] for source in found}
            by_resource: dict[str, list[Row]] = {}
            for row in rows:
                m = pattern.search(row.get("URI", ""))
                if m is not None and m.group(1) in own:
                    path = resource_files_path(owner_path(e, c, [m.group(1)]), [m.group(2)])
                    out.setdefault(Source(path), []).append(row)
                    by_resource.setdefault(m.group(2), []).append(row)
            for source, rids in grouped:
                out[source] = [row for rid in rids for row in by_resource.get(rid, ())]
            return {k: tuple(v) for k, v in out.items()}

        files = Batch(Source(f"{everyone}/files", missing_ok=True), split_files)
        return [resources, files]

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

    def source(self) -> Source | None:
        if self.tokens == ("ALL",) and self.owners is not None and not self.owners.ids:
            return None  # an empty collection's ALL: empty, without a request
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


# A parent for nodes made only to read what a directory would list (never shown): its
# directory kind never matters, only the names and sources of the children made under it.
_SCRATCH = root_node(Dir())
