"""A scriptable HTTP(S) server (127.0.0.1 unless told otherwise) for testing the XNAT client.

Each test tells the stub what to answer per path (or per path prefix, `route_prefix`): a fixed
`Reply`, a list of replies consumed in order (the last one repeats), or a function of the
received request. A reply can be delayed, sent in pieces with pauses or gates
(`threading.Event`) between them, generated without end (`stream`), cut off mid-body, or
replaced by a connection reset. GET and HEAD are answered (HEAD: the headers of the GET, no
body). Every request is recorded in `stub.seen`.

`StubAuth` adds XNAT-like authentication in front of the routes: Basic credentials create a
server session (`Set-Cookie: JSESSIONID=...`), a valid cookie is enough on its own, and
`expire_sessions()` makes known cookies stale, which XNAT answers with 401 or with its login page.
"""

from __future__ import annotations

import base64
import json
import secrets
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

LOGIN_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>XNAT</title></head><body>\n"
    b"<!-- BEGIN xnat-templates/screens/Login.vm -->\n<form>login</form></body></html>\n"
)

Part = bytes | float | threading.Event


@dataclass
class Reply:
    """One scripted answer.

    `body` is bytes or a list of parts: bytes are sent (flushed at once), a float pauses that
    many seconds, an Event blocks until set. `content_length="auto"` declares the sum of the
    byte parts, an int declares that number, None sends the body chunked. `cut` closes the
    connection after the parts without finishing the body; `reset` answers nothing and resets
    the connection; `delay` waits before the status line. `stream`, when set, is called once
    per request for the body's pieces (after `body`), which may never end: a server that
    trickles or floods; it is sent chunked unless `content_length` is an int.
    """

    status: int = 200
    body: bytes | Sequence[Part] = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    content_length: int | str | None = "auto"
    cut: bool = False
    reset: bool = False
    delay: float = 0.0
    stream: Callable[[], Iterator[Part]] | None = None

    def parts(self) -> list[Part]:
        return [self.body] if isinstance(self.body, bytes) else list(self.body)


