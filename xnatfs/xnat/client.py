"""The synchronous XNAT client: listings, file downloads and archive streams over requests.

Threads: every method may be called from any thread. Each thread gets its own
`requests.Session` (requests does not promise that a Session is thread-safe); all of them share
one server session: the `JSESSIONID` cookie the server last set is copied into each thread's
cookie jar under a lock before a request. Basic credentials are sent on every request as well,
so when XNAT's session expires it silently authenticates again and sets a new cookie.

Authentication failures: a 401, or a 200 that carries XNAT's login page (any HTML reply to a
listing; for a file, HTML without `Content-Disposition` that contains the `Login.vm` marker),
drops the cookie and retries once with Basic alone; still refused -> `AuthenticationFailed`
(credentials configured) or `AccessDenied` (anonymous). 403 -> `AccessDenied`, 404 -> `NotFound`.

Retries: connection errors, timeouts, 429, 502, 503 and 504 are retried with jittered
exponential backoff (see `retry.py`); `Retry-After` seconds are honoured. A 500 is not retried:
in XNAT it comes from a failing handler (e.g. an unknown path below a session), and asking again
gives the same answer, so it is reported at once as `Unavailable`.

Environment: requests' own netrc lookup is disabled (a session-level auth object is always set,
and redirects never pick up netrc credentials), so credentials come only from
`xnatfs.credentials`. Proxy variables (`HTTPS_PROXY`, `NO_PROXY`) and `REQUESTS_CA_BUNDLE` keep
working.

Logging: one DEBUG line per HTTP exchange on the `xnatfs.http` logger (method, path and query,
status, bytes, milliseconds). Passwords, Authorization headers and cookie values are never
logged and never appear in exception messages.
"""

from __future__ import annotations

import copy
import email.utils
import json
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.cookiejar import Cookie, CookieJar
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
import requests.adapters
import requests.auth

from xnatfs import __version__
from xnatfs.credentials import Credentials
from xnatfs.errors import (
    AccessDenied,
    AuthenticationFailed,
    ConfigError,
    IntegrityError,
    NotFound,
    ProtocolError,
    Unavailable,
)
from xnatfs.xnat.retry import (
    Attempts,
    RetriesExhausted,
    RetryPolicy,
    describe,
    parse_retry_after,
    real_sleep,
)

log = logging.getLogger("xnatfs.http")

LOGIN_MARKER = b"<!-- BEGIN xnat-templates/screens/Login.vm -->"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
SESSION_COOKIE = "JSESSIONID"
# How much of an HTML file reply is held back to look for the login page marker.
_HTML_SNIFF = 256 * 1024

WriteCallback = Callable[[int, bytes], None]
Rows = list[dict[str, str]]  # a name `list` inside XnatClient would shadow


@dataclass(frozen=True)
class DownloadInfo:
    """What a finished download learned about the file.

    `size` is the number of bytes delivered; `status` the HTTP status of the first reply;
    `last_modified` epoch seconds from `Last-Modified` (or None); `ranges_supported` is True when
    the server answered a `Range` with 206 or announced `Accept-Ranges: bytes`.
    """

    size: int
    status: int
    content_type: str
    last_modified: float | None
    ranges_supported: bool


@dataclass(frozen=True)
class ClientStats:
    """Counters since the client was built: HTTP exchanges sent, retries, re-authentications,
    and `requests.Session` objects created (one per thread that used the client)."""

    requests: int = 0
    retries: int = 0
    reauths: int = 0
    sessions: int = 0


