"""SessionPool: one requests.Session per thread, one server session cookie shared by all, and no
credentials from anywhere but the caller (never netrc).

Requests are sent the way the client sends them: `cookie_in` before, `cookie_out` after.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
import requests.adapters
import urllib3

from tests.support.xnat_stub import Reply, Seen, StubAuth, XnatStub, json_reply
from xnatfs.errors import Unavailable
from xnatfs.xnat.auth import Credentials
from xnatfs.xnat.sessions import RedirectRefused, SessionPool

PASSWORD = "pa55-w0rd-never-shown"
ALICE = Credentials("alice", PASSWORD)
PROJECTS = "/data/projects"
AGENT = "xnatfs-test/1.0"

T = TypeVar("T")


def in_thread(fn: Callable[[], T]) -> T:
    """Run `fn` in a new thread and return its result (or raise its exception) here."""
    out: list[T] = []
    err: list[BaseException] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as exc:
            err.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    if err:
        raise err[0]
    return out[0]


def get(pool: SessionPool, url: str) -> tuple[requests.Response, str | None]:
    """One request from the calling thread, as the client makes it; the cookie value sent."""
    session = pool.session()
    sent = pool.cookie_in(session)
    resp = session.get(url, timeout=10)
    pool.cookie_out(session, resp)
    return resp, sent


@pytest.fixture
def make_pool() -> Iterator[Callable[..., SessionPool]]:
    pools: list[SessionPool] = []

    def make(url: str, credentials: Credentials | None = None) -> SessionPool:
        pool = SessionPool(url, credentials, pool_size=4, user_agent=AGENT)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.close()


def cookie_route(value: str) -> Reply:
    """A reply that starts server session `value`."""
    return Reply(body=b"{}", headers={"Set-Cookie": f"JSESSIONID={value}; Path=/; HttpOnly"})


# --- sessions per thread --------------------------------------------------------------------------


def test_each_thread_gets_its_own_session_once(make_pool: Callable[..., SessionPool]) -> None:
    pool = make_pool("http://127.0.0.1:9")
    mine = pool.session()
    assert pool.session() is mine
    other = in_thread(pool.session)
    assert other is not mine
    assert pool.created == 2
    assert in_thread(lambda: pool.session() is pool.session())
    assert pool.created == 3


def test_sessions_send_the_user_agent_and_the_given_credentials(
    make_pool: Callable[..., SessionPool],
) -> None:
    with XnatStub() as stub:
        stub.route(PROJECTS, json_reply([]))
        get(make_pool(stub.url, ALICE), stub.url + PROJECTS)
        in_thread(lambda: get(make_pool(stub.url), stub.url + PROJECTS))
        with_creds, anonymous = stub.seen
        assert with_creds.headers["user-agent"] == AGENT == anonymous.headers["user-agent"]
        assert with_creds.basic == ("alice", PASSWORD)
        assert "authorization" not in anonymous.headers


# --- the shared server session ------------------------------------------------------------------


def test_a_session_cookie_set_in_one_thread_is_sent_by_another(
    make_pool: Callable[..., SessionPool],
) -> None:
    with XnatStub(StubAuth({"alice": PASSWORD})) as stub:
        assert stub.auth is not None
        stub.route(PROJECTS, json_reply([]))
        pool = make_pool(stub.url, ALICE)
        first, sent = in_thread(lambda: get(pool, stub.url + PROJECTS))
        assert first.status_code == 200 and sent is None
        [sid] = stub.auth.issued
        second, sent = in_thread(lambda: get(pool, stub.url + PROJECTS))
        assert second.status_code == 200
        assert sent == sid
        assert stub.seen[-1].cookie("JSESSIONID") == sid
        # The server saw a known session: it started no second one.
        assert stub.auth.issued == [sid]
        assert pool.created == 2


def test_drop_cookie_forgets_only_the_refused_value(
    make_pool: Callable[..., SessionPool],
) -> None:
    with XnatStub() as stub, ThreadPoolExecutor(1) as other:
        stub.route("/a", cookie_route("AAA"))
        stub.route("/b", cookie_route("BBB"))
        stub.route(PROJECTS, json_reply([]))
        pool = make_pool(stub.url, ALICE)

        def cookie_sent() -> str | None:
            get(pool, stub.url + PROJECTS)
            return stub.seen[-1].cookie("JSESSIONID")

        def elsewhere(fn: Callable[[], T]) -> T:
            # The same other thread every time, so its session keeps its own cookie jar.
            return other.submit(fn).result(30)

        get(pool, stub.url + "/a")
        pool.drop_cookie("ZZZ")  # a refusal of a value that is not the current one
        assert cookie_sent() == "AAA"
        # Another thread's request replaced the session; a late refusal of the old one must
        # not throw the new one away.
        elsewhere(lambda: get(pool, stub.url + "/b"))
        pool.drop_cookie("AAA")
        assert cookie_sent() == "BBB"
        assert elsewhere(cookie_sent) == "BBB"
        # Refusing the current value forgets it everywhere, also in jars that still hold it.
        pool.drop_cookie("BBB")
        assert "JSESSIONID" not in pool.session().cookies
        assert elsewhere(cookie_sent) is None
        assert cookie_sent() is None


def test_a_reply_without_a_session_cookie_keeps_the_shared_one(
    make_pool: Callable[..., SessionPool],
) -> None:
    with XnatStub() as stub:
        stub.route("/a", cookie_route("AAA"))
        stub.route(PROJECTS, json_reply([]))
        pool = make_pool(stub.url)
        get(pool, stub.url + "/a")
        for _ in range(2):
            _, sent = in_thread(lambda: get(pool, stub.url + PROJECTS))
            assert sent == "AAA"


# --- closing --------------------------------------------------------------------------------------


def test_a_closed_pool_hands_out_no_new_session_and_drops_its_connections(
    make_pool: Callable[..., SessionPool],
) -> None:
    with XnatStub() as stub:
        stub.route(PROJECTS, json_reply([]))
        pool = make_pool(stub.url)
        session = pool.session()
        session.get(stub.url + PROJECTS, timeout=10)
        session.get(stub.url + PROJECTS, timeout=10)
        port = stub.seen[0].client_port
        assert stub.seen[1].client_port == port  # one kept-alive connection
        assert not pool.closed
        pool.close()
        assert pool.closed
        with pytest.raises(Unavailable, match="client closed"):
            in_thread(pool.session)
        assert pool.created == 1
        # The connection that was open is gone: a request now needs a new one.
        session.get(stub.url + PROJECTS, timeout=10)
        assert stub.seen[2].client_port != port


# --- netrc ----------------------------------------------------------------------------------------


@pytest.fixture
def netrc_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME whose .netrc has credentials for the stub's host under both of its names."""
    netrc = tmp_path / ".netrc"
    netrc.write_text(
        "machine 127.0.0.1 login mallory password from-netrc\n"
        "machine localhost login mallory password from-netrc\n"
    )
    netrc.chmod(0o600)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("NETRC", raising=False)
    # Proves the file is where requests would look (so the tests below can fail).
    assert requests.utils.get_netrc_auth("http://127.0.0.1/") == ("mallory", "from-netrc")
    return tmp_path


