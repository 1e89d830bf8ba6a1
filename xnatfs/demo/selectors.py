"""XNAT's selector semantics for the scan, reconstruction, assessor and resource path segments.

Reference: xnat-rest-api.md §3. Summary:

* scans / reconstructions: the segment is URL-decoded (`+` is a space), `[SLASH]` becomes `/`
  (scans only), then split on `,`; in each token `[COMMA]` is a literal comma. A token matches
  every scan whose ID **or** type equals it; `ALL` / `*` match all, `NULL` matches scans without
  a type. An empty match is not an error for GET (the caller decides).
* assessors: comma list of accession IDs, labels, `ALL` / `*`, or an xsi:type.
* resources: split on `\\s*,\\s*`; all-digit tokens are resource IDs, `NULL` (any case) is "no
  label", anything else a label. There is no `ALL` keyword for resources.

Results keep the owner's order and contain each object once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TypeVar
from urllib.parse import unquote, unquote_plus

from xnatfs.demo.model import Assessor, Reconstruction, Resource, Scan

T = TypeVar("T", Scan, Reconstruction, Assessor, Resource)

_ALL = ("ALL", "*")


def decode_segment(raw: str) -> str:
    """Percent-decoding for path segments XNAT reads raw (project, subject, experiment,
    resource): `%XX` only, `+` stays a plus."""
    return unquote(raw)


def scan_tokens(raw: str, *, slash: bool = True) -> list[str]:
    """The tokens of a scan (or, with `slash=False`, reconstruction) selector segment."""
    text = unquote_plus(raw)
    if slash:
        text = text.replace("[SLASH]", "/")
    return [t.replace("[COMMA]", ",") for t in text.split(",")]


def _unique(items: Iterable[T]) -> list[T]:
    seen: set[int] = set()
    out: list[T] = []
    for item in items:
        if id(item) not in seen:
            seen.add(id(item))
            out.append(item)
    return out


def _match_id_or_type(
    items: Sequence[Scan] | Sequence[Reconstruction], tokens: list[str]
) -> list[T]:
    wanted: list[T] = []
    for token in tokens:
        for item in items:
            if (
                token in _ALL
                or (token == "NULL" and not item.type)
                or item.id == token
                or (item.type and item.type == token)
            ):
                wanted.append(item)  # type: ignore[arg-type]
    order = {id(item): i for i, item in enumerate(items)}
    return sorted(_unique(wanted), key=lambda x: order[id(x)])


def match_scans(scans: Sequence[Scan], raw: str) -> list[Scan]:
    return _match_id_or_type(scans, scan_tokens(raw))


def match_reconstructions(recons: Sequence[Reconstruction], raw: str) -> list[Reconstruction]:
    return _match_id_or_type(recons, scan_tokens(raw, slash=False))


def match_assessors(assessors: Sequence[Assessor], raw: str) -> list[Assessor]:
    """Assessors of one session by accession ID, label, `ALL`/`*`, or xsi:type."""
    wanted: list[Assessor] = []
    for token in decode_segment(raw).split(","):
        if token in _ALL:
            wanted.extend(assessors)
            continue
        by_name = [a for a in assessors if token in (a.id, a.label)]
        wanted.extend(by_name or [a for a in assessors if a.xsi_type == token])
    order = {id(a): i for i, a in enumerate(assessors)}
    return sorted(_unique(wanted), key=lambda x: order[id(x)])


def resource_tokens(raw: str) -> tuple[set[int], set[str]]:
    """(IDs, labels) named by a resource selector; the empty label stands for `NULL`."""
    ids: set[int] = set()
    labels: set[str] = set()
    for token in re.split(r"\s*,\s*", decode_segment(raw).strip()):
        if token.isdigit():
            ids.add(int(token))
        elif token.upper() == "NULL":
            labels.add("")
        else:
            labels.add(token)
    return ids, labels


def match_resources(resources: Sequence[Resource], raw: str) -> list[Resource]:
    """`id IN (...) OR label IN (...)`, exact and case-sensitive, as XNAT's SQL does."""
    ids, labels = resource_tokens(raw)
    return [r for r in resources if r.id in ids or r.label in labels]
