"""Fault switches and the request log."""

from __future__ import annotations

import hashlib
import threading
import time

import pytest
import requests

from tests.demo.conftest import rows, wait_for_log
from xnatfs.demo import DemoServer

FILE = "/data/experiments/XNAT_E00001/scans/1/resources/DICOM/files/1.dcm"


def test_request_log_counts_by_kind(server: DemoServer, http: requests.Session) -> None:
    rows(http, server.url + "/data/projects")
    rows(http, server.url + "/data/experiments/XNAT_E00001/scans/1/files")
    body = http.get(server.url + FILE).content
    http.get(server.url + "/data/experiments/XNAT_E00001/scans/2/files", params={"format": "zip"})
    http.get(server.url + "/data/JSESSION")
    wait_for_log(server, 5)
    log = server.log
    assert (log.total, log.listings, log.files, log.zips, log.auths) == (5, 2, 1, 1, 1)
    assert log.count(kind="file", path_contains="/scans/1/") == 1
    assert log.count(kind="file", path_contains="/scans/2/") == 0
    assert log.count(method="GET", status=200) == 5
    (entry,) = [e for e in log.entries() if e.kind == "file"]
    assert entry.bytes_sent == len(body) and entry.query == "" and entry.user == "demo"
    assert log.bytes_sent >= len(body)
    log.reset()
    assert log.total == 0


def test_latency(server: DemoServer, http: requests.Session) -> None:
    server.faults.latency = 0.3
    started = time.monotonic()
    http.get(server.url + "/data/projects")
    assert time.monotonic() - started >= 0.3


def test_bandwidth_cap(server: DemoServer, http: requests.Session) -> None:
    server.faults.bandwidth = 50_000  # a ~9.5 KB file then takes at least ~0.19 s
    started = time.monotonic()
    body = http.get(server.url + FILE).content
    assert time.monotonic() - started >= len(body) / 50_000


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_injected_failures(server: DemoServer, http: requests.Session, status: int) -> None:
    server.faults.fail_next(2, status, retry_after=3 if status in (429, 503) else None)
    for _ in range(2):
        resp = http.get(server.url + "/data/projects")
        assert resp.status_code == status
        if status in (429, 503):
            assert resp.headers["Retry-After"] == "3"
    assert http.get(server.url + "/data/projects").status_code == 200


def test_failures_matching_a_path(server: DemoServer, http: requests.Session) -> None:
    server.faults.fail_next(1, 503, path_regex=r"/files/")
    assert http.get(server.url + "/data/projects").status_code == 200
    assert http.get(server.url + FILE).status_code == 503
    assert http.get(server.url + FILE).status_code == 200


def test_cut_body_closes_connection(server: DemoServer, http: requests.Session) -> None:
    server.faults.cut_body(1000, times=1)
    with pytest.raises(requests.exceptions.RequestException):
        http.get(server.url + FILE).content  # noqa: B018
    (entry,) = wait_for_log(server, 1)
    assert entry.bytes_sent == 1000
    assert len(http.get(server.url + FILE).content) > 1000  # only once


def test_cut_chunked_listing(server: DemoServer, http: requests.Session) -> None:
    server.faults.cut_body(50, path_regex=r"/data/projects$")
    with pytest.raises(requests.exceptions.RequestException):
        http.get(server.url + "/data/projects").json()


def test_stall_mid_body(server: DemoServer, http: requests.Session) -> None:
    server.faults.stall_body(100, 0.4, times=1)
    started = time.monotonic()
    full = http.get(server.url + FILE).content
    assert time.monotonic() - started >= 0.4
    assert full == http.get(server.url + FILE).content


def test_corrupt_file_same_length_other_bytes(server: DemoServer, http: requests.Session) -> None:
    (row,) = [
        r
        for r in rows(
            http, server.url + "/data/experiments/XNAT_E00001/scans/1/resources/DICOM/files"
        )
        if r["Name"] == "1.dcm"
    ]
    server.faults.corrupt(r"/scans/1/.*/1\.dcm$")
    body = http.get(server.url + row["URI"]).content
    assert len(body) == int(row["Size"])
    assert hashlib.md5(body).hexdigest() != row["digest"]
    other = rows(http, server.url + "/data/experiments/XNAT_E00001/scans/2/resources/DICOM/files")[
        0
    ]
    assert hashlib.md5(http.get(server.url + other["URI"]).content).hexdigest() == other["digest"]


def test_server_down_and_up(server: DemoServer, http: requests.Session) -> None:
    assert http.get(server.url + "/data/projects").ok
    server.faults.down = True
    with pytest.raises(requests.exceptions.ConnectionError):
        http.get(server.url + "/data/projects", timeout=5)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(server.url + "/data/projects", timeout=5)
    server.faults.down = False
    assert http.get(server.url + "/data/projects").ok


def test_faults_are_thread_safe_counters(server: DemoServer) -> None:
    server.faults.fail_next(10, 500)
    statuses: list[int] = []

    def worker() -> None:
        with requests.Session() as s:
            s.auth = ("demo", "demo")
            for _ in range(5):
                statuses.append(s.get(server.url + "/data/projects").status_code)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses.count(500) == 10 and statuses.count(200) == 10


def test_stop_returns_promptly_with_open_keep_alive(
    server: DemoServer, http: requests.Session
) -> None:
    assert http.get(server.url + "/data/projects").ok  # leaves a keep-alive connection open
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 3
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(
            server.url if False else f"http://127.0.0.1:{server.port}/data/projects", timeout=2
        )