def redirect(to: str) -> Callable[[Seen], Reply]:
    return lambda seen: Reply(302, b"", {"Location": to})


def test_netrc_is_never_consulted_without_credentials(
    netrc_home: Path, make_pool: Callable[..., SessionPool]
) -> None:
    with XnatStub() as stub:
        stub.route(PROJECTS, json_reply([]))
        stub.route("/moved", redirect(PROJECTS))
        pool = make_pool(stub.url)
        assert get(pool, stub.url + PROJECTS)[0].status_code == 200
        assert get(pool, stub.url + "/moved")[0].status_code == 200
        assert [s.path for s in stub.seen] == [PROJECTS, "/moved", PROJECTS]
        assert all("authorization" not in s.headers for s in stub.seen)


def test_credentials_follow_a_redirect_on_the_same_host_only(
    netrc_home: Path, make_pool: Callable[..., SessionPool]
) -> None:
    with XnatStub() as stub:
        stub.route(PROJECTS, json_reply([]))
        stub.route("/here", redirect(PROJECTS))
        stub.route("/away", redirect(f"http://localhost:{stub.port}{PROJECTS}"))
        pool = make_pool(stub.url, ALICE)
        assert get(pool, stub.url + "/here")[0].status_code == 200
        assert [s.basic for s in stub.seen] == [("alice", PASSWORD)] * 2
        assert get(pool, stub.url + "/away")[0].status_code == 200
        away = stub.seen[-1]
        assert away.headers["host"].startswith("localhost:")
        # Another host gets neither the caller's credentials nor the netrc ones.
        assert "authorization" not in away.headers


