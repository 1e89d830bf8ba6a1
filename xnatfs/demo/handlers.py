"""The routing table of the demo server and one handler per kind of request.

Templates are matched against the path below the context path, after `/REST` and
`/data/archive` have been folded into `/data` (XNAT attaches every archive route twice, reference
§1.1). `{X}` matches one path segment, `{PATH}` the rest of the path, `{T}` is `in` or `out`.
Handlers run with `Site.lock` held while they read the model; bodies that stream file contents
(files, archives) only hold immutable `DemoFile`s and run without it.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote

from xnatfs.demo import items, listings, selectors, zipstream
from xnatfs.demo.content import DemoFile
from xnatfs.demo.faults import Kind, corrupted
from xnatfs.demo.listings import Catalog, Scope
from xnatfs.demo.model import CatalogEntry, Experiment, Project
from xnatfs.demo.wire import HttpError, Request, Response, restlet_page

if TYPE_CHECKING:
    from xnatfs.demo.server import DemoApp

Handler = Callable[["DemoApp", Request, dict[str, str]], Response]

JSON = "application/json"
BUILD_INFO = {
    "version": "1.8.10",
    "buildNumber": "demo",
    "buildDate": "Tue Jan 09 10:00:00 UTC 2024",
    "sha": "d3m0",
    "isDirty": "false",
    "branch": "demo",
    "commit": "d3m0",
    "tag": "1.8.10",
}


@dataclass(frozen=True)
class Route:
    pattern: re.Pattern[str]
    handler: Handler
    kind: Kind
    methods: frozenset[str] = frozenset({"GET", "HEAD"})
    auth: bool = True


_VAR = {"PATH": r"(?P<PATH>.+)", "T": r"(?P<T>in|out)"}


def _compile(template: str) -> re.Pattern[str]:
    regex = re.sub(
        r"\{(\w+)\}", lambda m: _VAR.get(m.group(1), rf"(?P<{m.group(1)}>[^/]+)"), template
    )
    return re.compile(regex)


# --- scope resolution ---------------------------------------------------------------------------


def _readable(app: DemoApp, project: Project, user: str, what: str = "data") -> None:
    if not project.readable_by(user):
        raise HttpError(403, f"Unable to read {what} for Project: {project.id}")


def resolve(app: DemoApp, req: Request, v: dict[str, str], *, what: str = "data") -> Scope:
    """Turn the path variables into model objects, enforcing visibility (404) and read
    permission (403) the way XNAT does for private and protected projects. Only the project
    item itself (`what=""`) may be read without read permission on the project's data."""
    site, user = app.site, req.user
    scope = Scope(path_has_project="P" in v, path_has_subject="S" in v)
    project: Project | None = None
    if "P" in v:
        project = site.project(selectors.decode_segment(v["P"]))
        if project is None or not project.visible_to(user):
            raise HttpError(404, "Unable to identify project")
        scope.project = project
        if what:
            _readable(app, project, user, what)
    if "S" in v:
        ref = selectors.decode_segment(v["S"])
        if project is not None:
            subject = site.find_subject(project, ref)
        else:
            subject = site.subject_by_id(ref)
            if subject is not None:
                owner = site.project(subject.project)
                assert owner is not None
                if not owner.visible_to(user):
                    subject = None
                else:
                    _readable(app, owner, user, "subjects")
                    scope.project = owner
        if subject is None:
            raise HttpError(404, "Unable to identify subject")
        scope.subject = subject
    if "E" in v:
        ref = selectors.decode_segment(v["E"])
        exp: Experiment | None
        if project is not None:
            exp = site.find_experiment(project, ref)
            if exp is not None and exp.project != project.id:
                exp = None
        else:
            exp = site.experiment_by_id(ref)
            if exp is None and (found := site.assessor_by_id(ref)) is not None:
                # /data/experiments/{ASSESSOR_ID}: the assessor itself, resources default "out".
                exp, assessor = found
                scope.assessors = [assessor]
        if exp is not None and scope.subject is not None and exp.subject_id != scope.subject.id:
            exp = None
        if exp is not None and project is None:
            owner = site.project(exp.project)
            assert owner is not None
            if not owner.visible_to(user):
                exp = None
            else:
                _readable(app, owner, user, "experiments")
                scope.project = owner
        if exp is None:
            raise HttpError(404, "Unable to find the specified experiment.")
        scope.experiment = exp
        if scope.subject is None:
            scope.subject = site.subject_by_id(exp.subject_id)
    exp = scope.experiment
    if exp is not None:
        if "SC" in v:
            scope.scans = selectors.match_scans(list(exp.scans.values()), v["SC"])
        if "R" in v:
            scope.recons = selectors.match_reconstructions(
                list(exp.reconstructions.values()), v["R"]
            )
        if "A" in v:
            scope.assessors = selectors.match_assessors(list(exp.assessors.values()), v["A"])
    if v.get("T", "out").lower() == "in":
        scope.direction = "in"
    return scope


