"""XnatClient against the scriptable stub server: listings, errors, auth, retries, downloads."""

from __future__ import annotations

import base64
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.xnat_stub import (
    LOGIN_PAGE,
    Reply,
    Seen,
    StubAuth,
    XnatStub,
    json_reply,
    result_set,
)
from xnatfs.errors import (
    AccessDenied,
    AuthenticationFailed,
    IntegrityError,
    NotFound,
    ProtocolError,
    Unavailable,
)
from xnatfs.xnat.auth import Credentials
from xnatfs.xnat.bodies import DownloadInfo
from xnatfs.xnat.client import XnatClient

PASSWORD = "pa55-w0rd-never-shown"
ALICE = Credentials("alice", PASSWORD)
PROJECTS = "/data/projects"
FILE = "/data/experiments/E1/scans/1/resources/7/files/1.dcm"


class Sleeps:
    """Stands in for the wait between attempts: records delays, advances a fake clock."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    def sleep(self, delay: float, cancel: threading.Event | None) -> None:
        self.delays.append(delay)
        self.now += delay


@pytest.fixture
def stub() -> Iterator[XnatStub]:
    with XnatStub() as server:
        yield server


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_client(sleeps: Sleeps) -> Iterator[Callable[..., XnatClient]]:
    clients: list[XnatClient] = []

    def make(url: str, credentials: Credentials | None = None, **kw: Any) -> XnatClient:
        kw.setdefault("connect_timeout", 5.0)
        kw.setdefault("read_timeout", 5.0)
        kw.setdefault("retries", 2)
        client = XnatClient(url, credentials, **kw)
        client._sleep = sleeps.sleep
        client._clock = sleeps.clock
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def download_bytes(client: XnatClient, path: str = FILE, **kw: Any) -> tuple[bytes, DownloadInfo]:
    out = bytearray()

    def write(offset: int, chunk: bytes) -> None:
        assert offset == len(out), "chunks must arrive in order without gaps"
        out.extend(chunk)

    def same(offset: int, chunk: bytes) -> bool:
        return bytes(out[offset : offset + len(chunk)]) == chunk

    info = client.download(path, write, same=same, **kw)
    return bytes(out), info


# ------------------------------------------------------------------------- listings


def test_list_returns_rows_with_string_values(stub: XnatStub, make_client: Any) -> None:
    rows = [{"ID": "P1", "count": 3, "size": 1.5, "none": None, "flag": True, "name": "é"}]
    stub.route(PROJECTS, json_reply(rows, totalRecords="1"))
    client = make_client(stub.url)
    got = client.list(PROJECTS, {"columns": "ID,name"})
    assert got == [
        {"ID": "P1", "count": "3", "size": "1.5", "none": "", "flag": "true", "name": "é"}
    ]
    (seen,) = stub.requests_to(PROJECTS)
    assert seen.query == {"format": ["json"], "columns": ["ID,name"]}
    assert seen.headers["user-agent"].startswith("xnatfs/")


def test_list_reads_a_chunked_listing(stub: XnatStub, make_client: Any) -> None:
    body = result_set([{"ID": str(i)} for i in range(500)], totalRecords="500")
    pieces = [body[i : i + 1000] for i in range(0, len(body), 1000)]
    stub.route(PROJECTS, Reply(body=pieces, content_length=None))
    assert len(make_client(stub.url).list(PROJECTS)) == 500


def test_list_empty_result(stub: XnatStub, make_client: Any) -> None:
    stub.route(PROJECTS, json_reply([], totalRecords="0"))
    assert make_client(stub.url).list(PROJECTS) == []


@pytest.mark.parametrize(
    "body",
    [
        b"not json at all",
        b'{"ResultSet": {"rows": []}}',
        b'{"Result": []}',
        b'{"ResultSet": {"Result": {"a": "b"}}}',
        b"[1, 2]",
        b"\xff\xfe",
    ],
)
def test_list_malformed_reply_is_protocol_error(
    stub: XnatStub, make_client: Any, body: bytes
) -> None:
    stub.route(PROJECTS, Reply(body=body, headers={"Content-Type": "application/json"}))
    with pytest.raises(ProtocolError):
        make_client(stub.url).list(PROJECTS)


def test_list_html_that_is_not_a_login_page_is_protocol_error(
    stub: XnatStub, make_client: Any
) -> None:
    page = b"<!DOCTYPE html><html><body>Welcome to nginx</body></html>"
    stub.route(PROJECTS, Reply(body=page, headers={"Content-Type": "text/html"}))
    client = make_client(stub.url)
    with pytest.raises(ProtocolError, match="HTML"):
        client.list(PROJECTS)
    assert len(stub.requests_to(PROJECTS)) == 2  # one fresh authentication, then give up


def test_status_mapping(stub: XnatStub, make_client: Any) -> None:
    restlet_404 = (
        b"<html>\n<head>\n   <title>Status page</title>\n</head>\n<body>\n"
        b"<h3>Unable to find file.</h3><p>You can get technical details</p></body></html>"
    )
    stub.route("/data/a", Reply(404, restlet_404, {"Content-Type": "text/html"}))
    stub.route("/data/b", Reply(403, b"<h3>Unable to read subjects for Project: X</h3>"))
    stub.route("/data/c", Reply(500, b"boom"))
    stub.route("/data/d", Reply(400, b""))
    client = make_client(stub.url)
    with pytest.raises(NotFound, match="Unable to find file"):
        client.list("/data/a")
    with pytest.raises(AccessDenied, match="Unable to read subjects") as denied:
        client.list("/data/b")
    assert not isinstance(denied.value, AuthenticationFailed)
    with pytest.raises(Unavailable, match="server error 500"):
        client.list("/data/c")
    with pytest.raises(ProtocolError, match="400"):
        client.list("/data/d")
    # none of these is retried
    assert [len(stub.requests_to(p)) for p in ("/data/a", "/data/b", "/data/c", "/data/d")] == [
        1,
        1,
        1,
        1,
    ]
    assert client.stats.retries == 0


# ------------------------------------------------------------------------- authentication


def test_basic_and_cookie_reuse_one_server_session(make_client: Any) -> None:
    auth = StubAuth({"alice": PASSWORD})
    with XnatStub(auth) as stub:
        stub.route(PROJECTS, json_reply([{"ID": "P"}]))
        client = make_client(stub.url, ALICE)
        for _ in range(3):
            assert client.list(PROJECTS) == [{"ID": "P"}]
        first, *rest = stub.requests_to(PROJECTS)
        assert first.basic == ("alice", PASSWORD)
        assert first.cookie("JSESSIONID") is None
        assert len(auth.issued) == 1
        for seen in rest:
            assert seen.cookie("JSESSIONID") == auth.issued[0]
            assert seen.basic == ("alice", PASSWORD)  # Basic too, so expiry heals silently


def test_threads_share_the_server_session(make_client: Any) -> None:
    auth = StubAuth({"alice": PASSWORD})
    with XnatStub(auth) as stub:
        stub.route(PROJECTS, json_reply([]))
        client = make_client(stub.url, ALICE)
        client.list(PROJECTS)
        errors: list[BaseException] = []

        def work() -> None:
            try:
                client.list(PROJECTS)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert len(auth.issued) == 1
        assert all(s.cookie("JSESSIONID") == auth.issued[0] for s in stub.seen[1:])
        assert client.stats.sessions == 5


def test_one_session_and_connection_per_thread(stub: XnatStub, make_client: Any) -> None:
    stub.route(PROJECTS, json_reply([]))
    client = make_client(stub.url)
    barrier = threading.Barrier(3)

    def work() -> None:
        barrier.wait()
        client.list(PROJECTS)
        client.list(PROJECTS)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert client.stats.sessions == 3
    assert client.stats.requests == 6
    ports = [s.client_port for s in stub.seen]
    # each thread keeps its own kept-alive connection: three ports, each used twice
    assert sorted(ports.count(p) for p in set(ports)) == [2, 2, 2]


@pytest.mark.parametrize("expired", ["401", "login"])
def test_stale_session_is_reauthenticated_once(make_client: Any, expired: str) -> None:
    auth = StubAuth({"alice": PASSWORD}, expired=expired, basic_heals=False)
    with XnatStub(auth) as stub:
        stub.route(PROJECTS, json_reply([{"ID": "P"}]))
        client = make_client(stub.url, ALICE)
        client.list(PROJECTS)
        auth.expire_sessions()
        assert client.list(PROJECTS) == [{"ID": "P"}]
        assert client.stats.reauths == 1
        _, refused, fresh = stub.requests_to(PROJECTS)
        assert refused.cookie("JSESSIONID") == auth.issued[0]
        assert fresh.cookie("JSESSIONID") is None
        assert fresh.basic == ("alice", PASSWORD)
        assert len(auth.issued) == 2
        # the new session is used from now on
        client.list(PROJECTS)
        assert stub.requests_to(PROJECTS)[-1].cookie("JSESSIONID") == auth.issued[1]
        assert client.stats.reauths == 1


def test_login_page_instead_of_a_file_is_reauthenticated(make_client: Any) -> None:
    auth = StubAuth({"alice": PASSWORD}, expired="login", basic_heals=False)
    with XnatStub(auth) as stub:
        stub.route(PROJECTS, json_reply([]))
        stub.route(
            FILE, Reply(body=b"DICM-data", headers={"Content-Type": "application/octet-stream"})
        )
        client = make_client(stub.url, ALICE)
        client.list(PROJECTS)
        auth.expire_sessions()
        data, info = download_bytes(client)
        assert data == b"DICM-data"
        assert client.stats.reauths == 1


def test_html_file_is_delivered_as_is(stub: XnatStub, make_client: Any) -> None:
    page = b"<!DOCTYPE html><html><body>report</body></html>"
    headers = {"Content-Type": "text/html", "Content-Disposition": 'attachment; filename="r.html";'}
    stub.route(FILE, Reply(body=page, headers=headers))
    client = make_client(stub.url)
    data, info = download_bytes(client)
    assert data == page
    assert info.content_type == "text/html"
    assert client.stats.reauths == 0


def test_wrong_password_is_authentication_failed(make_client: Any) -> None:
    auth = StubAuth({"alice": "right"})
    with XnatStub(auth) as stub:
        client = make_client(stub.url, ALICE)
        with pytest.raises(AuthenticationFailed, match="user 'alice'") as info:
            client.list(PROJECTS)
        assert PASSWORD not in str(info.value)
        assert len(stub.seen) == 2  # exactly one re-authentication


def test_anonymous_refused_is_access_denied(make_client: Any) -> None:
    with XnatStub(StubAuth({"alice": PASSWORD})) as stub:
        client = make_client(stub.url)
        with pytest.raises(AccessDenied, match="requires a login") as info:
            client.list(PROJECTS)
        assert not isinstance(info.value, AuthenticationFailed)
        assert all("authorization" not in s.headers for s in stub.seen)


def test_requests_does_not_apply_netrc_by_itself(
    stub: XnatStub, make_client: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login mallory password from-netrc\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    stub.route(PROJECTS, json_reply([]))
    make_client(stub.url).list(PROJECTS)
    assert "authorization" not in stub.seen[0].headers


# ------------------------------------------------------------------------- retries


def test_retry_after_is_honoured_and_capped(
    stub: XnatStub, make_client: Any, sleeps: Sleeps
) -> None:
    stub.route(
        PROJECTS,
        [
            Reply(503, b"", {"Retry-After": "7"}),
            Reply(429, b"", {"Retry-After": "3600"}),
            json_reply([{"ID": "P"}]),
        ],
    )
    client = make_client(stub.url, retries=4, retry_deadline=1000)
    assert client.list(PROJECTS) == [{"ID": "P"}]
    assert sleeps.delays == [7.0, 30.0]
    assert client.stats.retries == 2
    assert client.stats.requests == 3


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_are_retried_with_growing_waits(
    stub: XnatStub, make_client: Any, sleeps: Sleeps, status: int
) -> None:
    stub.route(PROJECTS, [Reply(status), Reply(status), Reply(status), json_reply([])])
    assert make_client(stub.url, retries=3).list(PROJECTS) == []
    assert len(sleeps.delays) == 3
    # jittered exponential: each wait lies in [base/2, base] of a doubling base
    for n, delay in enumerate(sleeps.delays):
        assert 0.25 * 2**n / 2 <= delay <= 0.25 * 2**n


def test_connection_reset_is_retried(stub: XnatStub, make_client: Any) -> None:
    stub.route(PROJECTS, [Reply(reset=True), json_reply([{"ID": "P"}])])
    client = make_client(stub.url)
    assert client.list(PROJECTS) == [{"ID": "P"}]
    assert client.stats.retries == 1


def test_retries_are_bounded_in_number(stub: XnatStub, make_client: Any) -> None:
    stub.route(PROJECTS, Reply(503))
    client = make_client(stub.url, ALICE, retries=3)
    with pytest.raises(Unavailable) as info:
        client.list(PROJECTS)
    message = str(info.value)
    assert f"{stub.url}{PROJECTS}" in message and "HTTP 503" in message
    assert "4 attempts" in message
    assert PASSWORD not in message
    assert len(stub.seen) == 4


def test_retries_are_bounded_by_the_deadline(
    stub: XnatStub, make_client: Any, sleeps: Sleeps
) -> None:
    stub.route(PROJECTS, Reply(503))
    client = make_client(stub.url, retries=100, retry_deadline=5.0)
    with pytest.raises(Unavailable, match="5 s of retries"):
        client.list(PROJECTS)
    assert sum(sleeps.delays) <= 5.0
    assert 2 <= len(stub.seen) < 10


def test_stalled_server_times_out(stub: XnatStub, make_client: Any) -> None:
    stub.route(PROJECTS, Reply(body=b"{}", delay=3.0))
    client = make_client(stub.url, read_timeout=0.2, retries=1)
    with pytest.raises(Unavailable, match="no reply within the read timeout"):
        client.list(PROJECTS)
    assert client.stats.requests == 2


def test_stall_mid_body_times_out(stub: XnatStub, make_client: Any) -> None:
    gate = stub.gate()
    stub.route(FILE, Reply(body=[b"abc", gate, b"def"]))
    client = make_client(stub.url, read_timeout=0.2, retries=1)
    with pytest.raises(Unavailable):
        download_bytes(client)


def test_unreachable_server(make_client: Any) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = make_client(f"http://127.0.0.1:{port}", retries=1)
    with pytest.raises(Unavailable, match="connection refused"):
        client.list(PROJECTS)


# ------------------------------------------------------------------------- downloads


BLOB = bytes(range(256)) * 40  # 10240 bytes


def test_download_reports_file_metadata(stub: XnatStub, make_client: Any) -> None:
    headers = {
        "Content-Type": "application/octet-stream",
        "Last-Modified": "Wed, 21 Oct 2015 07:28:00 GMT",
    }
    stub.route(FILE, Reply(body=BLOB, headers=headers))
    data, info = download_bytes(make_client(stub.url))
    assert data == BLOB
    assert info == DownloadInfo(len(BLOB), 200, "application/octet-stream", 1445412480.0, False)
    assert stub.seen[0].headers["accept-encoding"] == "identity"


LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"


def test_download_resumes_by_skipping_when_range_is_ignored(
    stub: XnatStub, make_client: Any
) -> None:
    stub.route(
        FILE,
        [
            Reply(
                body=BLOB[:3000],
                headers={"Last-Modified": LAST_MODIFIED},
                content_length=len(BLOB),
                cut=True,
            ),
            Reply(body=[BLOB[:5000], BLOB[5000:]], headers={"Last-Modified": LAST_MODIFIED}),
        ],
    )
    client = make_client(stub.url)
    data, info = download_bytes(client)
    assert data == BLOB
    assert info.size == len(BLOB) and not info.ranges_supported
    assert stub.seen[1].headers["range"] == "bytes=3000-"
    assert stub.seen[1].headers["if-range"] == LAST_MODIFIED
    assert client.stats.retries == 1


def test_download_resumes_with_range_only_for_the_same_version(
    stub: XnatStub, make_client: Any
) -> None:
    def serve(seen: Seen) -> Reply:
        headers = {"ETag": '"v1"', "Last-Modified": LAST_MODIFIED}
        if "range" not in seen.headers:
            return Reply(body=BLOB[:4000], headers=headers, content_length=len(BLOB), cut=True)
        assert seen.headers["if-range"] == '"v1"'  # a strong ETag is the better validator
        start = int(seen.headers["range"].removeprefix("bytes=").rstrip("-"))
        content_range = f"bytes {start}-{len(BLOB) - 1}/{len(BLOB)}"
        return Reply(206, BLOB[start:], {"Content-Range": content_range, **headers})

    stub.route(FILE, serve)
    data, info = download_bytes(make_client(stub.url))
    assert data == BLOB
    assert info.ranges_supported and info.status == 200
    assert stub.seen[1].headers["range"] == "bytes=4000-"


def test_download_without_validators_resumes_from_the_start_and_compares(
    stub: XnatStub, make_client: Any
) -> None:
    """No ETag and no Last-Modified: a Range answer could belong to another version, so none
    is asked for; the whole body comes again and what was delivered is compared."""
    stub.route(
        FILE,
        [Reply(body=BLOB[:3000], content_length=len(BLOB), cut=True), Reply(body=BLOB)],
    )
    data, _info = download_bytes(make_client(stub.url))
    assert data == BLOB
    assert "range" not in stub.seen[1].headers


def test_download_refuses_a_resumption_whose_resent_bytes_differ(
    stub: XnatStub, make_client: Any
) -> None:
    """Same length, no validators, different bytes: a splice of two versions is never made."""
    changed = bytes(255 - b for b in BLOB)
    stub.route(
        FILE,
        [Reply(body=BLOB[:3000], content_length=len(BLOB), cut=True), Reply(body=changed)],
    )
    with pytest.raises(IntegrityError, match="changed"):
        download_bytes(make_client(stub.url))


def test_download_of_chunked_body_resumes(stub: XnatStub, make_client: Any) -> None:
    stub.route(
        FILE,
        [
            Reply(body=[BLOB[:100], BLOB[100:2000]], content_length=None, cut=True),
            Reply(body=[BLOB[:1000], BLOB[1000:]], content_length=None),
        ],
    )
    data, info = download_bytes(make_client(stub.url))
    assert data == BLOB and info.size == len(BLOB)


def test_download_that_keeps_breaking_gives_up(stub: XnatStub, make_client: Any) -> None:
    stub.route(FILE, Reply(body=b"", content_length=10, cut=True))
    client = make_client(stub.url, retries=2)
    with pytest.raises(Unavailable, match="before the reply was complete"):
        download_bytes(client)
    assert len(stub.seen) == 3


def test_download_detects_a_file_changed_between_attempts(stub: XnatStub, make_client: Any) -> None:
    stub.route(
        FILE,
        [Reply(body=BLOB[:10], content_length=len(BLOB), cut=True), Reply(body=BLOB + b"more")],
    )
    with pytest.raises(IntegrityError, match="changed"):
        download_bytes(make_client(stub.url))


def test_chunks_arrive_before_the_body_is_complete(stub: XnatStub, make_client: Any) -> None:
    gate = stub.gate()
    stub.route(FILE, Reply(body=[b"first-4k", gate, b"rest"]))
    client = make_client(stub.url)
    first_chunk = threading.Event()
    chunks: list[bytes] = []

    def write(offset: int, chunk: bytes) -> None:
        chunks.append(chunk)
        first_chunk.set()

    result: list[DownloadInfo] = []
    worker = threading.Thread(target=lambda: result.append(client.download(FILE, write)))
    worker.start()
    try:
        # the server is still holding back the rest while the first bytes are already delivered
        assert first_chunk.wait(10)
        assert b"".join(chunks) == b"first-4k"
        assert not result
    finally:
        gate.set()
        worker.join(10)
    assert b"".join(chunks) == b"first-4krest"
    assert result[0].size == 12


def test_cancel_stops_a_download(stub: XnatStub, make_client: Any) -> None:
    gate = stub.gate()
    stub.route(FILE, Reply(body=[b"a" * 100, 0.05, b"b" * 100, gate, b"c"]))
    client = make_client(stub.url)
    cancel = threading.Event()

    def write(offset: int, chunk: bytes) -> None:
        cancel.set()

    with pytest.raises(Unavailable, match="cancelled"):
        client.download(FILE, write, cancel=cancel)
    with pytest.raises(Unavailable, match="cancelled"):
        client.download(FILE, write, cancel=cancel)
    assert len(stub.seen) == 1  # an already cancelled download sends nothing


def test_download_not_found(stub: XnatStub, make_client: Any) -> None:
    with pytest.raises(NotFound):
        download_bytes(make_client(stub.url), "/data/nothing/here")


def test_write_errors_propagate(stub: XnatStub, make_client: Any) -> None:
    stub.route(FILE, Reply(body=BLOB))

    def write(offset: int, chunk: bytes) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        make_client(stub.url).download(FILE, write)


# ------------------------------------------------------------------------- stream, probe


def test_stream_yields_an_unsized_body(stub: XnatStub, make_client: Any) -> None:
    zip_path = "/data/experiments/E1/scans/1/files"
    stub.route(zip_path, Reply(body=[b"PK\x03\x04", BLOB], content_length=None))
    client = make_client(stub.url)
    with client.stream(zip_path, {"format": "zip"}) as chunks:
        data = b"".join(chunks)
    assert data == b"PK\x03\x04" + BLOB
    assert stub.seen[0].query == {"format": ["zip"]}


def test_stream_broken_mid_body_raises_unavailable(stub: XnatStub, make_client: Any) -> None:
    zip_path = "/data/experiments/E1/files"
    stub.route(zip_path, Reply(body=[b"PK", b"data"], content_length=None, cut=True))
    client = make_client(stub.url)
    with pytest.raises(Unavailable), client.stream(zip_path) as chunks:
        for _ in chunks:
            pass


def test_stream_maps_errors(stub: XnatStub, make_client: Any) -> None:
    with pytest.raises(NotFound), make_client(stub.url).stream("/data/none"):
        pass


def test_probe_ranges(stub: XnatStub, make_client: Any) -> None:
    stub.route("/data/ranged", Reply(206, b"x", {"Content-Range": "bytes 0-0/10"}))
    stub.route("/data/whole", Reply(body=b"0123456789"))
    client = make_client(stub.url)
    assert client.probe_ranges("/data/ranged") is True
    assert client.probe_ranges("/data/whole") is False
    assert stub.seen[0].headers["range"] == "bytes=0-0"


# ------------------------------------------------------------------------- check


def test_check_accepts_xnat(make_client: Any) -> None:
    with XnatStub(StubAuth({"alice": PASSWORD})) as stub:
        stub.route(PROJECTS, json_reply([], totalRecords="0"))
        make_client(stub.url, ALICE).check()


def test_check_unreachable(make_client: Any) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(Unavailable) as info:
        make_client(url, retries=4).check()
    assert str(info.value) == f"cannot reach {url}: connection refused"


@pytest.mark.parametrize(
    "reply",
    [
        Reply(404, b"<html>nope</html>", {"Content-Type": "text/html"}),
        Reply(
            body=b"<!DOCTYPE html><html>a web site</html>", headers={"Content-Type": "text/html"}
        ),
        Reply(body=b'{"projects": []}', headers={"Content-Type": "application/json"}),
    ],
)
def test_check_not_xnat(stub: XnatStub, make_client: Any, reply: Reply) -> None:
    stub.route(PROJECTS, reply)
    with pytest.raises(ProtocolError) as info:
        make_client(stub.url).check()
    assert str(info.value) == (
        f"{stub.url} does not look like an XNAT server (no project listing at "
        f"{stub.url}/data/projects): does this URL include the XNAT context path?"
    )


def test_check_bad_credentials(make_client: Any) -> None:
    with XnatStub(StubAuth({"alice": "other"})) as stub:
        with pytest.raises(AuthenticationFailed) as info:
            make_client(stub.url, ALICE).check()
        assert str(info.value) == "XNAT rejected the credentials for user 'alice'"


def test_check_login_required(make_client: Any) -> None:
    with (
        XnatStub(StubAuth({"alice": PASSWORD})) as stub,
        pytest.raises(AccessDenied, match="requires a login"),
    ):
        make_client(stub.url).check()


def test_check_login_page_with_credentials(stub: XnatStub, make_client: Any) -> None:
    stub.route(PROJECTS, Reply(body=LOGIN_PAGE, headers={"Content-Type": "text/html"}))
    with pytest.raises(AuthenticationFailed):
        make_client(stub.url, ALICE).check()


# ------------------------------------------------------------------------- logging, secrets


def test_debug_log_line_per_request_and_no_secrets(
    make_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    auth = StubAuth({"alice": PASSWORD}, basic_heals=False)
    failures: list[str] = []
    with XnatStub(auth) as stub:
        stub.route(PROJECTS, json_reply([{"ID": "P"}]))
        stub.route(
            FILE, [Reply(body=BLOB[:10], content_length=len(BLOB), cut=True), Reply(body=BLOB)]
        )
        stub.route("/data/busy", Reply(503))
        client = make_client(stub.url, ALICE, retries=1)
        client.list(PROJECTS, {"columns": "ID"})
        auth.expire_sessions()
        download_bytes(client)
        for path in ("/data/busy", "/data/missing"):
            try:
                client.list(path)
            except Exception as exc:
                failures.append(str(exc))
        bad = make_client(stub.url, Credentials("alice", PASSWORD + "x"))
        try:
            bad.list(PROJECTS)
        except Exception as exc:
            failures.append(str(exc))
        issued = list(auth.issued)
    lines = [r.getMessage() for r in caplog.records]
    http_lines = [r.getMessage() for r in caplog.records if r.name == "xnatfs.http"]
    assert any(
        line.startswith("GET /data/projects?format=json&columns=ID -> 200") for line in http_lines
    )
    assert any(" ms" in line and "bytes" in line for line in http_lines)
    assert len(issued) >= 2
    secrets_ = [PASSWORD, "Authorization", "Basic ", *issued]
    for text in lines + failures:
        for secret in secrets_:
            assert secret not in text, text
    assert len(failures) == 3


def test_closed_client_refuses_work(stub: XnatStub, make_client: Any) -> None:
    stub.route(PROJECTS, json_reply([]))
    client = make_client(stub.url)
    client.list(PROJECTS)
    client.close()
    with pytest.raises(Unavailable, match="closed"):
        client.list(PROJECTS)
    assert len(stub.seen) == 1


def test_redirect_keeps_credentials_on_the_same_host(stub: XnatStub, make_client: Any) -> None:
    stub.route("/data/old", Reply(302, b"", {"Location": f"{stub.url}{PROJECTS}"}))
    stub.route(PROJECTS, json_reply([{"ID": "P"}]))
    assert make_client(stub.url, ALICE).list("/data/old") == [{"ID": "P"}]
    assert stub.seen[1].path == PROJECTS
    assert stub.seen[1].basic == ("alice", PASSWORD)


def test_url_with_credentials_is_refused() -> None:
    from xnatfs.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        XnatClient("http://alice:topsecret@127.0.0.1:1", None)
    assert "topsecret" not in str(info.value)


def test_a_server_that_sends_the_check_elsewhere_is_named(make_client: Any) -> None:
    # Another origin gets no credentials, so its refusal must not read as a wrong password.
    with XnatStub(StubAuth({"alice": "pw"})) as there, XnatStub() as here:
        here.route(PROJECTS, Reply(301, b"", {"Location": f"{there.url}{PROJECTS}"}))
        there.route(PROJECTS, json_reply([]))
        client = make_client(here.url, Credentials("alice", "pw"))
        with pytest.raises(ProtocolError, match=f"redirects to {there.url}, which gets no"):
            client.check()
        assert all(s.basic is None for s in there.seen)


def test_a_server_message_never_repeats_the_password(stub: XnatStub, make_client: Any) -> None:
    token = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    for body in (
        f"<h3>denied: alice:{PASSWORD} (Basic {token})</h3>",
        "x" * 190 + PASSWORD,  # cut at 200 characters: not even a part of it may remain
    ):
        stub.route(PROJECTS, Reply(403, body.encode(), {"Content-Type": "text/plain"}))
        with pytest.raises(AccessDenied) as info:
            make_client(stub.url, ALICE).list(PROJECTS)
        message = str(info.value)
        assert "***" in message, message
        for leak in (PASSWORD[:8], PASSWORD[-8:], token[:8]):
            assert leak not in message, message
