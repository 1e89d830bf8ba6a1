"""What a request path names: path variables turned into model objects, with XNAT's visibility
(404) and read-permission (403) checks.

Called by the route handlers with `Site.lock` held.
"""

from __future__ import annotations

from xnatfs.demo import selectors
from xnatfs.demo.listings import Scope
from xnatfs.demo.model import Experiment, Project
from xnatfs.demo.site import Site
from xnatfs.demo.wire import DemoContext, HttpError, Request


def _readable(project: Project, user: str, what: str) -> None:
    if not project.readable_by(user):
        raise HttpError(403, f"Unable to read {what} for Project: {project.id}")


def _owner(site: Site, project_id: str, user: str, what: str) -> Project | None:
    """The project of an object the path names without its project: None if `user` may not see
    it (the caller answers 404 as for a missing object), 403 if they may see but not read it."""
    owner = site.project(project_id)
    assert owner is not None
    if not owner.visible_to(user):
        return None
    _readable(owner, user, what)
    return owner


def resolve(ctx: DemoContext, req: Request, v: dict[str, str], *, what: str = "data") -> Scope:
    """Turn the path variables into model objects, enforcing visibility (404) and read
    permission (403) the way XNAT does for private and protected projects. Only the project
    item itself (`what=""`) may be read without read permission on the project's data."""
    site, user = ctx.site, req.user
    scope = Scope(path_has_project="P" in v, path_has_subject="S" in v)
    project: Project | None = None
    if "P" in v:
        project = site.project(selectors.decode_segment(v["P"]))
        if project is None or not project.visible_to(user):
            raise HttpError(404, "Unable to identify project")
        scope.project = project
        if what:
            _readable(project, user, what)
    if "S" in v:
        ref = selectors.decode_segment(v["S"])
        if project is not None:
            subject = site.find_subject(project, ref)
        else:
            subject = site.subject_by_id(ref)
            if subject is not None:
                scope.project = _owner(site, subject.project, user, "subjects")
                if scope.project is None:
                    subject = None
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
            scope.project = _owner(site, exp.project, user, "experiments")
            if scope.project is None:
                exp = None
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


def require_match(scope: Scope) -> None:
    """Raise 404 if a scan, reconstruction or assessor selector in the path matched nothing."""
    for found, what in ((scope.scans, "scan"), (scope.recons, "reconstruction"),
                        (scope.assessors, "assessor")):  # fmt: skip
        if found is not None and not found:
            raise HttpError(404, f"Unable to identify {what}")


def project_readable(ctx: DemoContext, project_id: str, user: str) -> bool:
    """Whether `user` may read the data of project `project_id` (False if there is none)."""
    project = ctx.site.project(project_id)
    return project is not None and project.readable_by(user)
