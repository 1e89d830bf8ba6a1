"""URL pieces for XNAT's `/data` API. Pure functions, no I/O.

Requests that xnatfs builds itself use IDs (project ID, accession IDs, scan IDs,
`xnat_abstractresource_id`), never labels, so the strings passed here are the values found in
listings. Every helper returns text that is already percent-encoded and can be appended to the
base URL as is.

Encoding rules (what XNAT decodes, see the REST reference §3.1 and §5.2):
- a space is `%20`, never `+`; a `+` is `%2B` (XNAT's decoder turns `+` into a space);
- `/` inside one segment is `%2F` (in a scan/reconstruction selector it is `[SLASH]` instead,
  because Tomcat rejects `%2F` there);
- `;` is encoded (Tomcat cuts path parameters at `;`), and so are `[`, `]`, `%`, `?`, `#`;
- RFC 3986 sub-delimiters that XNAT uses literally stay as they are: `,` separates selector
  tokens and `:` appears in xsi types such as `fs:fsData`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import quote

from xnatfs.errors import ProtocolError

# Characters left unencoded inside one path segment besides the unreserved ones.
_SEGMENT_SAFE = "!$&'()*,:=@"

_RESOURCE_FILES = re.compile(r"^.*?/resources/[^/]+/files/")
_FILE_URI = re.compile(r"^(?P<owner>.*?)/resources/(?P<rid>[^/]+)/files/(?P<rel>.+)$")


def quote_segment(value: str) -> str:
    """Percent-encode one path segment: `"a b+c/d"` -> `"a%20b%2Bc%2Fd"`.

    Bytes that were not UTF-8 in a listing (kept as surrogate escapes) are sent back as they
    came: `"\udcff.dcm"` -> `"%FF.dcm"`. Text that has no bytes at all (a lone surrogate from a
    JSON escape) raises UnicodeEncodeError; such names are never listed.
    """
    return quote(value, safe=_SEGMENT_SAFE, errors="surrogateescape")


def selector(tokens: Sequence[str]) -> str:
    """One scan/reconstruction selector segment from its tokens (scan IDs, types, `ALL`).

    Tokens are joined with `,`; a `/` inside a token becomes `[SLASH]` and a `,` inside a token
    becomes `[COMMA]` (XNAT's own escapes), then the segment is percent-encoded.
    `selector(["1", "T1/FLAIR"])` -> `"1,T1%5BSLASH%5DFLAIR"`.
    """
    if not tokens:
        raise ValueError("a selector needs at least one token")
    escaped = (t.replace("/", "[SLASH]").replace(",", "[COMMA]") for t in tokens)
    return quote_segment(",".join(escaped))


def file_url_path(uri: str) -> str:
    """A listing `URI` (not percent-encoded by XNAT) -> a request path, each segment encoded.

    `"/data/experiments/E1/scans/1/resources/7/files/sub dir/a b.dcm"` ->
    `"/data/experiments/E1/scans/1/resources/7/files/sub%20dir/a%20b.dcm"`.
    """
    if not uri.startswith("/"):
        raise ProtocolError(f"file URI does not start with '/': {uri!r}")
    return "/".join(quote_segment(part) for part in uri.split("/"))


def relative_file_path(uri: str) -> str:
    """The file's path inside its resource: everything after `/resources/<id>/files/`.

    Sub-folders are kept (`".../files/sub/a.dcm"` -> `"sub/a.dcm"`). The first
    `/resources/<id>/files/` is the one that ends the owner part, so a sub-folder that happens to
    be named `resources` stays in the result.
    """
    m = _RESOURCE_FILES.match(uri)
    if m is None or m.end() == len(uri):
        raise ProtocolError(f"not a resource file URI: {uri!r}")
    return uri[m.end() :]


def split_file_uri(uri: str) -> tuple[str, str, str] | None:
    """`(owner path, resource ID, path inside the resource)` of a file URI, or None.

    `"/data/experiments/E1/scans/1/resources/7/files/sub/a.dcm"` ->
    `("/data/experiments/E1/scans/1", "7", "sub/a.dcm")`. The first `/resources/<id>/files/`
    ends the owner part, as in `relative_file_path`.
    """
    m = _FILE_URI.match(uri)
    if m is None:
        return None
    return m.group("owner"), m.group("rid"), m.group("rel")


def canonical_file_uri(uri: str, collection: str, owner: str) -> str:
    """`uri` naming `owner` where XNAT wrote a comma list of owner IDs.

    A type selector that matches several scans of which one has the resource makes XNAT write
    the matched IDs comma-joined into each row's URI (`scans/2,11/resources/...`, reference
    §3.5). The file belongs to exactly one of them, the owner of its resource; naming that one
    gives every path to the file one URI, so one cache entry, and a GET that cannot reach
    another scan's file. Other URIs are returned unchanged.
    """
    parts = split_file_uri(uri)
    if parts is None:
        return uri
    owner_path, rid, rel = parts
    segs = owner_path.split("/")
    for i in range(len(segs) - 2, 0, -1):
        if segs[i] == collection and "," in segs[i + 1]:
            if owner not in segs[i + 1].split(","):
                return uri
            segs[i + 1] = owner
            return f"{'/'.join(segs)}/resources/{rid}/files/{rel}"
    return uri


def scan_id_from_uri(uri: str, collection: str = "scans") -> str | None:
    """The owner ID that follows `/<collection>/` in a files-row `URI`, or None.

    `collection` is `scans`, `reconstructions` or `assessors`; reconstruction and assessor URIs
    carry an `/in/` or `/out/` segment before `/resources/`, which is skipped. XNAT may report a
    comma list (`scans/1,2/...`) when a type selector matched several scans but one resource; the
    segment is returned as it stands.
    """
    pattern = rf"/{re.escape(collection)}/([^/]+)/(?:(?:in|out)/)?resources/[^/]+/files/"
    m = re.search(pattern, uri)
    return m.group(1) if m else None


# -- every REST path the mount builds (REST reference §1.2, §1.3; IDs only, never labels) -------


def projects_path() -> str:
    """`/data/projects`: the projects the user can read."""
    return "/data/projects"


def project_path(project: str) -> str:
    """`/data/projects/P`: a project by ID (the owner of project resources)."""
    return f"/data/projects/{quote_segment(project)}"


def subjects_path(project: str) -> str:
    """`/data/projects/P/subjects`: the subjects listing of a project."""
    return f"{project_path(project)}/subjects"


def subject_path(project: str, subject: str) -> str:
    """`/data/projects/P/subjects/S`: a subject by accession ID (owner of subject resources)."""
    return f"{subjects_path(project)}/{quote_segment(subject)}"


def experiments_path(project: str, subject: str) -> str:
    """The experiments (sessions) listing of a subject."""
    return f"{subject_path(project, subject)}/experiments"


def experiment_path(experiment: str) -> str:
    """`/data/experiments/E`: an experiment by accession ID (owner of session resources)."""
    return f"/data/experiments/{quote_segment(experiment)}"


def collection_path(experiment: str, collection: str) -> str:
    """The `scans`, `reconstructions` or `assessors` listing of an experiment."""
    return f"{experiment_path(experiment)}/{collection}"


def owner_path(experiment: str, collection: str, tokens: Sequence[str]) -> str:
    """One scan, reconstruction or assessor, or a server-side selector over them (`ALL`, types,
    comma lists). Reconstructions and assessors name the `out` side explicitly: it is XNAT's
    default, and the file URIs it returns carry `/out/` too (reference §1.3)."""
    base = f"{collection_path(experiment, collection)}/{selector(tokens)}"
    return base if collection == "scans" else f"{base}/out"


def resources_path(owner: str) -> str:
    """The resources listing of an owner path."""
    return f"{owner}/resources"


def resource_files_path(owner: str, resource_ids: Sequence[str]) -> str:
    """The files listing of one or more resources (by `xnat_abstractresource_id`) of an owner
    path; several resources are one comma-joined segment (one request for all of them)."""
    return f"{owner}/resources/{','.join(quote_segment(r) for r in resource_ids)}/files"
