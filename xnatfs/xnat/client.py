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

import base64
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

import requests

from xnatfs import __version__
from xnatfs.errors import (
    AccessDenied,
    AuthenticationFailed,
    ConfigError,
    NotFound,
    ProtocolError,
    Unavailable,
)
from xnatfs.xnat import bodies
from xnatfs.xnat.auth import Credentials
from xnatfs.xnat.bodies import DownloadInfo, SameCallback, WriteCallback
from xnatfs.xnat.replies import (
    LOGIN_MARKER,
    Reply,
    TooLarge,
    Transient,
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
from xnatfs.xnat.sessions import RedirectRefused, SessionPool

log = logging.getLogger("xnatfs.http")

RETRY_STATUSES = frozenset({429, 502, 503, 504})

Rows = list[dict[str, str]]  # a name `list` inside XnatClient would shadow


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
        max_listing_bytes: int | None = None,
        max_listing_rows: int | None = None,
        listing_columns: Collection[str] | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.username is not None or parts.password is not None:
            # URLs end up in messages and logs; credentials travel only in the auth header.
            raise ConfigError("the XNAT URL must not contain credentials")
        self.base_url = base_url.rstrip("/")
        self._credentials = credentials
        self._timeout = (connect_timeout, read_timeout)
        self.chunk_size = chunk_size  # bytes read from a reply body at a time
        self._max_listing_bytes = max_listing_bytes
        self._max_listing_rows = max_listing_rows
        self._columns = None if listing_columns is None else frozenset(listing_columns)
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

        Adds `format=json`. Every value comes back as a string (`""` for null); only the
        client's `listing_columns` are kept, when it has them. Raises ProtocolError for anything
        but a `{"ResultSet": {"Result": [{...}, ...]}}` document, and for a listing larger than
        `max_listing_bytes` once inflated or with more than `max_listing_rows` rows (read no
        further than the limit; not retried).
        """
        return self._list(path, params, self.attempts("GET", path, None))

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
        """Stream a file into `write(offset, chunk)` (see `bodies.download`)."""
        return bodies.download(
            self,
            path,
            write,
            same=same,
            cancel=cancel,
            params=params,
            chunk_size=chunk_size or self.chunk_size,
        )

    def stream(
        self, path: str, params: Mapping[str, str] | None = None, *, chunk_size: int | None = None
    ) -> AbstractContextManager[Iterator[bytes]]:
        """A streamed body as an iterator of chunks (see `bodies.stream`)."""
        return bodies.stream(self, path, params, chunk_size or self.chunk_size)

    def probe_ranges(self, path: str) -> bool:
        """True only if the server answers `Range: bytes=0-0` on `path` with 206."""
        return bodies.probe_ranges(self, path)

    def size_of(self, path: str) -> int | None:
        """The length of the file at `path` without its body (see `bodies.size_of`)."""
        return bodies.size_of(self, path)

    def check(self) -> Rows:
        """Verify, at mount time, that the URL is an XNAT and the credentials work; returns the
        projects listing it read to find out (`list("/data/projects")`).

        Raises Unavailable ("cannot reach URL: connection refused"), ProtocolError ("URL does
        not look like an XNAT server ...: does this URL include the XNAT context path?", or,
        when the server sent the request on to another origin that refused it, "URL redirects
        to ORIGIN, which gets no credentials"),
        AuthenticationFailed or AccessDenied, with one-line messages. Uses at most one retry,
        so a wrong URL fails fast.
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
        except (NotFound, ProtocolError, AccessDenied) as exc:
            elsewhere = self._pool.elsewhere()
            if elsewhere is not None:
                # Credentials never follow a redirect to another origin (even http -> https).
                raise ProtocolError(
                    f"{self.base_url} redirects to {elsewhere}, which gets no credentials: "
                    "give that address as the URL"
                ) from None
            if isinstance(exc, AuthenticationFailed):
                raise
            if not isinstance(exc, AccessDenied):
                # The usual cause: a site served below a context path (https://host/xnat)
                # given without it, or with the wrong one.
                raise ProtocolError(
                    f"{self.base_url} does not look like an XNAT server (no project listing at "
                    f"{self.base_url}/data/projects): does this URL include the XNAT context path?"
                ) from None
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

    def attempts(self, method: str, path: str, cancel: threading.Event | None) -> Attempts:
        return Attempts(
            self.policy,
            f"{method} {self.url(path)}",
            clock=self._clock,
            sleep=self._sleep,
            cancel=cancel,
            on_retry=self._note_retry,
        )

    def _note_retry(self, what: str, delay: float) -> None:
        self._count("retries")
        log.debug("%s; retrying in %.2f s", what, delay)

    def retry_or_raise(self, attempts: Attempts, exc: Transient) -> None:
        attempts.failed(exc.cause, exc.retry_after)

    def _list(self, path: str, params: Mapping[str, str] | None, attempts: Attempts) -> Rows:
        query = {"format": "json", **(params or {})}
        while True:
            reply = self.open_reply(path, query, {}, attempts, listing=True)
            try:
                if reply.status != 200:
                    raise ProtocolError(f"GET {self.url(path)}: unexpected HTTP {reply.status}")
                body = reply.read_all(self._max_listing_bytes)
            except Transient as exc:
                self.retry_or_raise(attempts, exc)
                continue
            except TooLarge:
                raise TooLarge(
                    f"GET {self.url(path)}: the listing is larger than "
                    f"{self._max_listing_bytes} bytes (max_listing_size); refused"
                ) from None
            finally:
                reply.close()
            try:
                return parse_result_set(
                    body, self.url(path), columns=self._columns, max_rows=self._max_listing_rows
                )
            except TooLarge:
                raise TooLarge(
                    f"GET {self.url(path)}: the listing has more than {self._max_listing_rows} "
                    "rows (max_listing_rows); refused"
                ) from None

    def open_reply(
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
                self.retry_or_raise(attempts, exc)
                continue
            try:
                login_page = is_login_page(reply, listing)
            except Transient as exc:
                reply.close()
                self.retry_or_raise(attempts, exc)
                continue
            status = reply.status
            if status == 401 or login_page:
                reply.close()
                if reauthed:
                    if listing and status != 401 and LOGIN_MARKER not in reply.head:
                        raise ProtocolError(f"GET {self.url(path)}: HTML instead of JSON")
                    raise self._auth_error(path)
                reauthed = True
                self._count("reauths")
                self._pool.drop_cookie(sent_cookie)
                continue
            if status in RETRY_STATUSES:
                retry_after = parse_retry_after(reply.headers.get("Retry-After"))
                reply.close()
                self.retry_or_raise(attempts, Transient(f"HTTP {status}", retry_after))
                continue
            if 200 <= status < 300 or (status == 416 and "Range" in headers):
                return reply
            error = status_error(reply, self.url(path), self._redact)
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
        except RedirectRefused as exc:
            raise ProtocolError(f"GET {self.url(path)}: {exc}") from None
        except (
            requests.exceptions.InvalidURL,
            requests.exceptions.InvalidSchema,
            requests.exceptions.TooManyRedirects,
        ) as exc:
            raise ProtocolError(f"cannot request {self.url(path)}: {type(exc).__name__}") from None
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
        return AccessDenied(f"GET {self.url(path)}: XNAT requires a login (no credentials set)")

    def url(self, path: str) -> str:
        return self.base_url + path

    def _redact(self, text: str) -> str:
        """`text` (a server's message) without the password, in any form it was sent in: as
        is, URL-quoted, or inside the Basic token."""
        if self._credentials is None or not self._credentials.password:
            return text
        user, password = self._credentials.user, self._credentials.password
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        for form in sorted({token, password, quote(password, safe="")}, key=len, reverse=True):
            text = text.replace(form, "***")
        return text

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1
