"""Request/response values shared by the server plumbing and the route handlers, and
`DemoContext`, the part of the server a handler may use.

Handlers are typed against `DemoContext` rather than the server class, so that the handler
modules need nothing from the modules that route to them.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from xnatfs.demo.auth import AuthStore
from xnatfs.demo.faults import Faults, Kind
from xnatfs.demo.site import Site

JSON = "application/json"

REASONS = {
    200: "OK",
    204: "No Content",
    206: "Partial Content",
    302: "Found",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    416: "Requested Range Not Satisfiable",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

_RFC_SECTIONS = {400: "10.4.1", 401: "10.4.2", 403: "10.4.4", 404: "10.4.5", 405: "10.4.6",
                 416: "10.4.17", 500: "10.5.1", 502: "10.5.3", 503: "10.5.4",
                 504: "10.5.5"}  # fmt: skip

_RESTLET_DEFAULTS = {
    401: "The request requires user authentication",
    403: "The server understood the request, but is refusing to fulfill it",
    404: "The server has not found anything matching the request URI",
    405: "The method specified in the request is not allowed for the resource identified by "
    "the request URI",
    500: "The server encountered an unexpected condition which prevented it from fulfilling "
    "the request",
}


@dataclass
class Request:
    """One parsed HTTP request. `query` keeps the last value of a repeated parameter; `user` and
    `session_id` are set once the request is authenticated."""

    method: str
    path: str  # below the context path, as received (still percent-encoded)
    full_path: str  # as received, with the context path
    query: dict[str, str]
    headers: Mapping[str, str]
    body: bytes
    context_path: str
    user: str = ""
    session_id: str | None = None


@dataclass
class Response:
    """What to send: status, body (bytes, or an iterable of chunks streamed later without
    `Site.lock`), content type and extra headers."""

    status: int
    body: bytes | Iterable[bytes] = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    # For iterable bodies: the exact length if known (sent as Content-Length), else chunked.
    length: int | None = None
    chunked: bool = False  # send even a bytes body chunked (listings are streamed by XNAT)
    kind: Kind | None = None  # overrides the route's kind in the request log


class DemoContext(Protocol):
    """What a route handler sees of the server: the archive, the switches, users and sessions.

    Handlers run with `site.lock` held; `session_cookie(sid)` is the `Set-Cookie` value that
    hands the session `sid` to a client.
    """

    @property
    def site(self) -> Site: ...

    @property
    def faults(self) -> Faults: ...

    @property
    def auth(self) -> AuthStore: ...

    def session_cookie(self, sid: str) -> str: ...


Handler = Callable[[DemoContext, Request, dict[str, str]], Response]
"""A route handler: `handler(ctx, request, path_variables) -> Response`; raises `HttpError`."""


class HttpError(Exception):
    """Raised by handlers; becomes a Restlet status page with `status`."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(message or _RESTLET_DEFAULTS.get(status, REASONS.get(status, "")))
        self.status = status
        self.message = str(self)


def restlet_page(status: int, message: str = "") -> Response:
    """The HTML status page Restlet 1.x sends for errors raised in XNAT's /data API."""
    text = html.escape(message or _RESTLET_DEFAULTS.get(status, REASONS.get(status, "Error")))
    section = _RFC_SECTIONS.get(status, "10")
    body = (
        "<html>\n<head>\n   <title>Status page</title>\n</head>\n<body>\n"
        f'<h3>{text}</h3><p>You can get technical details <a href="'
        f'http://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec{section}">here</a>.<br>\n'
        'Please continue your visit at our <a href="/">home page</a>.\n</p>\n</body>\n</html>\n'
    )
    return Response(status, body.encode(), "text/html;charset=UTF-8")


def tomcat_page(status: int, message: str = "") -> Response:
    """The error page Tomcat renders for `response.sendError` from the security filters."""
    reason = REASONS.get(status, "Error")
    text = html.escape(message or reason)
    body = (
        f'<!doctype html><html lang="en"><head><title>HTTP Status {status} – {reason}</title>'
        "</head><body>"
        f'<h1>HTTP Status {status} – {reason}</h1><hr class="line" />'
        f"<p><b>Type</b> Status Report</p><p><b>Message</b> {text}</p>"
        '<hr class="line" /><h3>Apache Tomcat</h3></body></html>'
    )
    return Response(status, body.encode(), "text/html;charset=utf-8")


LOGIN_PAGE = (
    "<!DOCTYPE html>\n<html>\n<head>\n<title>XNAT</title>\n</head>\n<body>\n"
    "<!-- BEGIN xnat-templates/screens/Login.vm -->\n"
    '<div id="login_area"><form name="form1" method="post" action="{ctx}/login">\n'
    '<input type="text" name="username"/><input type="password" name="password"/>\n'
    '<input type="submit" value="Login"/></form></div>\n'
    "<!-- END xnat-templates/screens/Login.vm -->\n</body>\n</html>\n"
)


def login_page(context_path: str) -> Response:
    """200 with XNAT's `Login.vm` page, whose form posts to `{context_path}/login`."""
    return Response(200, LOGIN_PAGE.format(ctx=context_path).encode(), "text/html;charset=UTF-8")