def _require_match(scope: Scope) -> None:
    for found, what in ((scope.scans, "scan"), (scope.recons, "reconstruction"),
                        (scope.assessors, "assessor")):  # fmt: skip
        if found is not None and not found:
            raise HttpError(404, f"Unable to identify {what}")


def _selected_catalogs(scope: Scope, v: dict[str, str]) -> list[Catalog]:
    cats = listings.catalogs(scope)
    if "RES" in v:
        chosen = {id(r) for r in selectors.match_resources([c.resource for c in cats], v["RES"])}
        cats = [c for c in cats if id(c.resource) in chosen]
    return cats


# --- listings -----------------------------------------------------------------------------------


def _table(req: Request, rows: list[listings.Row], **meta: object) -> Response:
    if req.query.get("format", "json").lower() == "csv":
        return Response(200, listings.csv_table(rows), "text/csv", chunked=True)
    return Response(200, listings.result_set(rows, **meta), JSON, chunked=True)  # type: ignore[arg-type]


def _query_table(
    req: Request,
    rows: list[listings.Row],
    default_columns: list[str],
    *,
    pageable: bool = False,
    title: str | None = None,
) -> Response:
    known = list(rows[0]) if rows else [*default_columns, "URI"]
    selected, paged = listings.select(rows, default_columns, req.query, pageable=pageable,
                                      known=known)  # fmt: skip
    return _table(req, selected, total=not paged, title=title)


def projects(app: DemoApp, req: Request, v: dict[str, str]) -> Response:
    rows = [listings.project_row(p) for p in app.site.projects.values() if p.visible_to(req.user)]
    return _query_table(req, rows, listings.PROJECT_COLUMNS)


def subjects(app: DemoApp, req: Request, v: dict[str, str]) -> Response:
    if "P" in v:
        scope = resolve(app, req, v, what="subjects")
        assert scope.project is not None
        found = list(scope.project.subjects.values())
    else:
        found = [s for s in app.site.subjects() if _project_readable(app, s.project, req.user)]
    rows = [listings.subject_row(s) for s in found]
    return _query_table(req, rows, listings.SUBJECT_COLUMNS, pageable=True)


def _project_readable(app: DemoApp, project_id: str, user: str) -> bool:
    project = app.site.project(project_id)
    return project is not None and project.readable_by(user)


def experiments(app: DemoApp, req: Request, v: dict[str, str]) -> Response:
    scope = resolve(app, req, v, what="experiments")
    assert scope.project is not None
    subjects_ = [scope.subject] if scope.subject else list(scope.project.subjects.values())
    rows = [listings.experiment_row(e) for s in subjects_ for e in s.experiments.values()]
    return _query_table(req, rows, listings.EXPERIMENT_COLUMNS, pageable=True)