class _Transient(Exception):
    """A failure worth another attempt; `cause` is a few words, `retry_after` from the server."""

    def __init__(self, cause: str, retry_after: float | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.retry_after = retry_after


class _NoAuth(requests.auth.AuthBase):
    """Stands in for "no credentials" so that requests does not look up netrc itself."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        return r


class _Session(requests.Session):
    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: Any) -> None:
        # requests' version would apply netrc on redirects; keep our header or strip it when
        # the redirect leaves the host, nothing else.
        headers = prepared_request.headers
        if "Authorization" in headers and self.should_strip_auth(  # type: ignore[no-untyped-call]
            response.request.url, prepared_request.url
        ):
            del headers["Authorization"]


class _Reply:
    """An open streamed response plus any body bytes already read while classifying it."""

    def __init__(self, resp: requests.Response, display: str, started: float) -> None:
        self.resp = resp
        self.head = b""
        self.status = resp.status_code
        self._display = display
        self._started = started
        self._bytes = 0
        self._closed = False

    @property
    def headers(self) -> Mapping[str, str]:
        return self.resp.headers

    def read_some(self, size: int) -> bytes:
        """What the socket has (at most `size` bytes, at least one unless at the end)."""
        try:
            data: bytes = self.resp.raw.read1(size, decode_content=True)
        except Exception as exc:  # urllib3, http.client and socket errors alike
            raise _Transient(describe(exc)) from None
        self._bytes += len(data)
        return data

    def peek(self, limit: int) -> bytes:
        """Read up to `limit` bytes into `head` (for classification) and return them."""
        while len(self.head) < limit:
            data = self.read_some(limit - len(self.head))
            if not data:
                break
            self.head += data
        return self.head

    def chunks(self, size: int) -> Iterator[bytes]:
        if self.head:
            head, self.head = self.head, b""
            yield head
        while data := self.read_some(size):
            yield data

    def read_all(self) -> bytes:
        return b"".join(self.chunks(256 * 1024))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.resp.close()
        ms = (time.monotonic() - self._started) * 1000
        log.debug("GET %s -> %d, %d bytes, %.0f ms", self._display, self.status, self._bytes, ms)


class XnatClient:
    """Blocking access to one XNAT server's `/data` API (see the module docstring)."""

    def __init__(
        self,
        base_url: str,
        credentials: Credentials | None,
        *,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
        retries: int = 4,
        retry_deadline: float = 60.0,
        pool_size: int = 8,
        user_agent: str = f"xnatfs/{__version__}",
    ) -> None:
        parts = urlsplit(base_url)
        if parts.username is not None or parts.password is not None:
            # URLs end up in messages and logs; credentials travel only in the auth header.
            raise ConfigError("the XNAT URL must not contain credentials")
        self.base_url = base_url.rstrip("/")
        self._credentials = credentials
        self._timeout = (connect_timeout, read_timeout)
        self.policy = RetryPolicy(retries=retries, deadline=retry_deadline)
        self._pool_size = pool_size
        self._user_agent = user_agent
        self._local = threading.local()
        self._lock = threading.Lock()
        self._sessions: weakref.WeakSet[requests.Session] = weakref.WeakSet()
        self._jsession: Cookie | None = None
        self._counts = {"requests": 0, "retries": 0, "reauths": 0, "sessions": 0}
        self._closed = False
        # Seams for tests: time source and the wait between attempts.
        self._clock: Callable[[], float] = time.monotonic
        self._sleep: Callable[[float, threading.Event | None], None] = real_sleep

    # ----------------------------------------------------------------- public API

    @property
    def stats(self) -> ClientStats:
        with self._lock:
            return ClientStats(**self._counts)

    def list(self, path: str, params: Mapping[str, str] | None = None) -> list[dict[str, str]]:
        """The rows of a table listing (`path` percent-encoded, starting with `/data`).

        Adds `format=json`. Every value comes back as a string (`""` for null). Raises
        ProtocolError for anything but a `{"ResultSet": {"Result": [{...}, ...]}}` document.
        """
        return self._list(path, params, self._attempts("GET", path, None))

    def download(
        self,
        path: str,
        write: WriteCallback,
        *,
        cancel: threading.Event | None = None,
        params: Mapping[str, str] | None = None,
        chunk_size: int = 256 * 1024,
    ) -> DownloadInfo:
        """Stream a file into `write(offset, chunk)`, called in order from this thread.

        Chunks are passed on as the socket delivers them (at most `chunk_size` bytes each). A
        connection lost mid-body is retried within the retry budget (which restarts whenever
        bytes arrived): with `Range` from the first missing byte, or, if the server ignores
        `Range`, by reading again from the start and skipping what was delivered. A body shorter
        than `Content-Length` counts as lost. Raises IntegrityError if the file's length or
        `Last-Modified` changes between attempts, Unavailable once `cancel` is set.
        """
        attempts = self._attempts("GET", path, cancel)
        delivered = 0
        first: tuple[int, str, float | None, int | None] | None = None  # status, type, mtime, size
        ranges_supported = False
        try_range = True
        while True:
            headers = {"Accept-Encoding": "identity"}
            if delivered and try_range:
                headers["Range"] = f"bytes={delivered}-"
            reply = self._open(path, params, headers, attempts, listing=False)
            before = delivered
            try:
                if reply.status == 416 and "Range" in headers:
                    try_range = False
                    continue
                if reply.status not in (200, 206) or (
                    reply.status == 206 and "Range" not in headers
                ):
                    raise ProtocolError(f"GET {self._url(path)}: unexpected HTTP {reply.status}")
                total, start = self._body_extent(reply, path)
                if reply.status == 206:
                    ranges_supported = True
                    if start != delivered:
                        raise ProtocolError(
                            f"GET {self._url(path)}: asked for bytes from {delivered}, got {start}"
                        )
                elif "Range" in headers:
                    try_range = False  # the server sends whole files; skip instead
                mtime = _http_date(reply.headers.get("Last-Modified"))
                if first is None:
                    accept = reply.headers.get("Accept-Ranges", "").lower()
                    ranges_supported = ranges_supported or accept == "bytes"
                    ctype = reply.headers.get("Content-Type", "")
                    first = (reply.status, ctype, mtime, total)
                elif _differs(total, first[3]) or _differs(mtime, first[2]):
                    raise IntegrityError(
                        f"GET {self._url(path)}: the file changed on the server during the download"
                    )
                pos = start
                for chunk in reply.chunks(chunk_size):
                    attempts.check_cancel()
                    end = pos + len(chunk)
                    if end > delivered:
                        piece = chunk[delivered - pos :] if pos < delivered else chunk
                        write(delivered, piece)
                        delivered += len(piece)
                    pos = end
                if total is not None and delivered != total:
                    raise _Transient("connection closed before the reply was complete")
                status, ctype, mtime, _size = first
                return DownloadInfo(delivered, status, ctype, mtime, ranges_supported)
            except _Transient as exc:
                if delivered > before:
                    attempts.progressed()
                self._retry_or_raise(attempts, exc)
            finally:
                reply.close()

    @contextmanager
    def stream(
        self, path: str, params: Mapping[str, str] | None = None, *, chunk_size: int = 256 * 1024
    ) -> Iterator[Iterator[bytes]]:
        """A streamed body (e.g. `format=zip`, no Content-Length) as an iterator of chunks.

        Failures before the body starts are retried; a connection lost in the body raises
        Unavailable from the iterator (an archive stream cannot be resumed).
        """
        attempts = self._attempts("GET", path, None)
        reply = self._open(path, params, {"Accept-Encoding": "identity"}, attempts, listing=False)
        url = self._url(path)

        def body() -> Iterator[bytes]:
            try:
                yield from reply.chunks(chunk_size)
            except _Transient as exc:
                raise Unavailable(f"GET {url}: {exc.cause}") from None

        try:
            if reply.status != 200:
                raise ProtocolError(f"GET {url}: unexpected HTTP {reply.status}")
            yield body()
        finally:
            reply.close()

    def probe_ranges(self, path: str) -> bool:
        """True only if the server answers `Range: bytes=0-0` on `path` with 206."""
        headers = {"Range": "bytes=0-0", "Accept-Encoding": "identity"}
        reply = self._open(path, None, headers, self._attempts("GET", path, None), listing=False)
        reply.close()
        return reply.status == 206

    def check(self) -> None:
        """Verify, at mount time, that the URL is an XNAT and the credentials work.

        Raises Unavailable ("cannot reach URL: connection refused"), ProtocolError ("URL does
        not look like an XNAT server"), AuthenticationFailed or AccessDenied, with one-line
        messages. Uses at most one retry, so a wrong URL fails fast.
        """
        policy = RetryPolicy(retries=min(self.policy.retries, 1), deadline=self.policy.deadline)
        attempts = Attempts(
            policy,
            f"GET {self.base_url}/data/projects",
            clock=self._clock,
            sleep=self._sleep,
            on_retry=self._note_retry,
        )
        try:
            self._list("/data/projects", None, attempts)
        except RetriesExhausted as exc:
            raise Unavailable(f"cannot reach {self.base_url}: {exc.cause}") from None
        except (NotFound, ProtocolError):
            raise ProtocolError(f"{self.base_url} does not look like an XNAT server") from None
        except AuthenticationFailed:
            raise
        except AccessDenied as exc:
            if self._credentials is None:
                raise AccessDenied(
                    f"{self.base_url} requires a login: set XNATFS_USER and XNATFS_PASSWORD, "
                    "use --password-file or a netrc entry"
                ) from None
            raise AccessDenied(f"{self.base_url}: {exc}") from None

    def close(self) -> None:
        """Close every thread's session and its connections. The client is unusable after."""
        with self._lock:
            self._closed = True
            sessions = list(self._sessions)
        for session in sessions:
            session.close()

    # ----------------------------------------------------------------- requests

    def _attempts(self, method: str, path: str, cancel: threading.Event | None) -> Attempts:
        return Attempts(
            self.policy,
            f"{method} {self._url(path)}",
            clock=self._clock,
            sleep=self._sleep,
            cancel=cancel,
            on_retry=self._note_retry,
        )

    def _note_retry(self, what: str, delay: float) -> None:
        self._count("retries")
        log.debug("%s; retrying in %.2f s", what, delay)

    def _retry_or_raise(self, attempts: Attempts, exc: _Transient) -> None:
        attempts.failed(exc.cause, exc.retry_after)

    def _list(self, path: str, params: Mapping[str, str] | None, attempts: Attempts) -> Rows:
        query = {"format": "json", **(params or {})}
        while True:
            reply = self._open(path, query, {}, attempts, listing=True)
            try:
                if reply.status != 200:
                    raise ProtocolError(f"GET {self._url(path)}: unexpected HTTP {reply.status}")
                body = reply.read_all()
            except _Transient as exc:
                self._retry_or_raise(attempts, exc)
                continue
            finally:
                reply.close()
            return _parse_result_set(body, self._url(path))

    def _open(
        self,
        path: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str],
        attempts: Attempts,
        *,
        listing: bool,
    ) -> _Reply:
        """Send GET until a reply worth reading arrives; map statuses to errors.

        Returns an open reply with status 2xx (or 416 to a Range request); the caller closes it.
        For listings the body is read here (a login page is only recognisable from the body).
        """
        reauthed = False
        while True:
            attempts.check_cancel()
            try:
                reply, sent_cookie = self._send(path, params, headers)
            except _Transient as exc:
                self._retry_or_raise(attempts, exc)
                continue
            try:
                login_page = self._is_login_page(reply, listing)
            except _Transient as exc:
                reply.close()
                self._retry_or_raise(attempts, exc)
                continue
            status = reply.status
            if status == 401 or login_page:
                reply.close()
                if reauthed:
                    if listing and status != 401 and LOGIN_MARKER not in reply.head:
                        raise ProtocolError(f"GET {self._url(path)}: HTML instead of JSON")
                    raise self._auth_error(path)
                reauthed = True
                self._count("reauths")
                self._drop_cookie(sent_cookie)
                continue
            if status in RETRY_STATUSES:
                retry_after = parse_retry_after(reply.headers.get("Retry-After"))
                reply.close()
                self._retry_or_raise(attempts, _Transient(f"HTTP {status}", retry_after))
                continue
            if 200 <= status < 300 or (status == 416 and "Range" in headers):
                return reply
            message = self._server_message(reply)
            reply.close()
            raise self._status_error(status, path, message)

    def _send(
        self, path: str, params: Mapping[str, str] | None, headers: Mapping[str, str]
    ) -> tuple[_Reply, str | None]:
        """One HTTP exchange up to the response headers; returns the reply and the cookie sent."""
        if self._closed:
            raise Unavailable(f"{self.base_url}: client closed")
        session = self._session()
        sent_cookie = self._cookie_in(session)
        display = path + ("?" + urlencode(params) if params else "")
        started = time.monotonic()
        self._count("requests")
        try:
            resp = session.get(
                self.base_url + path,
                params=params,
                headers=dict(headers),
                timeout=self._timeout,
                stream=True,
            )
        except (
            requests.exceptions.InvalidURL,
            requests.exceptions.InvalidSchema,
            requests.exceptions.TooManyRedirects,
        ) as exc:
            raise ProtocolError(f"cannot request {self._url(path)}: {type(exc).__name__}") from None
        except Exception as exc:  # requests, urllib3 and socket errors alike
            cause = describe(exc)
            ms = (time.monotonic() - started) * 1000
            log.debug("GET %s -> failed (%s), %.0f ms", display, cause, ms)
            raise _Transient(cause) from None
        self._cookie_out(session, resp)
        return _Reply(resp, display, started), sent_cookie

    def _is_login_page(self, reply: _Reply, listing: bool) -> bool:
        if reply.status != 200:
            return False
        ctype = reply.headers.get("Content-Type", "").lower()
        if listing:
            head = reply.peek(1024)
            start = head.lstrip()[:15].lower()
            if "text/html" in ctype or start.startswith((b"<!doctype", b"<html")):
                reply.peek(_HTML_SNIFF)
                return True
            return False
        # A file may legitimately be HTML; XNAT sends files with Content-Disposition.
        if "text/html" in ctype and "Content-Disposition" not in reply.headers:
            return LOGIN_MARKER in reply.peek(_HTML_SNIFF)
        return False

    def _auth_error(self, path: str) -> AccessDenied:
        if self._credentials is not None:
            return AuthenticationFailed(
                f"XNAT rejected the credentials for user {self._credentials.user!r}"
            )
        return AccessDenied(f"GET {self._url(path)}: XNAT requires a login (no credentials set)")

    def _status_error(self, status: int, path: str, message: str) -> Exception:
        detail = f": {message}" if message else ""
        url = self._url(path)
        if status == 404 or status == 410:
            return NotFound(f"not found: {url}{detail}")
        if status == 403:
            return AccessDenied(f"access denied: {url}{detail}")
        if status >= 500:
            return Unavailable(f"GET {url}: server error {status}{detail}")
        return ProtocolError(f"GET {url}: unexpected HTTP {status}{detail}")

    @staticmethod
    def _server_message(reply: _Reply) -> str:
        """The `<h3>` of a Restlet status page, or a short plain-text body; "" otherwise."""
        try:
            body = reply.peek(4096)
        except _Transient:
            return ""
        text = body.decode("utf-8", "replace")
        lower = text.lower()
        if "<h3>" in lower and "</h3>" in lower:
            text = text[lower.index("<h3>") + 4 : lower.index("</h3>")]
        elif "<" in text:
            return ""
        text = " ".join(text.split())
        return text[:200]

    @staticmethod
    def _body_extent(reply: _Reply, path: str) -> tuple[int | None, int]:
        """(full file length if known, offset of the first body byte)."""
        encoding = reply.headers.get("Content-Encoding", "identity").lower()
        if encoding not in ("", "identity"):
            return None, 0
        length = _int_header(reply.headers.get("Content-Length"))
        if reply.status != 206:
            return length, 0
        content_range = reply.headers.get("Content-Range", "")
        try:
            unit, _, spec = content_range.partition(" ")
            span, _, total = spec.partition("/")
            first, _, _last = span.partition("-")
            if unit != "bytes":
                raise ValueError(unit)
            return (None if total == "*" else int(total)), int(first)
        except ValueError:
            raise ProtocolError(f"GET {path}: malformed Content-Range") from None

    def _url(self, path: str) -> str:
        return self.base_url + path

    # ----------------------------------------------------------------- sessions and cookies

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is not None:
            return session
        session = _Session()
        session.headers["User-Agent"] = self._user_agent
        if self._credentials is not None:
            session.auth = requests.auth.HTTPBasicAuth(
                self._credentials.user, self._credentials.password
            )
        else:
            session.auth = _NoAuth()
        adapter = requests.adapters.HTTPAdapter(
            pool_connections=1, pool_maxsize=self._pool_size, max_retries=0
        )
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        with self._lock:
            if self._closed:
                session.close()
                raise Unavailable(f"{self.base_url}: client closed")
            self._sessions.add(session)
            self._counts["sessions"] += 1
        self._local.session = session
        # Worker threads come and go (trio retires idle ones); close their pools with them.
        weakref.finalize(threading.current_thread(), session.close)
        return session

    def _cookie_in(self, session: requests.Session) -> str | None:
        """Make this thread's jar carry the shared session cookie; return the value sent."""
        with self._lock:
            shared = self._jsession
        jar = session.cookies
        mine = _find_cookie(jar)
        if shared is None:
            if mine is not None:
                _clear_cookie(jar)
            return None
        if mine is None or mine.value != shared.value:
            _clear_cookie(jar)
            jar.set_cookie(copy.copy(shared))
        return shared.value

    def _cookie_out(self, session: requests.Session, resp: requests.Response) -> None:
        """Publish a session cookie the server just set, for the other threads."""
        if not any(c.name == SESSION_COOKIE for r in (*resp.history, resp) for c in r.cookies):
            return
        cookie = _find_cookie(session.cookies)
        if cookie is not None:
            with self._lock:
                self._jsession = copy.copy(cookie)

    def _drop_cookie(self, sent: str | None) -> None:
        """Forget the server session that was refused (unless another thread replaced it)."""
        with self._lock:
            if self._jsession is not None and self._jsession.value == sent:
                self._jsession = None
        session = self._session()
        mine = _find_cookie(session.cookies)
        if mine is not None and mine.value == sent:
            _clear_cookie(session.cookies)

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1


