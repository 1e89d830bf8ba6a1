"""Which listed file an entry of an XNAT archive holds: an exact match, or none.

A `format=zip` (or tar) request of a files listing returns one entry per listed file, named
after the file's owner, its resource's label and its path inside the resource, in one of three
layouts (REST reference §4.2; `SESSION` is the session's archive directory, normally its label,
or the subject label or project ID for their resources):

    default     SESSION/scans/1-T1/resources/DICOM/files/sub/a.dcm
                SESSION/assessors/A1/out/resources/DATA/files/a.nii
                SESSION/resources/NOTES/files/a.txt
    simplified  SESSION/scans/1/DICOM/sub/a.dcm      (every "/resources" and "/files" removed)
    improved    scans/1_T1/DICOM/a.dcm               (the part after the URI's last "/files/")

In the default layout XNAT rewrites every `/<scan ID>/` of the whole path, sub-folders included,
to `/<scan ID>-<type>/`, and the improved layout appends the owner's description to its ID. Those
suffixes depend on the server's version and on data the files listing does not carry, so an entry
is read in every way its name allows, and each reading is checked by computing forward the name a
listed file would have. An entry is attributed to a file only when exactly one file of the whole
listing (claimed for download or not) can carry that name; the first attribution fixes the layout
for the rest of the archive. Anything else (an entry of a file that is not listed, a name two
listed files could both carry) is reported as not attributable, and its bytes go nowhere.

Pure: no I/O. Owners are matched by ID only, as XNAT names them in URIs.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from xnatfs.xnat.paths import split_file_uri

LAYOUTS = ("default", "simplified", "improved")
OWNER_COLLECTIONS = ("scans", "reconstructions", "assessors")
# A path holding more occurrences of its own scan's segment than this is not worth enumerating.
_MAX_REWRITES = 4


@dataclass(frozen=True)
class Member:
    """One listed file as XNAT's archives name it.

    `category` is `scans`, `reconstructions` or `assessors` for a file of a scan,
    reconstruction or assessor, else `resources` (project, subject or session resources).
    `owner` is the scan, reconstruction or assessor ID, the experiment's accession ID for a
    session resource, "" for project and subject resources. `direction` is `in`/`out` where the
    URI names one. `label` is the resource label (its ID when it has none), `rel` the path inside
    the resource, `tail` the URI's part after its last `/files/`.
    """

    key: str  # the file's canonical URI: what the caller claimed
    category: str
    owner: str
    direction: str
    label: str
    rel: str
    tail: str


def member(uri: str, label: str, owner: str | None = None) -> Member | None:
    """The archive identity of the file at `uri` (a canonical, ID-based listing URI) in the
    resource labelled `label`; `owner` overrides the owner found in the URI. None for a URI that
    is not a resource file's.
    """
    parts = split_file_uri(uri)
    if parts is None:
        return None
    owner_path, rid, rel = parts
    segs = owner_path.split("/")
    direction = ""
    if len(segs) >= 3 and segs[-1] in ("in", "out") and segs[-3] in OWNER_COLLECTIONS[1:]:
        direction = segs.pop()
    if len(segs) >= 2 and segs[-2] in OWNER_COLLECTIONS:
        category, found = segs[-2], segs[-1]
    elif len(segs) >= 2 and segs[-2] == "experiments":
        category, found = "resources", segs[-1]
    else:
        category, found = "resources", ""
    return Member(
        key=uri,
        category=category,
        owner=found if owner is None else owner,
        direction=direction,
        label=label or rid,
        rel=rel,
        tail=uri.rpartition("/files/")[2],
    )


def _owner_path(m: Member, segment: str) -> str:
    if m.category == "resources":
        return ""
    path = f"{m.category}/{segment}"
    return f"{path}/{m.direction}" if m.direction else path


def default_name(m: Member, segment: str) -> str:
    """The entry name (without SESSION/) in the default layout, `segment` naming the owner."""
    owner_path = _owner_path(m, m.owner)
    path = (f"{owner_path}/" if owner_path else "") + f"resources/{m.label}/files/{m.rel}"
    if m.category == "scans" and segment != m.owner:
        path = _rewrite(path, m.owner, segment)
    return path


def _rewrite(path: str, owner: str, segment: str) -> str:
    """Java's `path.replace("/<owner>/", "/<segment>/")` on `SESSION/<path>`."""
    return ("/" + path).replace(f"/{owner}/", f"/{segment}/")[1:]


def simplified_name(m: Member) -> str:
    """The entry name (without SESSION/) in the simplified layout."""
    owner_path = _owner_path(m, m.owner)
    path = f"/{owner_path}" if owner_path else ""
    path += f"/resources/{m.label}/files/{m.rel}"
    return path.replace("/resources", "").replace("/files", "")[1:]


def improved_name(m: Member, segment: str) -> str:
    """The entry name in the improved layout, `segment` naming the owner (`ID_description`)."""
    head = f"{m.category}/{segment}" if segment else m.category
    return f"{head}/{m.label}/{m.tail}"