def site_experiments(app: DemoApp, req: Request, v: dict[str, str]) -> Response:
    """`/data/experiments`: every readable experiment, image assessors included."""
    rows: list[listings.Row] = []
    for e in app.site.experiments():
        if not _project_readable(app, e.project, req.user):
            continue
        rows.append(listings.experiment_row(e))
        rows += [listings.assessor_row(a, e) | {"URI": f"/data/experiments/{a.id}"}
                 for a in e.assessors.values()]  # fmt: skip
    wanted = req.query.get("xsiType")
    if wanted:
        rows = [r for r in rows if r["xsiType"] == wanted]
    return _query_table(req, rows, listings.SITE_EXPERIMENT_COLUMNS, pageable=True,
                        title="Matching experiments")  # fmt: skip


def scans(app: DemoApp, req: Request, v: dict[str, str]) -> Response:
    exp = resolve(app, req, v).experiment
    assert exp is not None
    rows = [listings.scan_row(s, exp) for s in exp.scans.values()]
    return _query_table(req, rows, listings.SCAN_COLUMNS)


def reconstructions(app: DemoApp, req: Request, v: dict[str, str]) -> Response:
    exp = resolve(app, req, v).experiment
    assert exp is not None
    rows = [listings.recon_row(r, exp) for r in exp.reconstructions.values()]
    return _query_table(req, rows, listings.RECON_COLUMNS)


def assessors(app: DemoApp, req: Request, v: dict[str, str]) -> Response:
    exp = resolve(app, req, v).experiment
    assert exp is not None
    rows = [listings.assessor_row(a, exp) for a in exp.assessors.values()]
    return _query_table(req, rows, listings.ASSESSOR_COLUMNS)


def resources(app: DemoApp, req: Request, v: dict[str, str]) -> Response:
    scope = resolve(app, req, v)
    _require_match(scope)
    scope.all_resources = req.query.get("all", "").lower() == "true"
    rows = [listings.resource_row(c) for c in listings.catalogs(scope)]
    return _table(req, rows, total=True, title="Resources")


# --- items --------------------------------------------------------------------------------------


def item(app: DemoApp, req: Request, v: dict[str, str]) -> Response:
    """A single object (`?format=json` gives XNAT's "items" document)."""
    scope = resolve(app, req, v, what="" if set(v) == {"P"} else "data")
    _require_match(scope)
    doc = items.item_document(app.site, scope, v)
    if doc is None:
        raise HttpError(404)
    fmt = req.query.get("format", "json").lower()
    if fmt == "xml":
        return Response(200, items.to_xml(doc), "text/xml")
    return Response(200, json.dumps(doc).encode(), JSON)


# --- files, single files, archives -------------------------------------------------------------


def files(app: DemoApp, req: Request, v: dict[str, str]) -> Response:
    scope = resolve(app, req, v)
    _require_match(scope)
    scope.all_resources = req.query.get("all", "").lower() == "true"
    cats = _selected_catalogs(scope, v)
    fmt = req.query.get("format", "json").lower()
    if "PATH" in v:
        # Reference §5.2: XNAT decodes only paths containing %20/%2B; decoding every escape
        # is a superset that accepts each URI a client can build from a listing.
        rel = unquote(v["PATH"].split("?", 1)[0])
        if rel.endswith("/"):
            return _file_rows(app, req, scope, cats, prefix=rel)
        return _single_file(app, req, cats, rel)
    if fmt in ("zip", "tar", "tar.gz"):
        return _archive(app, req, scope, cats, fmt)
    return _file_rows(app, req, scope, cats)