# --- redirects to other origins ---------------------------------------------------------------


def test_a_redirect_to_another_port_carries_no_credentials_and_no_cookie(
    make_pool: Callable[..., SessionPool],
) -> None:
    with XnatStub() as stub, XnatStub() as other:
        stub.route(PROJECTS, cookie_route("S1"))
        stub.route("/away", redirect(f"{other.url}/x"))
        stub.route("/home", redirect("/back"))
        stub.route("/back", json_reply([]))
        other.route("/x", redirect(f"{stub.url}/back"))
        pool = make_pool(stub.url, ALICE)
        get(pool, stub.url + PROJECTS)  # the server session starts
        assert get(pool, stub.url + "/home")[0].status_code == 200
        back = stub.requests_to("/back")[-1]
        assert back.basic == ("alice", PASSWORD) and back.cookie("JSESSIONID") == "S1"
        assert get(pool, stub.url + "/away")[0].status_code == 200
        (hop,) = other.seen
        assert "authorization" not in hop.headers and "cookie" not in hop.headers
        # Back home from the other origin: the cookie is the server's own again, the password
        # is not put back (it went nowhere it should not).
        home = stub.requests_to("/back")[-1]
        assert home.cookie("JSESSIONID") == "S1" and home.basic is None


class FakeAdapter(requests.adapters.BaseAdapter):
    """Answers a request with a redirect to `location` (None, or a request for `location`
    itself: 200), recording every request."""

    def __init__(self, location: str | None) -> None:
        super().__init__()
        self.location = location
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, *args: object, **kw: object) -> Any:
        self.sent.append(request)
        resp = requests.Response()
        moved = self.location is not None and request.url != self.location
        resp.status_code = 302 if moved else 200
        if moved:
            resp.headers["Location"] = str(self.location)
        resp.raw = urllib3.HTTPResponse(body=io.BytesIO(b""), preload_content=False)
        resp._content = b""
        resp.url = str(request.url)
        resp.request = request
        return resp

    def close(self) -> None:
        pass


def adapters(
    session: requests.Session, https_to: str | None, http_to: str | None
) -> tuple[FakeAdapter, FakeAdapter]:
    secure, plain = FakeAdapter(https_to), FakeAdapter(http_to)
    session.mount("https://", secure)
    session.mount("http://", plain)
    return secure, plain


def test_https_to_http_is_refused_before_anything_is_sent(
    make_pool: Callable[..., SessionPool],
) -> None:
    pool = make_pool("https://xnat.example", ALICE)
    session = pool.session()
    secure, plain = adapters(session, "http://xnat.example/data/projects", None)
    with pytest.raises(RedirectRefused, match="from https to http://xnat.example"):
        session.get("https://xnat.example/data/projects")
    assert len(secure.sent) == 1 and plain.sent == []


def test_http_to_https_is_another_origin_too(make_pool: Callable[..., SessionPool]) -> None:
    pool = make_pool("http://xnat.example", ALICE)
    session = pool.session()
    assert pool.elsewhere() is None
    secure, plain = adapters(session, None, "https://xnat.example/data/projects")
    session.get("http://xnat.example/data/projects")
    assert "Authorization" in plain.sent[0].headers
    (upgraded,) = secure.sent
    assert "Authorization" not in upgraded.headers
    assert pool.elsewhere() == "https://xnat.example:443"
    # The default port written out is the same origin: credentials go with it.
    plain.location = "http://xnat.example:80/data/other"
    session.get("http://xnat.example/data/projects")
    assert plain.sent[-1].headers["Authorization"].startswith("Basic ")


def test_credentials_go_as_utf8_whatever_their_characters(
    make_pool: Callable[..., SessionPool],
) -> None:
    with XnatStub() as stub:
        stub.route(PROJECTS, json_reply([]))
        get(make_pool(stub.url, Credentials("jürgen", "pässwörd€")), stub.url + PROJECTS)
        (seen,) = stub.seen
        assert seen.basic == ("jürgen", "pässwörd€")