@dataclass
class Seen:
    """One request the stub received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    client_port: int

    def cookie(self, name: str) -> str | None:
        jar = SimpleCookie()
        jar.load(self.headers.get("cookie", ""))
        morsel = jar.get(name)
        return morsel.value if morsel else None

    @property
    def basic(self) -> tuple[str, str] | None:
        value = self.headers.get("authorization", "")
        if not value.startswith("Basic "):
            return None
        user, _, password = base64.b64decode(value[6:]).decode().partition(":")
        return user, password


Handler = Callable[[Seen], Reply]


def result_set(rows: Sequence[Mapping[str, Any]], **meta: str) -> bytes:
    """A listing body shaped as XNAT writes it (cells as given; meta keys after Result)."""
    inner = json.dumps({"Result": list(rows)})[:-1]
    extra = "".join(f', "{k}": {json.dumps(v)}' for k, v in meta.items())
    return ('{"ResultSet":' + inner + extra + "}}").encode()


def json_reply(rows: Sequence[Mapping[str, Any]], **meta: str) -> Reply:
    return Reply(body=result_set(rows, **meta), headers={"Content-Type": "application/json"})


class StubAuth:
    """XNAT-like sessions: Basic creates one, a cookie reuses it, expiry makes cookies stale.

    `expired` is how a stale cookie is answered: "401" or "login" (200 + the login page).
    With `basic_heals=True` (what XNAT does) valid Basic credentials next to a stale cookie just
    create a new session; with False the stale cookie is refused even then, so the client has to
    drop it and authenticate again.
    """

    def __init__(
        self, users: Mapping[str, str], *, expired: str = "401", basic_heals: bool = True
    ) -> None:
        self.users = dict(users)
        self.expired = expired
        self.basic_heals = basic_heals
        self.sessions: set[str] = set()
        self.issued: list[str] = []  # every session id ever handed out
        self._lock = threading.Lock()

    def expire_sessions(self) -> None:
        with self._lock:
            self.sessions.clear()

    def gate(self, seen: Seen) -> tuple[Reply | None, str | None]:
        """(refusal or None, new session id to set or None)."""
        cookie = seen.cookie("JSESSIONID")
        basic = seen.basic
        with self._lock:
            if cookie is not None and cookie in self.sessions:
                return None, None
            stale = cookie is not None
            valid = basic is not None and self.users.get(basic[0]) == basic[1]
            if valid and (not stale or self.basic_heals):
                sid = secrets.token_hex(16).upper()
                self.sessions.add(sid)
                self.issued.append(sid)
                return None, sid
        if stale and self.expired == "login":
            return Reply(body=LOGIN_PAGE, headers={"Content-Type": "text/html"}), None
        page = b"<!doctype html><html><body><h1>HTTP Status 401</h1></body></html>"
        headers = {"Content-Type": "text/html", "WWW-Authenticate": 'Basic realm="XNAT"'}
        return Reply(401, page, headers), None


class XnatStub:
    """The server. Use as a context manager, or call `close()`."""

    def __init__(
        self,
        auth: StubAuth | None = None,
        *,
        host: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """`host`: the address to listen on; `tls`: a server context, to answer https."""
        self.auth = auth
        self.host = host
        self.scheme = "https" if tls is not None else "http"
        self.seen: list[Seen] = []
        self._routes: dict[str, Handler] = {}
        self._prefixes: list[tuple[str, Handler]] = []
        self._gates: list[threading.Event] = []
        self._lock = threading.Lock()
        stub = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                stub._serve(self)

            def do_HEAD(self) -> None:
                stub._serve(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((host, 0), _Handler)
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def route(self, path: str, answer: Reply | Sequence[Reply] | Handler) -> None:
        """Answer requests for exactly `path` (as sent: percent-encoded) with `answer`."""
        self._routes[path] = _handler(answer)

    def route_prefix(self, prefix: str, answer: Reply | Sequence[Reply] | Handler) -> None:
        """Answer requests for paths starting with `prefix` that no exact route takes; the
        longest matching prefix wins."""
        self._prefixes.append((prefix, _handler(answer)))
        self._prefixes.sort(key=lambda item: len(item[0]), reverse=True)

    def gate(self) -> threading.Event:
        """An Event to put in a body; `close()` sets it so no server thread stays blocked."""
        event = threading.Event()
        self._gates.append(event)
        return event

    def requests_to(self, path: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.path == path]

    def close(self) -> None:
        for event in self._gates:
            event.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> XnatStub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ serving

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        seen = Seen(
            method=h.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in h.headers.items()},
            client_port=h.client_address[1],
        )
        with self._lock:
            self.seen.append(seen)
        new_session = None
        reply: Reply | None = None
        if self.auth is not None:
            reply, new_session = self.auth.gate(seen)
        if reply is None:
            handler = self._routes.get(seen.path) or next(
                (hd for prefix, hd in self._prefixes if seen.path.startswith(prefix)), None
            )
            reply = handler(seen) if handler else Reply(404, b"", {"Content-Type": "text/html"})
        self._send(h, reply, new_session)

    def _send(self, h: BaseHTTPRequestHandler, reply: Reply, session: str | None) -> None:
        if reply.delay:
            time.sleep(reply.delay)
        if reply.reset:
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.connection.close()
            h.close_connection = True
            return
        parts = reply.parts()
        head_only = h.command == "HEAD"
        h.send_response(reply.status)
        for name, value in reply.headers.items():
            h.send_header(name, value)
        if session is not None:
            h.send_header("Set-Cookie", f"JSESSIONID={session}; Path=/; HttpOnly")
        chunked = reply.content_length is None or (
            reply.stream is not None and not isinstance(reply.content_length, int)
        )
        if chunked:
            h.send_header("Transfer-Encoding", "chunked")
        else:
            declared = reply.content_length
            if declared == "auto":
                declared = sum(len(p) for p in parts if isinstance(p, bytes))
            h.send_header("Content-Length", str(declared))
        if reply.cut:
            h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.flush()
        if head_only:
            return
        try:
            for part in _pieces(parts, reply):
                if isinstance(part, bytes):
                    if not part:
                        continue
                    if chunked:
                        h.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                    else:
                        h.wfile.write(part)
                    h.wfile.flush()
                elif isinstance(part, threading.Event):
                    part.wait(10)
                else:
                    time.sleep(part)
            if reply.cut:
                h.close_connection = True
                h.connection.shutdown(socket.SHUT_RDWR)
                return
            if chunked:
                h.wfile.write(b"0\r\n\r\n")
                h.wfile.flush()
        except OSError:
            h.close_connection = True


def _handler(answer: Reply | Sequence[Reply] | Handler) -> Handler:
    if isinstance(answer, Reply):
        fixed = answer
        return lambda seen: fixed
    if callable(answer):
        return answer
    queue = list(answer)
    lock = threading.Lock()

    def next_reply(seen: Seen) -> Reply:
        with lock:
            return queue.pop(0) if len(queue) > 1 else queue[0]

    return next_reply


def _pieces(parts: list[Part], reply: Reply) -> Iterator[Part]:
    yield from parts
    if reply.stream is not None:
        yield from reply.stream()