def _file_rows(
    app: DemoApp, req: Request, scope: Scope, cats: list[Catalog], prefix: str = ""
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
            yield listings.csv_table(rows)
        else:
            yield listings.result_set(rows, total=False, title="Files",
                                      server_root=req.context_path)  # fmt: skip

    return Response(200, body(), "text/csv" if csv else JSON)


def _file_uri(cat: Catalog, entry: CatalogEntry) -> str:
    return f"{cat.base}/resources/{cat.resource.id}/files/{entry.path}"


_MEDIA_TYPES = {
    "bmp": "image/bmp", "gif": "image/gif", "html": "text/html", "jpg": "image/jpeg",
    "jpeg": "image/jpeg", "pdf": "application/pdf", "png": "image/png", "svg": "image/svg+xml",
    "tiff": "image/tiff", "txt": "text/plain", "xml": "text/xml",
}  # fmt: skip


def _body(app: DemoApp, data: DemoFile, start: int, end: int, corrupt: bool) -> Iterator[bytes]:
    for chunk in data.chunks(start, end):
        yield corrupted(chunk) if corrupt else chunk


def _single_file(app: DemoApp, req: Request, cats: list[Catalog], rel: str) -> Response:
    for cat in cats:
        entry = cat.resource.files.get(rel)
        if entry is not None:
            break
    else:
        raise HttpError(404, "Unable to find catalog entry for given uri.")
    data = entry.data
    size = data.size
    corrupt = app.faults.is_corrupt(_file_uri(cat, entry), req.full_path)
    ext = entry.name.rsplit(".", 1)[-1].lower() if "." in entry.name else ""
    headers = [
        ("Last-Modified", email.utils.formatdate(data.mtime, usegmt=True)),
        ("Content-Disposition", f'attachment; filename="{entry.name}";'),
        ("Cache-Control", "must-revalidate"),
    ]
    status, start, end = 200, 0, size
    if app.faults.range_support:
        headers.append(("Accept-Ranges", "bytes"))
        wanted = _parse_range(req.headers.get("Range"), size)
        if wanted == "invalid":
            return Response(416, b"", None, [("Content-Range", f"bytes */{size}")])
        if isinstance(wanted, tuple):
            status, (start, end) = 206, wanted
            headers.append(("Content-Range", f"bytes {start}-{end - 1}/{size}"))
    return Response(
        status,
        _body(app, data, start, end, corrupt),
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


def _archive(app: DemoApp, req: Request, scope: Scope, cats: list[Catalog], fmt: str) -> Response:
    structure = req.query.get("structure", "")
    is_tar = fmt != "zip"
    members: list[tuple[str, DemoFile]] = []
    for cat in cats:
        for entry in cat.resource.files.values():
            data = entry.data
            if app.faults.is_corrupt(_file_uri(cat, entry)):
                data = _CorruptFile(data)
            members.append((listings.archive_path(cat, entry, structure, tar=is_tar), data))
    if not members:
        raise HttpError(404, "No matching files found.")
    name = _archive_name(scope)
    if fmt == "zip":
        body, ctype = zipstream.coalesce(zipstream.zip_stream(members)), "application/zip"
    else:
        body = zipstream.coalesce(zipstream.tar_stream(members, gzip=fmt == "tar.gz"))
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


# --- sessions, tokens, site info ---------------------------------------------------------------


def jsession(app: DemoApp, req: Request, v: dict[str, str]) -> Response:
    if req.method == "DELETE":
        if req.session_id:
            app.auth.drop_session(req.session_id)
        return Response(200, b"", "text/plain")
    sid = req.session_id or ""
    return Response(200, sid.encode(), "text/plain")


def services_auth(app: DemoApp, req: Request, v: dict[str, str]) -> Response:
    """PUT/POST form `username`/`password`: a new session, its ID as the body."""
    if req.method not in ("PUT", "POST"):
        raise HttpError(405)
    form = {k: vals[0] for k, vals in parse_qs(req.body.decode("utf-8", "replace")).items()}
    username = form.get("username", form.get("j_username", ""))
    password = form.get("password", form.get("j_password", ""))
    user = app.auth.check(username, password) if username else None
    if user is None:
        raise HttpError(401, "Authentication failed.")
    sid = app.auth.new_session(user)
    req.user, req.session_id = user, sid
    resp = Response(200, sid.encode(), "text/plain")
    resp.headers.append(("Set-Cookie", app.session_cookie(sid)))
    return resp


def auth_check(app: DemoApp, req: Request, v: dict[str, str]) -> Response:
    return Response(200, f"User '{req.user}' is logged in".encode(), "text/plain")


def token_issue(app: DemoApp, req: Request, v: dict[str, str]) -> Response:
    return Response(200, json.dumps(app.auth.issue_token(req.user)).encode(), JSON)


def token_validate(app: DemoApp, req: Request, v: dict[str, str]) -> Response:
    user = app.auth.validate_token(unquote(v["ALIAS"]), unquote(v["SECRET"]))
    if user is None:
        raise HttpError(401, "Invalid token")
    return Response(200, json.dumps({"valid": user}).encode(), JSON)


def token_invalidate(app: DemoApp, req: Request, v: dict[str, str]) -> Response:
    if not app.auth.invalidate_token(unquote(v["ALIAS"])):
        raise HttpError(404)
    return Response(200, json.dumps({"result": "OK"}).encode(), JSON)


def build_info(app: DemoApp, req: Request, v: dict[str, str]) -> Response:
    info = dict(BUILD_INFO, timestamp=str(int(time.time() * 1000)), hostName="localhost",
                displayHostName="localhost", nodeId="")  # fmt: skip
    if "KEY" in v:
        if v["KEY"] not in info:
            raise HttpError(404)
        return Response(200, info[v["KEY"]].encode(), "text/plain")
    return Response(200, json.dumps(info).encode(), JSON)


def root(app: DemoApp, req: Request, v: dict[str, str]) -> Response:
    """The web UI's entry point: unauthenticated browsers land on the login page."""
    location = f"{req.context_path}/app/template/Login.vm"
    return Response(302, b"", "text/html", [("Location", location)])


def login(app: DemoApp, req: Request, v: dict[str, str]) -> Response:
    from xnatfs.demo.wire import login_page

    return login_page(req.context_path)


def schemas(app: DemoApp, req: Request, v: dict[str, str]) -> Response:
    """The data-type schemas clients such as xnatpy build their object model from."""
    if "SCHEMA" not in v:
        return Response(200, json.dumps(items.SCHEMA_NAMES).encode(), JSON)
    text = items.schema(v["SCHEMA"])
    if text is None:
        raise HttpError(404)
    return Response(200, text, "application/xml")


def search_elements(app: DemoApp, req: Request, v: dict[str, str]) -> Response:
    """The searchable data types (`/data/search/elements`) and their display fields."""
    if "ELEMENT" not in v:
        return _table(req, items.search_elements(app.site))
    found = items.search_fields(unquote(v["ELEMENT"]))
    if found is None:
        raise HttpError(404)
    return _table(req, found)


def not_found(app: DemoApp, req: Request, v: dict[str, str]) -> Response:
    return restlet_page(404)


# --- the table ----------------------------------------------------------------------------------

_SUBJ = ("/data/projects/{P}/subjects/{S}", "/data/subjects/{S}")
_EXP = ("/data/projects/{P}/subjects/{S}/experiments/{E}", "/data/projects/{P}/experiments/{E}",
        "/data/experiments/{E}")  # fmt: skip
_OWNERS = (
    ("/data/projects/{P}", *_SUBJ, *_EXP)
    + tuple(e + "/scans/{SC}" for e in _EXP)
    + tuple(e + tail for e in _EXP for tail in ("/reconstructions/{R}", "/reconstructions/{R}/{T}"))
    + tuple(e + tail for e in _EXP for tail in ("/assessors/{A}", "/assessors/{A}/{T}"))
)
_GET = frozenset({"GET", "HEAD"})


def _build_routes() -> list[Route]:
    table: list[tuple[str, Handler, Kind]] = [
        ("/data/projects", projects, "listing"),
        ("/data/projects/{P}", item, "item"),
        ("/data/projects/{P}/subjects", subjects, "listing"),
        ("/data/subjects", subjects, "listing"),
        *((s, item, "item") for s in _SUBJ),
        ("/data/projects/{P}/experiments", experiments, "listing"),
        *((s + "/experiments", experiments, "listing") for s in _SUBJ),
        ("/data/experiments", site_experiments, "listing"),
        *((e, item, "item") for e in _EXP),
        *((e + "/scans", scans, "listing") for e in _EXP),
        *((e + "/scans/{SC}", item, "item") for e in _EXP),
        *((e + "/reconstructions", reconstructions, "listing") for e in _EXP),
        *((e + "/reconstructions/{R}", item, "item") for e in _EXP),
        *((e + "/assessors", assessors, "listing") for e in _EXP),
        *((e + "/assessors/{A}", item, "item") for e in _EXP),
        *((o + "/resources", resources, "listing") for o in _OWNERS),
        *((o + "/resources/{RES}", item, "item") for o in _OWNERS),
        *((o + "/resources/{RES}/files", files, "listing") for o in _OWNERS),
        *((o + "/resources/{RES}/files/{PATH}", files, "file") for o in _OWNERS),
        *((o + "/files", files, "listing") for o in _OWNERS),
        *((o + "/files/{PATH}", files, "file") for o in _OWNERS),
    ]
    routes = [Route(_compile(t), h, k) for t, h, k in table]
    routes += [
        Route(_compile("/data/JSESSION"), jsession, "auth",
              frozenset({"GET", "HEAD", "POST", "DELETE"})),
        Route(_compile("/data/services/auth"), services_auth, "auth",
              frozenset({"GET", "PUT", "POST"}), auth=False),
        Route(_compile("/data/auth"), auth_check, "auth"),
        Route(_compile("/data/services/tokens/issue"), token_issue, "auth"),
        Route(_compile("/data/services/tokens/validate/{ALIAS}/{SECRET}"), token_validate, "auth"),
        Route(_compile("/data/services/tokens/invalidate/{ALIAS}"), token_invalidate, "auth"),
        Route(_compile("/data/services/tokens/invalidate/{ALIAS}/{SECRET}"), token_invalidate,
              "auth"),
        Route(_compile("/xapi/siteConfig/buildInfo"), build_info, "other", auth=False),
        Route(_compile("/xapi/siteConfig/buildInfo/{KEY}"), build_info, "other", auth=False),
        Route(_compile("/"), root, "other", auth=False),
        Route(_compile("/app/template/Login.vm"), login, "other", auth=False),
        Route(_compile("/data/search/elements"), search_elements, "other"),
        Route(_compile("/data/search/elements/{ELEMENT}"), search_elements, "other"),
        Route(_compile("/xapi/schemas"), schemas, "other"),
        Route(_compile("/xapi/schemas/{SCHEMA}"), schemas, "other"),
        Route(_compile("/xapi/schemas/{SCHEMA}/{FILE}"), schemas, "other"),
    ]  # fmt: skip
    return routes


ROUTES: list[Route] = []  # filled below, after `items` is importable


_ARCHIVE_PREFIX = re.compile(r"^/data/archive(?=/(projects|subjects|experiments)(/|$))")


def normalise(path: str) -> str:
    """Fold `/REST` and `/data/archive/...` into `/data/...` (the same handlers in XNAT)."""
    if path == "/REST" or path.startswith("/REST/"):
        path = "/data" + path[5:]
    return _ARCHIVE_PREFIX.sub("/data", path)


def match(path: str) -> tuple[Route, dict[str, str]] | None:
    if not ROUTES:
        ROUTES.extend(_build_routes())
    folded = normalise(path)
    for route in ROUTES:
        m = route.pattern.fullmatch(folded)
        if m:
            return route, {k: val for k, val in m.groupdict().items() if val is not None}
    return None