# --------------------------------------------------------------------- helpers


def _find_cookie(jar: CookieJar) -> Cookie | None:
    for cookie in jar:
        if cookie.name == SESSION_COOKIE:
            return cookie
    return None


def _clear_cookie(jar: CookieJar) -> None:
    for cookie in [c for c in jar if c.name == SESSION_COOKIE]:
        jar.clear(cookie.domain, cookie.path, cookie.name)


def _differs(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and a != b


def _int_header(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        number = int(value.strip())
    except ValueError:
        return None
    return number if number >= 0 else None


def _http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def _cell(value: object, url: str) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise ProtocolError(f"GET {url}: a listing cell is not a plain value")


def _parse_result_set(body: bytes, url: str) -> list[dict[str, str]]:
    """Validate `{"ResultSet": {"Result": [...]}}` and return its rows with string values."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError(f"GET {url}: the reply is not JSON") from None
    result_set = doc.get("ResultSet") if isinstance(doc, dict) else None
    rows = result_set.get("Result") if isinstance(result_set, dict) else None
    if not isinstance(rows, list):
        raise ProtocolError(f"GET {url}: the reply has no ResultSet.Result list")
    out: list[dict[str, str]] = []
    for row in rows:
        if not isinstance(row, dict):
            raise ProtocolError(f"GET {url}: a listing row is not an object")
        out.append({str(k): _cell(v, url) for k, v in row.items()})
    return out
