"""The HTTP side of the demo server: connection handling, authentication, fault injection,
response writing and the request log. What each URL means lives in `handlers.py` (the routing
table) and the handler modules it routes to.

One thread per connection (`ThreadingHTTPServer`, HTTP/1.1 keep-alive). For every request:
context path -> `down` -> latency -> injected failure -> route -> authentication -> handler ->
body (with bandwidth cap, cut and stall rules) -> log entry.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from collections.abc import Iterable
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from xnatfs.demo import handlers
from xnatfs.demo.auth import AuthStore
from xnatfs.demo.faults import BodyRule, Faults, Kind, LogEntry, RequestLog
from xnatfs.demo.site import Site
from xnatfs.demo.wire import (
    REASONS,
    HttpError,
    Request,
    Response,
    login_page,
    restlet_page,
    tomcat_page,
)

_INTERACTIVE_AGENTS = ("MSIE", "Mozilla", "AppleWebKit", "Opera")
_PIECE = 256 * 1024  # largest single write of a body


class _CutConnection(Exception):
    """A body rule asked to drop the connection."""


class DemoApp:
    """Everything a request needs: the site, the switches, the log, users and sessions."""

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
        return f"JSESSIONID={sid}; Path={self.context_path}/; HttpOnly"

    def expiration_cookie(self) -> str:
        timeout = self.faults.session_expiry
        timeout_ms = int(timeout * 1000) if timeout is not None else 0
        value = f'"{int(time.time() * 1000)},{timeout_ms}"'
        return f"SESSION_EXPIRATION_TIME={value}; Path={self.context_path}/"

    # --- one request ----------------------------------------------------------------------------

    def serve(self, h: _Handler) -> None:
        started = time.time()
        split = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length > 0 else b""
        if self.faults.down:
            self._drop(h)
            self._record(h.command, split.path, split.query, 0, "other", 0, "", started)
            return
        if self.faults.latency > 0:
            time.sleep(self.faults.latency)
        req = Request(
            method=h.command,
            path=split.path,
            full_path=split.path,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers={k: v for k, v in h.headers.items()},
            body=body,
            context_path=self.context_path,
        )
        kind: Kind = "unknown"
        try:
            resp, kind = self._respond(req)
        except Exception as exc:  # a bug in a handler must not kill the connection thread
            resp = restlet_page(500, f"{type(exc).__name__}: {exc}")
        sent = self._send(h, req, resp)
        self._record(h.command, split.path, split.query, resp.status, resp.kind or kind, sent,
                     req.user, started)  # fmt: skip

    def _record(
        self,
        method: str,
        path: str,
        query: str,
        status: int,
        kind: Kind,
        sent: int,
        user: str,
        started: float,
    ) -> None:
        self.log.record(LogEntry(method, path, query, status, kind, sent, user, started))

    def _respond(self, req: Request) -> tuple[Response, Kind]:
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
        found = handlers.match(path)
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
                resp = tomcat_page(401, "Bad credentials")
                resp.headers.append(("WWW-Authenticate", f'Basic realm="{self.site.site_id}"'))
                return resp
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
            resp = tomcat_page(401, "Unauthorized")
            resp.headers.append(("WWW-Authenticate", f'Basic realm="{self.site.site_id}"'))
            return resp
        req.user, req.session_id = user, sid
        extra.append(("Set-Cookie", self.expiration_cookie()))
        return None

    # --- writing --------------------------------------------------------------------------------

    def _send(self, h: _Handler, req: Request, resp: Response) -> int:
        """Write the response; returns the number of body bytes sent."""
        body = resp.body
        h.send_response(resp.status, REASONS.get(resp.status))
        if resp.content_type:
            h.send_header("Content-Type", resp.content_type)
        for key, value in resp.headers:
            h.send_header(key, value)
        chunked = resp.chunked or (not isinstance(body, bytes) and resp.length is None)
        if chunked:
            h.send_header("Transfer-Encoding", "chunked")
        else:
            size = len(body) if isinstance(body, bytes) else resp.length
            h.send_header("Content-Length", str(size))
        h.end_headers()
        if req.method == "HEAD" or resp.status in (204, 304):
            _close_iter(body)
            return 0
        chunks: Iterable[bytes] = [body] if isinstance(body, bytes) else body
        writer = _BodyWriter(
            h, chunked, self.faults.take_body_rules(req.full_path), self.faults.bandwidth
        )
        try:
            for chunk in chunks:
                writer.write(chunk)
            writer.finish()
        except (_CutConnection, OSError):
            self._drop(h)
        finally:
            _close_iter(body)
        return writer.sent

    @staticmethod
    def _drop(h: _Handler) -> None:
        h.close_connection = True
        try:
            h.wfile.flush()
            h.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _close_iter(body: object) -> None:
    close = getattr(body, "close", None)
    if callable(close):
        close()


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


class _BodyWriter:
    """Writes body bytes (chunk-framed if needed), honouring bandwidth, cut and stall rules."""

    def __init__(self, h: _Handler, chunked: bool, rules: list[BodyRule], bandwidth: int) -> None:
        self.out = h.wfile
        self.chunked = chunked
        self.rules = rules
        self.bandwidth = bandwidth
        self.sent = 0
        self.started = time.monotonic()
        self.piece = max(1024, min(_PIECE, bandwidth // 20)) if bandwidth > 0 else _PIECE

    def write(self, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            self._fire_due()
            take = min(len(data) - pos, self.piece)
            pending = [r.after_bytes for r in self.rules if r.after_bytes > self.sent]
            if pending:
                take = min(take, min(pending) - self.sent)
            piece = data[pos : pos + take]
            if self.bandwidth > 0:
                # Pace before writing, so the client never has a piece early.
                ahead = self.started + (self.sent + len(piece)) / self.bandwidth - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            if self.chunked:
                self.out.write(b"%x\r\n%b\r\n" % (len(piece), piece))
            else:
                self.out.write(piece)
            self.sent += len(piece)
            pos += len(piece)
        self._fire_due()

    def _fire_due(self) -> None:
        for rule in list(self.rules):
            if rule.after_bytes <= self.sent:
                self.rules.remove(rule)
                if rule.action == "cut":
                    self.out.flush()
                    raise _CutConnection
                time.sleep(rule.seconds)

    def finish(self) -> None:
        if self.chunked:
            self.out.write(b"0\r\n\r\n")
        self.out.flush()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Apache-Coyote/1.1"
    sys_version = ""
    timeout = 300  # seconds an idle keep-alive connection may sit
    # Headers and body go out in separate writes; with Nagle's algorithm the second write
    # waits for the client's delayed ACK (tens of milliseconds per request on loopback).
    disable_nagle_algorithm = True
    server: DemoHTTPServer

    def do_GET(self) -> None:
        self.server.app.serve(self)

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the RequestLog records requests; stderr stays quiet


class DemoHTTPServer(ThreadingHTTPServer):
    """Tracks open connections so `close_connections()` can end keep-alive threads at once."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], app: DemoApp) -> None:
        self.app = app
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that drops its connection (reset, broken pipe, idle timeout) is normal for
        # a test double that cuts bodies and is stopped mid-transfer; anything else is a bug.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        return not self.app.faults.down  # "server down": accept, then close at once

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            open_now = list(self._connections)
        for conn in open_now:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
