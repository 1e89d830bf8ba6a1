"""The HTTP side of the demo server: connections, connection-level faults, response writing and
the request log. What a request means is decided by `DemoApp.respond` (`app.py`).

One thread per connection (`ThreadingHTTPServer`, HTTP/1.1 keep-alive). For every request:
`down` -> latency -> `DemoApp.respond` (context path, injected failure, route, authentication,
handler) -> body (with bandwidth cap, cut and stall rules) -> log entry.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from xnatfs.demo.app import DemoApp
from xnatfs.demo.faults import BodyRule, Kind, LogEntry
from xnatfs.demo.wire import REASONS, Request, Response, restlet_page

_PIECE = 256 * 1024  # largest single write of a body


class _CutConnection(Exception):
    """A body rule asked to drop the connection."""


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
        app = self.server.app
        started = time.time()
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""

        def record(status: int, kind: Kind, sent: int, user: str) -> None:
            entry = LogEntry(self.command, split.path, split.query, status, kind, sent, user,
                             started)  # fmt: skip
            app.log.record(entry)

        if app.faults.down:
            self._drop()
            record(0, "other", 0, "")
            return
        if app.faults.latency > 0:
            time.sleep(app.faults.latency)
        req = Request(
            method=self.command,
            path=split.path,
            full_path=split.path,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers={k: v for k, v in self.headers.items()},
            body=body,
            context_path=app.context_path,
        )
        kind: Kind = "unknown"
        try:
            resp, kind = app.respond(req)
        except Exception as exc:  # a bug in a handler must not kill the connection thread
            resp = restlet_page(500, f"{type(exc).__name__}: {exc}")
        sent = self._send(req, resp)
        record(resp.status, resp.kind or kind, sent, req.user)

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

    def _send(self, req: Request, resp: Response) -> int:
        """Write the response; returns the number of body bytes sent."""
        body = resp.body
        self.send_response(resp.status, REASONS.get(resp.status))
        if resp.content_type:
            self.send_header("Content-Type", resp.content_type)
        for key, value in resp.headers:
            self.send_header(key, value)
        chunked = resp.chunked or (not isinstance(body, bytes) and resp.length is None)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            size = len(body) if isinstance(body, bytes) else resp.length
            self.send_header("Content-Length", str(size))
        self.end_headers()
        if req.method == "HEAD" or resp.status in (204, 304):
            _close_iter(body)
            return 0
        chunks: Iterable[bytes] = [body] if isinstance(body, bytes) else body
        faults = self.server.app.faults
        writer = _BodyWriter(self, chunked, faults.take_body_rules(req.full_path), faults.bandwidth)
        try:
            for chunk in chunks:
                writer.write(chunk)
            writer.finish()
        except (_CutConnection, OSError):
            self._drop()
        finally:
            _close_iter(body)
        return writer.sent

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the RequestLog records requests; stderr stays quiet


def _close_iter(body: object) -> None:
    close = getattr(body, "close", None)
    if callable(close):
        close()


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
