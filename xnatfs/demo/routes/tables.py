"""Table responses: the query parameters XNAT's listings accept and the envelope it writes.

`table` and `query_table` build the `Response` of a listing route from rows made by
`xnatfs.demo.listings`; `select`, `result_set` and `csv_table` are the pure parts (reference
§2.1). Listings are sent chunked, as XNAT streams them.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping, Sequence

from xnatfs.demo.listings import Row
from xnatfs.demo.wire import JSON, Request, Response


def table(
    req: Request, rows: list[Row], *, total: bool = True, title: str | None = None
) -> Response:
    """`rows` as a ResultSet (or CSV with `format=csv`), sent chunked; `total` adds
    `totalRecords`, `title` the ResultSet's title."""
    if req.query.get("format", "json").lower() == "csv":
        return Response(200, csv_table(rows), "text/csv", chunked=True)
    return Response(200, result_set(rows, total=total, title=title), JSON, chunked=True)


def query_table(
    req: Request,
    rows: list[Row],
    default_columns: list[str],
    *,
    pageable: bool = False,
    title: str | None = None,
) -> Response:
    """`table` after the request's `columns=`, filters, sorting and (if `pageable`) paging;
    a paged answer has no `totalRecords`."""
    known = list(rows[0]) if rows else [*default_columns, "URI"]
    selected, paged = select(rows, default_columns, req.query, pageable=pageable, known=known)
    return table(req, selected, total=not paged, title=title)


# Parameters that never act as column filters.
_RESERVED = {"format", "columns", "sortBy", "sortOrder", "limit", "offset", "all", "structure",
             "compression", "accept-not-found", "cache_file_stats", "locator", "XNAT_CSRF",
             "file_format", "file_content", "index", "recursive", "CSRF", "xsiType"}  # fmt: skip


def select(
    rows: list[Row],
    default_columns: Sequence[str],
    params: Mapping[str, str],
    *,
    pageable: bool = False,
    known: Sequence[str] | None = None,
) -> tuple[list[Row], bool]:
    """Apply `columns=`, column filters, `sortBy`/`sortOrder` and (if `pageable`) `limit`/
    `offset`, as XNAT's QueryOrganizer listings do. Returns (rows, paged)."""
    available = list(known) if known is not None else list(rows[0]) if rows else []
    for key, value in params.items():
        if key in _RESERVED or key not in available or value == "":
            continue
        alternatives = [re.escape(v).replace(r"\*", ".*").replace("%", ".*")
                        for v in value.split(",")]  # fmt: skip
        pattern = re.compile("|".join(f"(?:{a})" for a in alternatives), re.IGNORECASE)
        rows = [r for r in rows if pattern.fullmatch(r.get(key, ""))]
    requested = params.get("columns", "")
    if requested and requested.upper() != "DEFAULT":
        wanted = [c for c in requested.split(",") if c in available]  # unknown names ignored
        columns = ["ID", *[c for c in wanted if c not in ("ID", "URI")], "URI"]
    else:
        columns = [*default_columns, "URI"]
    rows = [{c: r.get(c, "") for c in columns if c in r} for r in rows]
    sort_by = params.get("sortBy")
    if sort_by:
        keys = [k for k in sort_by.split(",") if k]
        rows.sort(key=lambda r: [r.get(k, "") for k in keys],
                  reverse=params.get("sortOrder", "").upper() == "DESC")  # fmt: skip
    paged = pageable and ("limit" in params or "offset" in params)
    if paged:
        limit_text = params.get("limit", "100")
        offset_text = params.get("offset", "0")
        offset = int(offset_text) if offset_text.isdigit() else 0
        if limit_text == "*":
            rows = rows[offset:]
        else:
            limit = int(limit_text) if limit_text.isdigit() else 100
            rows = rows[offset : offset + limit]
    return rows, paged


def result_set(
    rows: list[Row],
    *,
    total: bool = True,
    title: str | None = None,
    server_root: str | None = None,
) -> bytes:
    """The exact envelope XNAT's JSONTableRepresentation writes (reference §2.1)."""
    for row in rows:
        assert all(isinstance(v, str) for v in row.values()), row
    head = '{"ResultSet":{'
    if server_root is not None:
        head += '"Columns":' + json.dumps([{"key": "URI", "serverRoot": server_root}],
                                          separators=(",", ":")) + ","  # fmt: skip
    meta = []
    if total:
        meta.append(f'"totalRecords": {json.dumps(str(len(rows)))}')
    if title is not None:
        meta.append(f'"title": {json.dumps(title)}')
    body = head + '"Result":' + json.dumps(rows, separators=(",", ":"))
    if meta:
        body += ", " + ",".join(meta)
    return (body + "}}").encode("utf-8")


def csv_table(rows: list[Row]) -> bytes:
    """`rows` as CSV with a header line (`format=csv`); empty when there are no rows."""
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue().encode("utf-8")
