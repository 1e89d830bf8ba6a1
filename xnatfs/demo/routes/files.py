"""Route handlers for file listings, single files (with optional Range) and archives.

The handler runs with `Site.lock` held while it selects catalogs; the body it returns streams
file contents later, without the lock, so it holds only immutable `DemoFile`s.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Iterator
from urllib.parse import unquote

from xnatfs.demo import archives, listings
from xnatfs.demo.content import DemoFile
from xnatfs.demo.faults import corrupted
from xnatfs.demo.listings import Catalog, Scope
from xnatfs.demo.model import CatalogEntry
from xnatfs.demo.routes.resolve import require_match, resolve
from xnatfs.demo.routes.tables import csv_table, result_set
from xnatfs.demo.wire import JSON, DemoContext, HttpError, Request, Response


def files(ctx: DemoContext, req: Request, v: dict[str, str]) -> Response:
    """`.../files[/PATH]` of any owner: the file listing, one file (`PATH`), a folder listing
    (`PATH` ending in `/`) or an archive (`format=zip|tar|tar.gz`); 404 if nothing matches."""
    scope = resolve(ctx, req, v)
    require_match(scope)
    scope.all_resources = req.query.get("all", "").lower() == "true"
    cats = listings.selected_catalogs(scope, v.get("RES"))
    fmt = req.query.get("format", "json").lower()
    if "PATH" in v:
        # Reference §5.2: XNAT decodes only paths containing %20/%2B; decoding every escape
        # is a superset that accepts each URI a client can build from a listing.
        rel = unquote(v["PATH"].split("?", 1)[0])
        if rel.endswith("/"):
            return _file_rows(ctx, req, scope, cats, prefix=rel)
        return _single_file(ctx, req, cats, rel)
    if fmt in ("zip", "tar", "tar.gz"):
        return _archive(ctx, req, scope, cats, fmt)
    return _file_rows(ctx, req, scope, cats)


def _file_rows(
    ctx: DemoContext, req: Request, scope: Scope, cats: list[Catalog], prefix: str = ""
) -> Response:
    single = len(cats) == 1
    selected = [
        (cat, entry, listings.single_catalog_base(scope, cat) if single else cat.base)
        for cat in cats
        for entry in cat.resource.files.values()
        if entry.path.startswith(prefix)
    ]
    csv = req.query.get("format", "").lower() == "csv"

    def body() -> Iterator[bytes]:
        # Runs while the response is sent, without the site lock: digests of freshly generated
        # series take a while, and other requests should not wait for them.
        rows = [listings.file_row(cat, entry, base) for cat, entry, base in selected]
        if csv:
            yield csv_table(rows)
        else:
            yield result_set(rows, total=False, title="Files",
                                      server_root=req.context_path)  # fmt: skip

    return Response(200, body(), "text/csv" if csv else JSON)


def _file_uri(cat: Catalog, entry: CatalogEntry) -> str:
    return f"{cat.base}/resources/{cat.resource.id}/files/{entry.path}"


_MEDIA_TYPES = {
    "bmp": "image/bmp", "gif": "image/gif", "html": "text/html", "jpg": "image/jpeg",
    "jpeg": "image/jpeg", "pdf": "application/pdf", "png": "image/png", "svg": "image/svg+xml",
    "tiff": "image/tiff", "txt": "text/plain", "xml": "text/xml",
}  # fmt: skip


def _body(data: DemoFile, start: int, end: int, corrupt: bool) -> Iterator[bytes]:
    for chunk in data.chunks(start, end):
        yield corrupted(chunk) if corrupt else chunk


def _single_file(ctx: DemoContext, req: Request, cats: list[Catalog], rel: str) -> Response:
    for cat in cats:
        entry = cat.resource.files.get(rel)
        if entry is not None:
            break
    else:
        raise HttpError(404, "Unable to find catalog entry for given uri.")
    data = entry.data
    size = data.size
    corrupt = ctx.faults.is_corrupt(_file_uri(cat, entry), req.full_path)
    ext = entry.name.rsplit(".", 1)[-1].lower() if "." in entry.name else ""
    headers = [
        ("Last-Modified", email.utils.formatdate(data.mtime, usegmt=True)),
        ("Content-Disposition", f'attachment; filename="{entry.name}";'),
        ("Cache-Control", "must-revalidate"),
    ]
    status, start, end = 200, 0, size
    if ctx.faults.range_support:
        headers.append(("Accept-Ranges", "bytes"))
        last_modified = headers[0][1]
        if_range = req.headers.get("If-Range")
        # RFC 9110 §13.1.5: a validator that no longer matches means "send it all".
        stale = if_range is not None and if_range.strip() != last_modified
        wanted = None if stale else _parse_range(req.headers.get("Range"), size)
        if wanted == "invalid":
            return Response(416, b"", None, [("Content-Range", f"bytes */{size}")])
        if isinstance(wanted, tuple):
            status, (start, end) = 206, wanted
            headers.append(("Content-Range", f"bytes {start}-{end - 1}/{size}"))
    return Response(
        status,
        _body(data, start, end, corrupt),
        _MEDIA_TYPES.get(ext, "application/octet-stream"),
        headers,
        length=end - start,
    )


def _parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """One `bytes=a-b` / `a-` / `-n` range as [start, end); None to ignore; "invalid" -> 416."""
    if not header:
        return None
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not m or (not m.group(1) and not m.group(2)):
        return None  # multiple or malformed ranges: serve the whole file
    if not m.group(1):
        n = int(m.group(2))
        return (max(0, size - n), size) if n else "invalid"
    start = int(m.group(1))
    end = min(int(m.group(2)) + 1, size) if m.group(2) else size
    if start >= size or end <= start:
        return "invalid"
    return start, end


def _archive_name(scope: Scope) -> str:
    if scope.experiment is not None:
        return scope.experiment.label
    if scope.subject is not None:
        return scope.subject.label
    assert scope.project is not None
    return scope.project.id


def _archive(
    ctx: DemoContext, req: Request, scope: Scope, cats: list[Catalog], fmt: str
) -> Response:
    structure = ctx.faults.zip_structure or req.query.get("structure", "")
    is_tar = fmt != "zip"
    members: list[tuple[str, DemoFile]] = []
    for cat in cats:
        for entry in cat.resource.files.values():
            data = entry.data
            if ctx.faults.is_corrupt(_file_uri(cat, entry)):
                data = _CorruptFile(data)
            members.append((listings.archive_path(cat, entry, structure, tar=is_tar), data))
    if not members:
        raise HttpError(404, "No matching files found.")
    name = _archive_name(scope)
    if fmt == "zip":
        body, ctype = archives.coalesce(archives.zip_stream(members)), "application/zip"
    else:
        body = archives.coalesce(archives.tar_stream(members, gzip=fmt == "tar.gz"))
        ctype = "application/x-gtar" if fmt == "tar.gz" else "application/x-tar"
    headers = [("Content-Disposition", f'attachment; filename="{name}.{fmt}";')]
    return Response(200, body, ctype, headers, kind="zip")


class _CorruptFile(DemoFile):
    def __init__(self, inner: DemoFile) -> None:
        self._inner = inner
        self.mtime = inner.mtime

    @property
    def size(self) -> int:
        return self._inner.size

    def read(self, offset: int, length: int) -> bytes:
        return corrupted(self._inner.read(offset, length))
