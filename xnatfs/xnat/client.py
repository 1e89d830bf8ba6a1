"""The synchronous XNAT client: listings, file downloads and archive streams over requests.

Threads: every method may be called from any thread. Each thread gets its own
`requests.Session`, all sharing one server session (the `JSESSIONID` cookie; see `sessions.py`).
Basic credentials are sent on every request as well, so when XNAT's session expires it silently
authenticates again and sets a new cookie.

Authentication failures: a 401, or a 200 that carries XNAT's login page (any HTML reply to a
listing; for a file, HTML without `Content-Disposition` that contains the `Login.vm` marker),
drops the cookie and retries once with Basic alone; still refused -> `AuthenticationFailed`
(credentials configured) or `AccessDenied` (anonymous). 403 -> `AccessDenied`, 404 -> `NotFound`.

Retries: connection errors, timeouts, 429, 502, 503 and 504 are retried with jittered
exponential backoff (see `retry.py`); `Retry-After` seconds are honoured. A 500 is not retried:
in XNAT it comes from a failing handler (e.g. an unknown path below a session), and asking again
gives the same answer, so it is reported at once as `Unavailable`.

Environment: requests' own netrc lookup is disabled (see `sessions.py`), so credentials come
only from `xnatfs.app.credentials`. Proxy variables (`HTTPS_PROXY`, `NO_PROXY`) and
`REQUESTS_CA_BUNDLE` keep working.

Logging: one DEBUG line per HTTP exchange on the `xnatfs.http` logger (method, path and query,
status, bytes, milliseconds). Passwords, Authorization headers and cookie values are never
logged and never appear in exception messages.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import requests

from xnatfs import __version__
from xnatfs.errors import (
    AccessDenied,
    AuthenticationFailed,
    ConfigError,
    IntegrityError,
    NotFound,
    ProtocolError,
    Unavailable,
)
from xnatfs.xnat.auth import Credentials
from xnatfs.xnat.replies import (
    LOGIN_MARKER,
    Reply,
    Transient,
    body_extent,
    http_date,
    is_login_page,
    parse_result_set,
    status_error,
)
from xnatfs.xnat.retry import (
    Attempts,
    RetriesExhausted,
    RetryPolicy,
    describe,
    parse_retry_after,
    real_sleep,
)
from xnatfs.xnat.sessions import SessionPool

log = logging.getLogger("xnatfs.http")

RETRY_STATUSES = frozenset({429, 502, 503, 504})

WriteCallback = Callable[[int, bytes], None]
SameCallback = Callable[[int, bytes], bool]
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
        chunk_size: int = 256 * 1024,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.username is not None or parts.password is not None:
            # URLs end up in messages and logs; credentials travel only in the auth header.
            raise ConfigError("the XNAT URL must not contain credentials")
        self.base_url = base_url.rstrip("/")
        self._credentials = credentials
        self._timeout = (connect_timeout, read_timeout)
        self.chunk_size = chunk_size  # bytes read from a reply body at a time
        self.policy = RetryPolicy(retries=retries, deadline=retry_deadline)
        self._pool = SessionPool(
            self.base_url, credentials, pool_size=pool_size, user_agent=user_agent
        )
        self._lock = threading.Lock()  # guards _counts
        self._counts = {"requests": 0, "retries": 0, "reauths": 0}
        # Seams for tests: time source and the wait between attempts.
        self._clock: Callable[[], float] = time.monotonic
        self._sleep: Callable[[float, threading.Event | None], None] = real_sleep

    # ----------------------------------------------------------------- public API

    @property
    def stats(self) -> ClientStats:
        sessions = self._pool.created
        with self._lock:
            return ClientStats(**self._counts, sessions=sessions)

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
        same: SameCallback | None = None,
        cancel: threading.Event | None = None,
        params: Mapping[str, str] | None = None,
        chunk_size: int | None = None,
    ) -> DownloadInfo:
        """Stream a file into `write(offset, chunk)`, called in order from this thread.

        Chunks are passed on as the socket delivers them (at most `chunk_size` bytes each). A
        connection lost mid-body is retried within the retry budget (which restarts whenever
        bytes arrived), and what follows must provably be the same file version: a `Range`
        from the first missing byte is sent only with `If-Range` naming the first reply's
        `ETag` or `Last-Modified`, so a changed file comes back whole; a whole body (a server
        that ignores `Range`, or none was sent) is read again from the start, and the bytes
        already delivered are compared with `same(offset, chunk)` (True when they equal what
        was written there) instead of being trusted. A body shorter than `Content-Length`
        counts as lost. Raises IntegrityError if the file's length, validators or re-sent bytes
        change between attempts, Unavailable once `cancel` is set. `chunk_size` defaults to the
        client's.
        """
        attempts = self._attempts("GET", path, cancel)
        delivered = 0
        first: _FirstReply | None = None
        ranges_supported = False
        try_range = True
        while True:
            headers = {"Accept-Encoding": "identity"}
            validator = first.validator if first is not None else None
            if delivered and try_range and validator is not None:
                headers["Range"] = f"bytes={delivered}-"
                headers["If-Range"] = validator
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
                total, start = body_extent(reply, path)
                if reply.status == 206:
                    ranges_supported = True
                    if start != delivered:
                        raise ProtocolError(
                            f"GET {self._url(path)}: asked for bytes from {delivered}, got {start}"
                        )
                elif "Range" in headers:
                    try_range = False  # the server sends whole files; compare instead
                this = _FirstReply.of(reply, total)
                if first is None:
                    first = this
                    accept = reply.headers.get("Accept-Ranges", "").lower()
                    ranges_supported = ranges_supported or accept == "bytes"
                elif first.differs(this):
                    raise IntegrityError(
                        f"GET {self._url(path)}: the file changed on the server during the download"
                    )
                pos = start
                for chunk in reply.chunks(chunk_size or self.chunk_size):
                    attempts.check_cancel()
                    end = pos + len(chunk)
                    if pos < delivered:
                        # Bytes delivered before: proven equal, never trusted blindly.
                        seen = chunk[: delivered - pos]
                        if same is not None and not same(pos, seen):
                            raise IntegrityError(
                                f"GET {self._url(path)}: the file changed on the server "
                                "during the download"
                            )
                    if end > delivered:
                        piece = chunk[delivered - pos :] if pos < delivered else chunk
                        write(delivered, piece)
                        delivered += len(piece)
                    pos = end
                if total is not None and delivered != total:
                    raise Transient("connection closed before the reply was complete")
                return DownloadInfo(
                    delivered, first.status, first.content_type, first.mtime, ranges_supported
                )
            except Transient as exc:
                if delivered > before:
                    attempts.progressed()
                self._retry_or_raise(attempts, exc)
            finally:
                reply.close()

    @contextmanager
    def stream(
        self, path: str, params: Mapping[str, str] | None = None, *, chunk_size: int | None = None
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
                yield from reply.chunks(chunk_size or self.chunk_size)
            except Transient as exc:
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

    def size_of(self, path: str) -> int | None:
        """The length of the file at `path` without its body: from a HEAD, or, where HEAD is
        refused (405, 501), from the headers of a GET whose body is never read. None when the
        server does not say (no Content-Length). Errors as for `download`."""
        headers = {"Accept-Encoding": "identity"}
        attempts = self._attempts("HEAD", path, None)
        for method in ("HEAD", "GET"):
            try:
                reply = self._open(path, None, headers, attempts, listing=False, method=method)
            except (ProtocolError, Unavailable):
                if method == "GET":
                    raise
                continue  # HEAD refused (or broken behind a proxy): ask with GET
            try:
                total, _start = body_extent(reply, path)
                return total
            finally:
                reply.close()
        return None  # pragma: no cover - the loop returns or raises

    def check(self) -> Rows:
        """Verify, at mount time, that the URL is an XNAT and the credentials work; returns the
        projects listing it read to find out (`list("/data/projects")`).

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
            return self._list("/data/projects", None, attempts)
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
        self._pool.close()

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

    def _retry_or_raise(self, attempts: Attempts, exc: Transient) -> None:
        attempts.failed(exc.cause, exc.retry_after)

    def _list(self, path: str, params: Mapping[str, str] | None, attempts: Attempts) -> Rows:
        query = {"format": "json", **(params or {})}
        while True:
            reply = self._open(path, query, {}, attempts, listing=True)
            try:
                if reply.status != 200:
                    raise ProtocolError(f"GET {self._url(path)}: unexpected HTTP {reply.status}")
                body = reply.read_all()
            except Transient as exc:
                self._retry_or_raise(attempts, exc)
                continue
            finally:
                reply.close()
            return parse_result_set(body, self._url(path))

    def _open(
        self,
        path: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str],
        attempts: Attempts,
        *,
        listing: bool,
        method: str = "GET",
    ) -> Reply:
        """Send GET until a reply worth reading arrives; map statuses to errors.

        Returns an open reply with status 2xx (or 416 to a Range request); the caller closes it.
        For listings the body is read here (a login page is only recognisable from the body).
        """
        reauthed = False
        while True:
            attempts.check_cancel()
            try:
                reply, sent_cookie = self._send(path, params, headers, method)
            except Transient as exc:
                self._retry_or_raise(attempts, exc)
                continue
            try:
                login_page = is_login_page(reply, listing)
            except Transient as exc:
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
                self._pool.drop_cookie(sent_cookie)
                continue
            if status in RETRY_STATUSES:
                retry_after = parse_retry_after(reply.headers.get("Retry-After"))
                reply.close()
                self._retry_or_raise(attempts, Transient(f"HTTP {status}", retry_after))
                continue
            if 200 <= status < 300 or (status == 416 and "Range" in headers):
                return reply
            error = status_error(reply, self._url(path))
            reply.close()
            raise error

    def _send(
        self,
        path: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str],
        method: str = "GET",
    ) -> tuple[Reply, str | None]:
        """One HTTP exchange up to the response headers; returns the reply and the cookie sent."""
        if self._pool.closed:
            raise Unavailable(f"{self.base_url}: client closed")
        session = self._pool.session()
        sent_cookie = self._pool.cookie_in(session)
        display = path + ("?" + urlencode(params) if params else "")
        started = time.monotonic()
        self._count("requests")
        try:
            resp = session.request(
                method,
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
            raise Transient(cause) from None
        self._pool.cookie_out(session, resp)
        return Reply(resp, display, started), sent_cookie

    def _auth_error(self, path: str) -> AccessDenied:
        if self._credentials is not None:
            return AuthenticationFailed(
                f"XNAT rejected the credentials for user {self._credentials.user!r}"
            )
        return AccessDenied(f"GET {self._url(path)}: XNAT requires a login (no credentials set)")

    def _url(self, path: str) -> str:
        return self.base_url + path

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1


def _differs(a: object, b: object) -> bool:
    return a is not None and b is not None and a != b


@dataclass(frozen=True)
class _FirstReply:
    """What one reply says about the file version it carries."""

    status: int
    content_type: str
    mtime: float | None
    size: int | None
    etag: str | None
    last_modified: str | None

    @classmethod
    def of(cls, reply: Reply, size: int | None) -> _FirstReply:
        last_modified = reply.headers.get("Last-Modified")
        return cls(
            status=reply.status,
            content_type=reply.headers.get("Content-Type", ""),
            mtime=http_date(last_modified),
            size=size,
            etag=reply.headers.get("ETag"),
            last_modified=last_modified,
        )

    @property
    def validator(self) -> str | None:
        """The `If-Range` value that makes a server send the rest of this version only."""
        if self.etag and not self.etag.startswith("W/"):
            return self.etag
        return self.last_modified or None

    def differs(self, later: _FirstReply) -> bool:
        return (
            _differs(self.size, later.size)
            or _differs(self.mtime, later.mtime)
            or _differs(self.etag, later.etag)
        )
