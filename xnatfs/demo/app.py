"""The demo server's request pipeline and its route table: what a request means, without
sockets (the HTTP side is `server.py`).

`DemoApp.respond` takes a parsed `Request`: context path -> injected failure -> encoded slash
check -> route -> authentication -> method -> handler. Handlers live in `routes/`; they are
typed against `wire.DemoContext`, which `DemoApp` satisfies, so nothing there imports this
module.

Templates are matched against the path below the context path, after `/REST` and
`/data/archive` have been folded into `/data` (XNAT attaches every archive route twice, reference
§1.1). `{X}` matches one path segment, `{PATH}` the rest of the path, `{T}` is `in` or `out`.
Handlers run with `Site.lock` held while they read the model; bodies that stream file contents
(files, archives) only hold immutable `DemoFile`s and run without it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie

from xnatfs.demo.auth import AuthStore
from xnatfs.demo.faults import Faults, Kind, RequestLog
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
from xnatfs.demo.site import Site
from xnatfs.demo.wire import (
    REASONS,
    Handler,
    HttpError,
    Request,
    Response,
    login_page,
    restlet_page,
    tomcat_page,
)

_INTERACTIVE_AGENTS = ("MSIE", "Mozilla", "AppleWebKit", "Opera")


@dataclass(frozen=True)
class Route:
    """One entry of the table: the handler for paths matching `pattern`, the kind of request it
    is for the log, the methods it answers (405 otherwise) and whether it needs a login."""

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


def _routes() -> tuple[Route, ...]:
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
    return tuple(routes)


ROUTES = _routes()


_ARCHIVE_PREFIX = re.compile(r"^/data/archive(?=/(projects|subjects|experiments)(/|$))")


def normalise(path: str) -> str:
    """Fold `/REST` and `/data/archive/...` into `/data/...` (the same handlers in XNAT)."""
    if path == "/REST" or path.startswith("/REST/"):
        path = "/data" + path[5:]
    return _ARCHIVE_PREFIX.sub("/data", path)


def match(path: str) -> tuple[Route, dict[str, str]] | None:
    """The first route whose template matches `path` (below the context path, still
    percent-encoded) and its path variables; None if no route does."""
    folded = normalise(path)
    for route in ROUTES:
        m = route.pattern.fullmatch(folded)
        if m:
            return route, {k: val for k, val in m.groupdict().items() if val is not None}
    return None


class DemoApp:
    """Everything a request needs: the site, the switches, the log, users and sessions. It is
    the `DemoContext` the route handlers get."""

    def __init__(
        self,
        site: Site,
        faults: Faults,
        log: RequestLog,
        auth: AuthStore,
        context_path: str = "",
    ) -> None:
        self.site = site
        self.faults = faults
        self.log = log
        self.auth = auth
        self.context_path = context_path

    # --- cookies --------------------------------------------------------------------------------

    def session_cookie(self, sid: str) -> str:
        """The `Set-Cookie` value that hands session `sid` to the client."""
        return f"JSESSIONID={sid}; Path={self.context_path}/; HttpOnly"

    def expiration_cookie(self) -> str:
        """`SESSION_EXPIRATION_TIME="<now ms>,<timeout ms>"`, sent on authenticated answers."""
        timeout = self.faults.session_expiry
        timeout_ms = int(timeout * 1000) if timeout is not None else 0
        value = f'"{int(time.time() * 1000)},{timeout_ms}"'
        return f"SESSION_EXPIRATION_TIME={value}; Path={self.context_path}/"

    # --- one request ----------------------------------------------------------------------------

    def respond(self, req: Request) -> tuple[Response, Kind]:
        """The response to `req` and the kind of request it was for the log. Sets `req.path`
        to the path below the context path, and `req.user`/`req.session_id` once authenticated.
        """
        path = req.path
        ctx = self.context_path
        if ctx:
            if path != ctx and not path.startswith(ctx + "/"):
                return restlet_page(404), "unknown"
            path = path[len(ctx) :] or "/"
        req.path = path
        failure = self.faults.take_failure(req.full_path)
        if failure is not None:
            status, retry_after = failure
            resp = restlet_page(status, REASONS.get(status, "Injected failure"))
            if retry_after is not None:
                resp.headers.append(("Retry-After", f"{retry_after:g}"))
            return resp, "other"
        if "%2f" in path.lower():
            # Tomcat refuses encoded slashes in paths (XNAT's [SLASH] exists because of it).
            return tomcat_page(400, "Invalid URI: encoded slash"), "unknown"
        found = match(path)
        if found is None:
            return restlet_page(404), "unknown"
        route, variables = found
        extra: list[tuple[str, str]] = []
        if route.auth:
            refused = self._authenticate(req, extra)
            if refused is not None:
                return refused, route.kind
        if req.method not in route.methods:
            return restlet_page(405), route.kind
        try:
            with self.site.lock:
                resp = route.handler(self, req, variables)
        except HttpError as err:
            resp = restlet_page(err.status, err.message)
        resp.headers.extend(extra)
        return resp, route.kind

    def _authenticate(self, req: Request, extra: list[tuple[str, str]]) -> Response | None:
        """Basic credentials (password or alias token) or a live JSESSIONID cookie; on success
        set `req.user`/`req.session_id` and the cookies to send, else the refusal to send."""
        basic = AuthStore.parse_basic(req.headers.get("Authorization"))
        sid = _cookie(req.headers.get("Cookie"), "JSESSIONID")
        cookie_user = (
            self.auth.session_user(sid, self.faults.session_expiry) if sid is not None else None
        )
        if basic is not None:
            user = self.auth.check(*basic)
            if user is None:
                return self._unauthorized("Bad credentials")
            if cookie_user != user:
                sid = self.auth.new_session(user)
                extra.append(("Set-Cookie", self.session_cookie(sid)))
        elif cookie_user is not None:
            user = cookie_user
        else:
            if sid is not None and self.faults.expiry_mode == "login_page":
                return login_page(self.context_path)
            agent = req.headers.get("User-Agent", "")
            if any(a in agent for a in _INTERACTIVE_AGENTS):
                location = f"{self.context_path}/app/template/Login.vm"
                return Response(302, b"", "text/html", [("Location", location)])
            return self._unauthorized("Unauthorized")
        req.user, req.session_id = user, sid
        extra.append(("Set-Cookie", self.expiration_cookie()))
        return None

    def _unauthorized(self, message: str) -> Response:
        resp = tomcat_page(401, message)
        resp.headers.append(("WWW-Authenticate", f'Basic realm="{self.site.site_id}"'))
        return resp


def _cookie(header: str | None, name: str) -> str | None:
    if not header:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None