class ArchiveIndex:
    """Every listed file of one archive request, ready to attribute the archive's entries.

    `match(name)` returns the one `Member` an entry can hold, or None; `skipped` counts the
    entries that matched no listed file, `ambiguous` those two listed files could both carry.
    """

    def __init__(self, members: Iterable[Member]) -> None:
        self.layout: str | None = None
        self.skipped = 0
        self.ambiguous = 0
        self._by_key: dict[str, Member] = {}
        self._by_path: dict[tuple[str, str, str, str, str], Member] = {}
        self._owners: dict[str, set[str]] = defaultdict(set)
        self._simplified_names: dict[str, list[Member]] = defaultdict(list)
        self._improved_tails: dict[tuple[str, str, str, str], list[Member]] = defaultdict(list)
        for m in members:
            self._by_key[m.key] = m
            self._by_path[(m.category, m.owner, m.direction, m.label, m.rel)] = m
            self._owners[m.category].add(m.owner)
            self._simplified_names[simplified_name(m)].append(m)
            self._improved_tails[(m.category, m.owner, m.label, m.tail)].append(m)

    def __len__(self) -> int:
        return len(self._by_key)

    def match(self, name: str) -> Member | None:
        """The listed file the entry `name` holds, if exactly one can hold it."""
        found: dict[str, set[str]] = {}
        readers = {
            "default": self._default,
            "simplified": self._simplified,
            "improved": self._improved,
        }
        for layout in (self.layout,) if self.layout else LAYOUTS:
            for m in readers[layout](name):
                found.setdefault(m.key, set()).add(layout)
        if not found:
            self.skipped += 1
            return None
        if len(found) > 1:
            self.ambiguous += 1
            return None
        key, layouts = next(iter(found.items()))
        if self.layout is None and len(layouts) == 1:
            self.layout = next(iter(layouts))
        return self._by_key[key]

    # -- readings of one entry name, each checked forward --------------------------------------

    def _default(self, name: str) -> list[Member]:
        _session, sep, path = name.partition("/")
        parts = path.split("/") if sep else []
        if len(parts) >= 4 and parts[0] == "resources" and parts[2] == "files":
            return [
                m
                for owner in self._owners.get("resources", ())
                if (m := self._by_path.get(("resources", owner, "", parts[1], _join(parts, 3))))
                and default_name(m, owner) == path
            ]
        if len(parts) < 6 or parts[0] not in OWNER_COLLECTIONS:
            return []
        category, segment = parts[0], parts[1]
        i, direction = 2, ""
        if category != "scans" and parts[2] in ("in", "out"):
            i, direction = 3, parts[2]
        if len(parts) < i + 4 or parts[i] != "resources" or parts[i + 2] != "files":
            return []
        label, rest = parts[i + 1], _join(parts, i + 3)
        out = []
        for owner in self._owners.get(category, ()):
            if segment != owner and not (category == "scans" and segment.startswith(owner + "-")):
                continue
            for rel in _preimages(rest, owner, segment) if category == "scans" else (rest,):
                m = self._by_path.get((category, owner, direction, label, rel))
                if m is not None and default_name(m, segment) == path:
                    out.append(m)
        return out

    def _simplified(self, name: str) -> list[Member]:
        _session, sep, path = name.partition("/")
        return list(self._simplified_names.get(path, ())) if sep else []

    def _improved(self, name: str) -> list[Member]:
        parts = name.split("/")
        if len(parts) < 3:
            return []
        category = parts[0]
        readings: list[tuple[str, str, str]] = []  # (segment, label, tail)
        if category in OWNER_COLLECTIONS or category == "resources":
            if len(parts) >= 4:
                readings.append((parts[1], parts[2], _join(parts, 3)))
            if category == "resources":
                readings.append(("", parts[1], _join(parts, 2)))
        out = []
        for segment, label, tail in readings:
            for owner in self._owners.get(category, ()):
                if segment != owner and not segment.startswith(owner + "_"):
                    continue
                for m in self._improved_tails.get((category, owner, label, tail), ()):
                    if improved_name(m, segment) == name:
                        out.append(m)
        return out


def _join(parts: list[str], start: int) -> str:
    return "/".join(parts[start:])


def _preimages(rest: str, owner: str, segment: str) -> list[str]:
    """Every path inside the resource that XNAT's rewrite of `/<owner>/` to `/<segment>/` turns
    into `rest`: each `/<segment>/` occurrence was either written so or rewritten."""
    if segment == owner:
        return [rest]
    pieces = ("/" + rest).split(f"/{segment}/")
    n = len(pieces) - 1
    if n > _MAX_REWRITES:
        return []
    out = []
    for choice in itertools.product((f"/{segment}/", f"/{owner}/"), repeat=n):
        joined = pieces[0] + "".join(c + p for c, p in zip(choice, pieces[1:], strict=True))
        out.append(joined[1:])
    return out
