"""XnatClient against the bundled demo XNAT (skipped while the demo server is unavailable)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from typing import Any

import pytest

from xnatfs.errors import AuthenticationFailed, NotFound
from xnatfs.xnat.auth import Credentials
from xnatfs.xnat.client import XnatClient
from xnatfs.xnat.paths import file_url_path, quote_segment, relative_file_path, selector

try:
    from xnatfs.demo import DEMO_PASSWORD, DEMO_USER, DemoServer, build_demo_site
except ImportError:  # pragma: no cover - the demo package is optional for these tests
    pytest.skip("the demo XNAT server is not available", allow_module_level=True)


@pytest.fixture
def server() -> Iterator[Any]:
    srv = DemoServer(build_demo_site())
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def client(server: Any) -> Iterator[XnatClient]:
    c = XnatClient(server.url, Credentials(DEMO_USER, DEMO_PASSWORD), retries=3)
    c._sleep = lambda delay, cancel: None
    try:
        yield c
    finally:
        c.close()


def scan_files(client: XnatClient, sel: str = "1") -> list[dict[str, str]]:
    subjects = client.list("/data/projects/TEST/subjects")
    subject = next(s for s in subjects if s["label"] == "1")
    experiments = client.list(
        f"/data/projects/TEST/subjects/{quote_segment(subject['ID'])}/experiments"
    )
    session = next(e for e in experiments if e["label"] == "MR1")
    path = f"/data/experiments/{quote_segment(session['ID'])}/scans/{sel}/resources/DICOM/files"
    return client.list(path)


def test_check_and_projects(client: XnatClient) -> None:
    client.check()
    ids = {row["ID"] for row in client.list("/data/projects")}
    assert {"TEST", "STUDY"} <= ids
    assert "SECRET" not in ids  # private projects stay hidden
    assert client.stats.reauths == 0


def test_bad_credentials(server: Any) -> None:
    bad = XnatClient(server.url, Credentials(DEMO_USER, "wrong"), retries=0)
    try:
        with pytest.raises(AuthenticationFailed):
            bad.check()
    finally:
        bad.close()


def test_private_project_is_not_found(client: XnatClient) -> None:
    with pytest.raises(NotFound):
        client.list("/data/projects/SECRET/subjects")


def test_selector_listing_and_download(client: XnatClient) -> None:
    rows = scan_files(client, selector(["T1"]))
    assert {relative_file_path(r["URI"]) for r in rows} == {"1.dcm", "2.dcm"}
    assert len(rows) == 4  # scans 1 and 2 both have type T1
    for row in rows[:2]:
        digest = hashlib.md5(usedforsecurity=False)
        info = client.download(file_url_path(row["URI"]), _feeder(digest))
        assert info.size == int(row["Size"])
        if row["digest"]:
            assert digest.hexdigest() == row["digest"]


def _feeder(digest: Any) -> Any:
    return lambda offset, chunk: digest.update(chunk)


def test_download_survives_cut_connections(server: Any, client: XnatClient) -> None:
    row = scan_files(client)[0]
    whole = bytearray()
    client.download(file_url_path(row["URI"]), lambda off, chunk: whole.extend(chunk))
    server.faults.cut_body(after_bytes=100, times=2, path_regex=r"/files/")
    again = bytearray()
    info = client.download(file_url_path(row["URI"]), lambda off, chunk: again.extend(chunk))
    assert bytes(again) == bytes(whole) and info.size == len(whole)
    assert client.stats.retries >= 2


def test_retries_injected_503(server: Any, client: XnatClient) -> None:
    server.faults.fail_next(2, 503, retry_after=0)
    assert client.list("/data/projects")
    assert client.stats.retries == 2


@pytest.mark.parametrize("mode", ["401", "login_page"])
def test_expired_session_heals(server: Any, client: XnatClient, mode: str) -> None:
    client.list("/data/projects")
    server.faults.expiry_mode = mode
    server.faults.session_expiry = 0.0
    assert client.list("/data/projects")
    server.faults.session_expiry = 900.0
    assert client.list("/data/projects")


def test_context_path_and_one_server_session_for_many_threads() -> None:
    import threading

    with DemoServer(context_path="/xnat") as srv:
        c = XnatClient(srv.url, Credentials(DEMO_USER, DEMO_PASSWORD))
        try:
            c.check()
            threads = [threading.Thread(target=c.list, args=("/data/projects",)) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert c.stats.sessions == 5 and c.stats.requests == 5
            assert srv.auth.session_count() == 1
            assert all(e.path.startswith("/xnat/data/") for e in srv.log.entries())
        finally:
            c.close()


def test_range_capable_server_resumes_with_range(server: Any, client: XnatClient) -> None:
    row = scan_files(client)[0]
    path = file_url_path(row["URI"])
    assert client.probe_ranges(path) is False
    server.faults.range_support = True
    assert client.probe_ranges(path) is True
    whole = bytearray()
    client.download(path, lambda off, chunk: whole.extend(chunk))
    server.faults.cut_body(after_bytes=500, times=1, path_regex=r"/files/")
    out = bytearray()
    info = client.download(path, lambda off, chunk: out.extend(chunk))
    assert info.ranges_supported and info.size == int(row["Size"])
    assert out == whole

    # the cut reply, then a resumption that asked only for the rest; the server logs a request
    # once its handler is done, which may be a moment after the client has the bytes
    def partial_replies() -> int:
        return [e.status for e in server.log.entries()].count(206)

    for _ in range(200):  # the probe above, and the resumption
        if partial_replies() >= 2:
            break
        time.sleep(0.01)
    assert partial_replies() == 2


def test_zip_stream(client: XnatClient) -> None:
    import io
    import zipfile

    rows = scan_files(client)
    session_path = rows[0]["URI"].split("/scans/")[0]
    with client.stream(f"{session_path}/scans/1/resources/DICOM/files", {"format": "zip"}) as it:
        data = b"".join(it)
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert sorted(n.rsplit("/", 1)[-1] for n in names) == ["1.dcm", "2.dcm"]


def test_parallel_downloads_while_sessions_keep_expiring(server: Any, client: XnatClient) -> None:
    import threading

    rows = scan_files(client, "ALL")
    assert len(rows) >= 8
    server.faults.session_expiry = 0.01
    server.faults.expiry_mode = "login_page"
    server.faults.latency = 0.005
    sizes: dict[str, int] = {}
    errors: list[BaseException] = []

    def fetch(uri: str) -> None:
        try:
            got = bytearray()
            client.download(file_url_path(uri), lambda off, chunk: got.extend(chunk))
            sizes[uri] = len(got)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=fetch, args=(r["URI"],)) for r in rows]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sizes == {r["URI"]: int(r["Size"]) for r in rows}
