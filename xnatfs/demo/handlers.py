"""The routing table of the demo server and the match of a request path against it.

Templates are matched against the path below the context path, after `/REST` and
`/data/archive` have been folded into `/data` (XNAT attaches every archive route twice, reference
§1.1). `{X}` matches one path segment, `{PATH}` the rest of the path, `{T}` is `in` or `out`.
Handlers run with `Site.lock` held while they read the model; bodies that stream file contents
(files, archives) only hold immutable `DemoFile`s and run without it.

The handlers themselves live in `routes/`: `objects` (tables and single-object documents),
`files` (files, single files, archives), `services` (sessions, tokens, site
information, schemas); `resolve` turns path variables into model objects and checks permissions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from xnatfs.demo.faults import Kind
from xnatfs.demo.routes.files import files
from xnatfs.demo.routes.objects import (
    assessors,
    experiments,
    item,
    projects,
    reconstructions,
    resources,
    scans,
    site_experiments,
    subjects,
)
from xnatfs.demo.routes.services import (
    auth_check,
    build_info,
    jsession,
    login,
    root,
    schemas,
    search_elements,
    services_auth,
    token_invalidate,
    token_issue,
    token_validate,
)
from xnatfs.demo.wire import Handler


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


ROUTES: list[Route] = []  # filled by the first `match`, after every handler module is importable


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
