"""Route handlers for table listings (projects down to resources) and single-object documents.

Each runs with `Site.lock` held.
"""

from __future__ import annotations

import json

from xnatfs.demo import items, listings
from xnatfs.demo.model import Experiment
from xnatfs.demo.routes.resolve import project_readable, require_match, resolve
from xnatfs.demo.routes.tables import query_table, table
from xnatfs.demo.wire import JSON, DemoContext, HttpError, Request, Response


def projects(ctx: DemoContext, req: Request, v: dict[str, str]) -> Response:
    """`/data/projects`: the projects the user can see (protected ones included)."""
    rows = [listings.project_row(p) for p in ctx.site.projects.values() if p.visible_to(req.user)]
    return query_table(req, rows, listings.PROJECT_COLUMNS)


def subjects(ctx: DemoContext, req: Request, v: dict[str, str]) -> Response:
    """A project's subjects, or with no project every subject the user may read; pageable."""
    if "P" in v:
        scope = resolve(ctx, req, v, what="subjects")
        assert scope.project is not None
        found = list(scope.project.subjects.values())
    else:
        found = [s for s in ctx.site.subjects() if project_readable(ctx, s.project, req.user)]
    rows = [listings.subject_row(s) for s in found]
    return query_table(req, rows, listings.SUBJECT_COLUMNS, pageable=True)


def experiments(ctx: DemoContext, req: Request, v: dict[str, str]) -> Response:
    """The experiments of a project or of one subject; pageable."""
    scope = resolve(ctx, req, v, what="experiments")
    assert scope.project is not None
    subjects_ = [scope.subject] if scope.subject else list(scope.project.subjects.values())
    rows = [listings.experiment_row(e) for s in subjects_ for e in s.experiments.values()]
    return query_table(req, rows, listings.EXPERIMENT_COLUMNS, pageable=True)


def site_experiments(ctx: DemoContext, req: Request, v: dict[str, str]) -> Response:
    """`/data/experiments`: every readable experiment, image assessors included."""
    rows: list[listings.Row] = []
    for e in ctx.site.experiments():
        if not project_readable(ctx, e.project, req.user):
            continue
        rows.append(listings.experiment_row(e))
        rows += [listings.assessor_row(a, e) | {"URI": f"/data/experiments/{a.id}"}
                 for a in e.assessors.values()]  # fmt: skip
    wanted = req.query.get("xsiType")
    if wanted:
        rows = [r for r in rows if r["xsiType"] == wanted]
    return query_table(req, rows, listings.SITE_EXPERIMENT_COLUMNS, pageable=True,
                        title="Matching experiments")  # fmt: skip


def _session(ctx: DemoContext, req: Request, v: dict[str, str]) -> Experiment:
    exp = resolve(ctx, req, v).experiment
    assert exp is not None  # the routes to these listings all name an experiment
    return exp


def scans(ctx: DemoContext, req: Request, v: dict[str, str]) -> Response:
    """A session's scans."""
    exp = _session(ctx, req, v)
    rows = [listings.scan_row(s, exp) for s in exp.scans.values()]
    return query_table(req, rows, listings.SCAN_COLUMNS)


def reconstructions(ctx: DemoContext, req: Request, v: dict[str, str]) -> Response:
    """A session's reconstructions."""
    exp = _session(ctx, req, v)
    rows = [listings.recon_row(r, exp) for r in exp.reconstructions.values()]
    return query_table(req, rows, listings.RECON_COLUMNS)


def assessors(ctx: DemoContext, req: Request, v: dict[str, str]) -> Response:
    """A session's assessors."""
    exp = _session(ctx, req, v)
    rows = [listings.assessor_row(a, exp) for a in exp.assessors.values()]
    return query_table(req, rows, listings.ASSESSOR_COLUMNS)


def resources(ctx: DemoContext, req: Request, v: dict[str, str]) -> Response:
    """The resources of any owner (`all=true` at session level adds those below it)."""
    scope = resolve(ctx, req, v)
    require_match(scope)
    scope.all_resources = req.query.get("all", "").lower() == "true"
    rows = [listings.resource_row(c) for c in listings.catalogs(scope)]
    return table(req, rows, total=True, title="Resources")


def item(ctx: DemoContext, req: Request, v: dict[str, str]) -> Response:
    """A single object (`?format=json` gives XNAT's "items" document)."""
    scope = resolve(ctx, req, v, what="" if set(v) == {"P"} else "data")
    require_match(scope)
    doc = items.item_document(ctx.site, scope, v)
    if doc is None:
        raise HttpError(404)
    fmt = req.query.get("format", "json").lower()
    if fmt == "xml":
        return Response(200, items.to_xml(doc), "text/xml")
    return Response(200, json.dumps(doc).encode(), JSON)
