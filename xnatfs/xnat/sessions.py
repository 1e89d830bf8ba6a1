"""Per-thread `requests.Session` objects that share one XNAT server session.

requests does not promise that a Session is thread-safe, so each thread gets its own; all of
them share one server session: the `JSESSIONID` cookie the server last set is copied into each
thread's cookie jar under a lock before a request. Basic credentials are sent on every request
as well, so when XNAT's session expires it silently authenticates again and sets a new cookie.

requests' own netrc lookup is disabled: a session-level auth object is always set, and
redirects never pick up netrc credentials. Cookie values are never logged.

Redirects are followed, but credentials stay with the server: a hop to any other origin
(scheme, host or port, the default ports filled in: `http://host` and `https://host` are two
origins) goes without the Authorization header and without any cookie, and a hop from https to
http is refused (`RedirectRefused`), whoever it would go to. A session remembers the last other
origin it was sent on to (`elsewhere`), so a refusal there can be explained.
"""

from __future__ import annotations

import copy
import threading
import weakref
from http.cookiejar import Cookie, CookieJar
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.adapters
import requests.auth

from xnatfs.errors import Unavailable
from xnatfs.xnat.auth import Credentials

SESSION_COOKIE = "JSESSIONID"


class _NoAuth(requests.auth.AuthBase):
    """Stands in for "no credentials" so that requests does not look up netrc itself."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        return r


class RedirectRefused(requests.exceptions.RequestException):
    """A redirect from https to plain http: not followed (it would send the request in clear)."""


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of `url`, the port filled in when it is the scheme's default."""
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or default


class _Session(requests.Session):
    """A session that keeps credentials and cookies for the origin of `base_url`."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.origin = origin(base_url)
        self.elsewhere: str | None = None  # the last other origin a redirect led to

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: Any) -> None:
        # requests calls this for every redirect hop, after it has put the jar's cookies on the
        # new request; its own version would apply netrc.
        old, new = urlsplit(str(response.request.url)), urlsplit(str(prepared_request.url))
        if old.scheme == "https" and new.scheme != "https":
            raise RedirectRefused(
                f"a redirect from https to {new.scheme}://{new.hostname} was refused"
            )
        target = origin(str(prepared_request.url))
        if target != self.origin:
            self.elsewhere = f"{target[0]}://{target[1]}:{target[2]}"
            headers = prepared_request.headers
            headers.pop("Authorization", None)
            headers.pop("Cookie", None)


class SessionPool:
    """One `requests.Session` per calling thread, plus the shared session cookie.

    Every method may be called from any thread. After `close()` no new session is handed out
    (`session()` raises Unavailable) and `closed` is True.
    """

    def __init__(
        self, base_url: str, credentials: Credentials | None, *, pool_size: int, user_agent: str
    ) -> None:
        self._base_url = base_url
        self._host = (urlsplit(base_url).hostname or "").lower()
        self._credentials = credentials
        self._pool_size = pool_size
        self._user_agent = user_agent
        self._local = threading.local()
        self._lock = threading.Lock()
        self._sessions: weakref.WeakSet[requests.Session] = weakref.WeakSet()
        self._jsession: Cookie | None = None
        self._created = 0
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def created(self) -> int:
        """How many sessions were created (one per thread that asked for one)."""
        with self._lock:
            return self._created

    def session(self) -> requests.Session:
        """This thread's session, created on first use."""
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is not None:
            return session
        session = _Session(self._base_url)
        session.headers["User-Agent"] = self._user_agent
        # Only what `replies.Reply` inflates itself, a bounded piece at a time.
        session.headers["Accept-Encoding"] = "gzip, deflate"
        if self._credentials is not None:
            # As UTF-8 bytes: what XNAT (Spring Security) decodes, and requests would otherwise
            # encode as Latin-1 and fail on any other character.
            session.auth = requests.auth.HTTPBasicAuth(
                self._credentials.user.encode("utf-8"),
                self._credentials.password.encode("utf-8"),
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
                raise Unavailable(f"{self._base_url}: client closed")
            self._sessions.add(session)
            self._created += 1
        self._local.session = session
        # Worker threads come and go (trio retires idle ones); close their pools with them.
        weakref.finalize(threading.current_thread(), session.close)
        return session

    def elsewhere(self) -> str | None:
        """The last other origin (`scheme://host:port`) a redirect led this thread's session
        to, without credentials; None if none did."""
        return getattr(self.session(), "elsewhere", None)

    def cookie_in(self, session: requests.Session) -> str | None:
        """Make this thread's jar carry the shared session cookie; return the value sent."""
        with self._lock:
            shared = self._jsession
        jar = session.cookies
        mine = _find_cookie(jar, self._host)
        if shared is None:
            if mine is not None:
                _clear_cookie(jar, self._host)
            return None
        if mine is None or mine.value != shared.value:
            _clear_cookie(jar, self._host)
            jar.set_cookie(copy.copy(shared))
        return shared.value

    def cookie_out(self, session: requests.Session, resp: requests.Response) -> None:
        """Publish a session cookie the server just set, for the other threads."""
        if not any(c.name == SESSION_COOKIE for r in (*resp.history, resp) for c in r.cookies):
            return
        cookie = _find_cookie(session.cookies, self._host)
        if cookie is not None:
            with self._lock:
                self._jsession = copy.copy(cookie)

    def drop_cookie(self, sent: str | None) -> None:
        """Forget the server session that was refused (unless another thread replaced it)."""
        with self._lock:
            if self._jsession is not None and self._jsession.value == sent:
                self._jsession = None
        session = self.session()
        mine = _find_cookie(session.cookies, self._host)
        if mine is not None and mine.value == sent:
            _clear_cookie(session.cookies, self._host)

    def close(self) -> None:
        """Close every thread's session and its connections."""
        with self._lock:
            self._closed = True
            sessions = list(self._sessions)
        for session in sessions:
            session.close()


def _ours(cookie: Cookie, host: str) -> bool:
    """Whether `cookie` is the server's own (another host a redirect went to may set one of
    the same name, which must never be taken for the server's session)."""
    domain = cookie.domain.lstrip(".").lower()
    return cookie.name == SESSION_COOKIE and (host == domain or host.endswith("." + domain))


def _find_cookie(jar: CookieJar, host: str) -> Cookie | None:
    for cookie in jar:
        if _ours(cookie, host):
            return cookie
    return None


def _clear_cookie(jar: CookieJar, host: str) -> None:
    for cookie in [c for c in jar if _ours(c, host)]:
        jar.clear(cookie.domain, cookie.path, cookie.name)
