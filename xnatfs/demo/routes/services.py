"""Route handlers outside the archive: sessions, tokens, site information, the web UI's entry
points, and what xnatpy reads to build its object model (schemas, search elements)."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, unquote

from xnatfs.demo import items
from xnatfs.demo.routes.tables import table
from xnatfs.demo.wire import (
    JSON,
    DemoContext,
    HttpError,
    Request,
    Response,
    login_page,
)

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


# --- sessions, tokens ---------------------------------------------------------------------------


def jsession(ctx: DemoContext, req: Request, v: dict[str, str]) -> Response:
    """`/data/JSESSION`: the session ID as text; DELETE ends the session."""
    if req.method == "DELETE":
        if req.session_id:
            ctx.auth.drop_session(req.session_id)
        return Response(200, b"", "text/plain")
    sid = req.session_id or ""
    return Response(200, sid.encode(), "text/plain")


def services_auth(ctx: DemoContext, req: Request, v: dict[str, str]) -> Response:
    """PUT/POST form `username`/`password`: a new session, its ID as the body."""
    if req.method not in ("PUT", "POST"):
        raise HttpError(405)
    form = {k: vals[0] for k, vals in parse_qs(req.body.decode("utf-8", "replace")).items()}
    username = form.get("username", form.get("j_username", ""))
    password = form.get("password", form.get("j_password", ""))
    user = ctx.auth.check(username, password) if username else None
    if user is None:
        raise HttpError(401, "Authentication failed.")
    sid = ctx.auth.new_session(user)
    req.user, req.session_id = user, sid
    resp = Response(200, sid.encode(), "text/plain")
    resp.headers.append(("Set-Cookie", ctx.session_cookie(sid)))
    return resp


def auth_check(ctx: DemoContext, req: Request, v: dict[str, str]) -> Response:
    """`/data/auth`: a line naming the logged-in user."""
    return Response(200, f"User '{req.user}' is logged in".encode(), "text/plain")


def token_issue(ctx: DemoContext, req: Request, v: dict[str, str]) -> Response:
    """A new alias token for the user, as JSON (`alias`, `secret`, dates in epoch ms)."""
    return Response(200, json.dumps(ctx.auth.issue_token(req.user)).encode(), JSON)


def token_validate(ctx: DemoContext, req: Request, v: dict[str, str]) -> Response:
    """`{"valid": user}` for a live alias token; 401 otherwise."""
    user = ctx.auth.validate_token(unquote(v["ALIAS"]), unquote(v["SECRET"]))
    if user is None:
        raise HttpError(401, "Invalid token")
    return Response(200, json.dumps({"valid": user}).encode(), JSON)


def token_invalidate(ctx: DemoContext, req: Request, v: dict[str, str]) -> Response:
    """Revoke the alias token `ALIAS`; 404 if there is none."""
    if not ctx.auth.invalidate_token(unquote(v["ALIAS"])):
        raise HttpError(404)
    return Response(200, json.dumps({"result": "OK"}).encode(), JSON)


# --- site information, web UI -------------------------------------------------------------------


def build_info(ctx: DemoContext, req: Request, v: dict[str, str]) -> Response:
    """`/xapi/siteConfig/buildInfo` as JSON, or one `KEY` as text (404 for an unknown key)."""
    info = dict(BUILD_INFO, timestamp=str(int(time.time() * 1000)), hostName="localhost",
                displayHostName="localhost", nodeId="")  # fmt: skip
    if "KEY" in v:
        if v["KEY"] not in info:
            raise HttpError(404)
        return Response(200, info[v["KEY"]].encode(), "text/plain")
    return Response(200, json.dumps(info).encode(), JSON)


def root(ctx: DemoContext, req: Request, v: dict[str, str]) -> Response:
    """The web UI's entry point: unauthenticated browsers land on the login page."""
    location = f"{req.context_path}/app/template/Login.vm"
    return Response(302, b"", "text/html", [("Location", location)])


def login(ctx: DemoContext, req: Request, v: dict[str, str]) -> Response:
    """The web UI's login page."""
    return login_page(req.context_path)


# --- data types ---------------------------------------------------------------------------------


def schemas(ctx: DemoContext, req: Request, v: dict[str, str]) -> Response:
    """The data-type schemas clients such as xnatpy build their object model from."""
    if "SCHEMA" not in v:
        return Response(200, json.dumps(items.SCHEMA_NAMES).encode(), JSON)
    text = items.schema(v["SCHEMA"])
    if text is None:
        raise HttpError(404)
    return Response(200, text, "application/xml")


def search_elements(ctx: DemoContext, req: Request, v: dict[str, str]) -> Response:
    """The searchable data types (`/data/search/elements`) and their display fields."""
    if "ELEMENT" not in v:
        return table(req, items.search_elements(ctx.site))
    found = items.search_fields(unquote(v["ELEMENT"]))
    if found is None:
        raise HttpError(404)
    return table(req, found)
