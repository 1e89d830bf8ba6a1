"""Selectors, single-file GETs (headers, Range, HEAD) and streamed archives (reference §3-§5)."""

from __future__ import annotations

import email.utils
import io
import socket
import struct
import tarfile
import threading
import zipfile
import zlib

import pytest
import requests

from tests.demo.conftest import rows, wait_for_log
from xnatfs.demo import DemoServer
from xnatfs.demo.content import BytesFile

EXP = "/data/projects/TEST/subjects/1/experiments/MR1"
STUDY_EXP = "/data/projects/STUDY/subjects/sub-01/experiments/sub-01_MR1"


def _scan_ids(result: list[dict[str, str]]) -> set[str]:
    return {r["URI"].split("/scans/")[1].split("/")[0] for r in result}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("1", {"1"}),
        ("T1", {"1", "2"}),
        ("T2", {"3", "4"}),
        ("1,3", {"1", "3"}),
        ("T1,T2", {"1", "2", "3", "4"}),
        ("ALL", {"1", "2", "3", "4"}),
        ("*", {"1", "2", "3", "4"}),
        ("T1,4", {"1", "2", "4"}),
    ],
)
def test_scan_selectors(
    server: DemoServer, http: requests.Session, selector: str, expected: set[str]
) -> None:
    result = rows(http, server.url + f"{EXP}/scans/{selector}/resources/DICOM/files")
    assert _scan_ids(result) == expected


def test_scan_type_with_slash_space_and_id_collision(
    server: DemoServer, http: requests.Session
) -> None:
    base = server.url + STUDY_EXP
    assert _scan_ids(rows(http, base + "/scans/T2[SLASH]FLAIR/resources/DICOM/files")) == {"3"}
    assert _scan_ids(rows(http, base + "/scans/T1+MPRAGE/resources/DICOM/files")) == {"2"}
    assert _scan_ids(rows(http, base + "/scans/T1%20MPRAGE/resources/DICOM/files")) == {"2"}
    # Scan 11 has type "2": the selector "2" matches scan 2 and scan 11.
    assert _scan_ids(rows(http, base + "/scans/2/resources/DICOM/files")) == {"2", "11"}
    assert _scan_ids(rows(http, base + "/scans/NULL/resources/DICOM/files")) == {"99"}
    # Tomcat refuses %2F, which is why [SLASH] exists.
    resp = http.get(base + "/scans/T2%2FFLAIR/resources/DICOM/files", params={"format": "json"})
    assert resp.status_code == 400


def test_comma_escape_in_types(server: DemoServer, http: requests.Session) -> None:
    exp = server.site.experiment_by_id("XNAT_E00001")
    assert exp is not None
    scan = server.site.add_scan(exp, "7", "A,B")
    server.site.add_file(server.site.add_resource(scan, "DICOM"), "x.dcm", b"x")
    result = rows(http, server.url + EXP + "/scans/A[COMMA]B/resources/DICOM/files")
    assert _scan_ids(result) == {"7"}


def test_empty_selector_match_is_404_for_resources(
    server: DemoServer, http: requests.Session
) -> None:
    resp = http.get(server.url + EXP + "/scans/NOPE/resources", params={"format": "json"})
    assert resp.status_code == 404


def test_resource_selector_digits_are_ids(server: DemoServer, http: requests.Session) -> None:
    recon_res = rows(http, server.url + EXP + "/reconstructions/RECON1/resources")[0]
    assert recon_res["label"] == "1" and recon_res["xnat_abstractresource_id"] != "1"
    # "1" means resource ID 1 (scan 1's DICOM), which is not a resource of RECON1.
    assert rows(http, server.url + EXP + "/reconstructions/RECON1/resources/1/files") == []
    by_id = rows(
        http,
        server.url + EXP + f"/reconstructions/RECON1/resources/"
        f"{recon_res['xnat_abstractresource_id']}/files",
    )
    assert sorted(r["Name"] for r in by_id) == ["something.hdr", "something.img"]
    assert all("/reconstructions/RECON1/out/resources/" in r["URI"] for r in by_id)
    both = rows(http, server.url + EXP + "/scans/1/resources/DICOM,SNAPSHOTS/files")
    assert {r["collection"] for r in both} == {"DICOM", "SNAPSHOTS"}
    unlabeled = rows(http, server.url + STUDY_EXP + "/resources/NULL/files")
    assert [r["Name"] for r in unlabeled] == ["unlabeled.txt"]


def test_reconstruction_selectors(server: DemoServer, http: requests.Session) -> None:
    for selector in ("RECON1", "T1", "ALL", "*"):
        result = rows(http, server.url + EXP + f"/reconstructions/{selector}/files")
        assert sorted(r["Name"] for r in result) == ["something.hdr", "something.img"], selector


def test_assessor_selectors_and_in_out(server: DemoServer, http: requests.Session) -> None:
    base = server.url + STUDY_EXP + "/assessors"
    (fs,) = [r for r in rows(http, base) if r["xsiType"] == "fs:fsData"]
    for selector in (fs["ID"], fs["label"], "fs:fsData"):
        result = rows(http, base + f"/{selector}/resources/DATA/files")
        assert "aseg.stats" in {r["Name"] for r in result}, selector
        assert all(f"/assessors/{fs['ID']}/out/resources/" in r["URI"] for r in result)
    assert {r["label"] for r in rows(http, base + "/ALL/resources")} == {"DATA", "QC"}
    assert [r["label"] for r in rows(http, base + f"/{fs['ID']}/in/resources")] == ["LOG"]
    (log,) = rows(http, base + f"/{fs['ID']}/in/files")
    assert "/in/resources/" in log["URI"]
    assert http.get(server.url + log["URI"]).text.startswith("recon-all")
    # The assessor as an experiment: /data/experiments/{A_ID}/resources (out).
    assert [
        r["label"] for r in rows(http, server.url + f"/data/experiments/{fs['ID']}/resources")
    ] == ["DATA"]


def test_single_file_headers(server: DemoServer, http: requests.Session) -> None:
    resp = http.get(server.url + EXP + "/scans/1/resources/SNAPSHOTS/files/snap.jpg")
    assert resp.status_code == 200
    h = resp.headers
    assert h["Content-Type"] == "image/jpeg"
    assert int(h["Content-Length"]) == len(resp.content) > 0
    assert h["Content-Disposition"] == 'attachment; filename="snap.jpg";'
    assert h["Cache-Control"] == "must-revalidate"
    assert "ETag" not in h and "Accept-Ranges" not in h
    assert email.utils.parsedate_to_datetime(h["Last-Modified"]).year == 2023
    assert resp.content[:2] == b"\xff\xd8"


def test_file_not_found(server: DemoServer, http: requests.Session) -> None:
    resp = http.get(server.url + EXP + "/scans/1/resources/DICOM/files/nope.dcm")
    assert resp.status_code == 404
    assert "<h3>Unable to find catalog entry for given uri.</h3>" in resp.text


def test_file_name_with_space(server: DemoServer, http: requests.Session) -> None:
    url = server.url + STUDY_EXP + "/resources/NOTES/files/session%20notes.txt"
    assert http.get(url).text.startswith("Operator notes")


def test_folder_request_lists_below_prefix(server: DemoServer, http: requests.Session) -> None:
    result = rows(http, server.url + STUDY_EXP + "/resources/NOTES/files/protocol/sequences/")
    assert sorted(r["Name"] for r in result) == ["flair.txt", "t1.txt"]


def test_range_ignored_by_default(server: DemoServer, http: requests.Session) -> None:
    url = server.url + EXP + "/scans/1/resources/DICOM/files/1.dcm"
    full = http.get(url).content
    resp = http.get(url, headers={"Range": "bytes=10-19"})
    assert resp.status_code == 200 and resp.content == full
    assert "Content-Range" not in resp.headers


def test_range_switch(server: DemoServer, http: requests.Session) -> None:
    url = server.url + EXP + "/scans/1/resources/DICOM/files/1.dcm"
    full = http.get(url).content
    server.faults.range_support = True
    resp = http.get(url, headers={"Range": "bytes=10-19"})
    assert resp.status_code == 206 and resp.content == full[10:20]
    assert resp.headers["Content-Range"] == f"bytes 10-19/{len(full)}"
    assert resp.headers["Accept-Ranges"] == "bytes"
    assert http.get(url, headers={"Range": "bytes=-5"}).content == full[-5:]
    assert http.get(url, headers={"Range": "bytes=100-"}).content == full[100:]
    assert http.get(url, headers={"Range": f"bytes={len(full)}-"}).status_code == 416


def test_range_with_if_range(server: DemoServer, http: requests.Session) -> None:
    url = server.url + EXP + "/scans/1/resources/DICOM/files/1.dcm"
    server.faults.range_support = True
    first = http.get(url)
    current = first.headers["Last-Modified"]
    resp = http.get(url, headers={"Range": "bytes=10-19", "If-Range": current})
    assert resp.status_code == 206 and resp.content == first.content[10:20]
    # A validator of another version: the whole (current) file, as RFC 9110 asks.
    stale = http.get(
        url, headers={"Range": "bytes=10-", "If-Range": "Thu, 01 Jan 2015 00:00:00 GMT"}
    )
    assert stale.status_code == 200 and stale.content == first.content


def test_zip_structure_switch(server: DemoServer, http: requests.Session) -> None:
    server.faults.zip_structure = "simplified"
    resp = http.get(server.url + EXP + "/scans/1/files", params={"format": "zip"})
    names = sorted(zipfile.ZipFile(io.BytesIO(resp.content)).namelist())
    assert names[0] == "MR1/scans/1/DICOM/1.dcm"
    server.faults.zip_structure = None
    resp = http.get(
        server.url + EXP + "/scans/1/files", params={"format": "zip", "structure": "improved"}
    )
    names = sorted(zipfile.ZipFile(io.BytesIO(resp.content)).namelist())
    assert names[0] == "scans/1_T1/DICOM/1.dcm"


def test_head(server: DemoServer, http: requests.Session) -> None:
    url = server.url + EXP + "/scans/1/resources/DICOM/files/2.dcm"
    size = len(http.get(url).content)
    resp = http.head(url)
    assert resp.status_code == 200 and resp.content == b""
    assert resp.headers["Content-Length"] == str(size)
    # The connection is still usable afterwards (no stray body bytes).
    assert len(http.get(url).content) == size


def test_zip_default_layout_streamed(server: DemoServer, http: requests.Session) -> None:
    resp = http.get(server.url + EXP + "/scans/T1/files", params={"format": "zip"})
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/zip"
    assert resp.headers["Content-Disposition"] == 'attachment; filename="MR1.zip";'
    assert "Content-Length" not in resp.headers
    assert resp.headers["Transfer-Encoding"] == "chunked"
    zf = zipfile.ZipFile(io.BytesIO(resp.content))
    assert zf.testzip() is None
    assert sorted(zf.namelist()) == [
        "MR1/scans/1-T1/resources/DICOM/files/1.dcm",
        "MR1/scans/1-T1/resources/DICOM/files/2.dcm",
        "MR1/scans/1-T1/resources/SNAPSHOTS/files/snap.jpg",
        "MR1/scans/2-T1/resources/DICOM/files/1.dcm",
        "MR1/scans/2-T1/resources/DICOM/files/2.dcm",
        "MR1/scans/2-T1/resources/SNAPSHOTS/files/snap.jpg",
    ]
    assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
    single = http.get(
        server.url + "/data/experiments/XNAT_E00001/scans/2/resources/DICOM/files/1.dcm"
    )
    assert zf.read("MR1/scans/2-T1/resources/DICOM/files/1.dcm") == single.content


def test_zip_local_headers_carry_crc_and_sizes(server: DemoServer, http: requests.Session) -> None:
    """A streaming unzipper reads entries from the local headers alone."""
    data = http.get(
        server.url + EXP + "/scans/1/resources/DICOM/files", params={"format": "zip"}
    ).content
    pos, seen = 0, []
    while data[pos : pos + 4] == b"PK\x03\x04":
        (_, _, flags, method, _, _, crc, csize, usize, nlen, xlen) = struct.unpack(
            "<IHHHHHIIIHH", data[pos : pos + 30]
        )
        assert flags & 0x08 == 0 and method == 0 and csize == usize
        name = data[pos + 30 : pos + 30 + nlen].decode()
        start = pos + 30 + nlen + xlen
        assert zlib.crc32(data[start : start + usize]) == crc
        seen.append(name)
        pos = start + usize
    assert seen == [
        "MR1/scans/1-T1/resources/DICOM/files/1.dcm",
        "MR1/scans/1-T1/resources/DICOM/files/2.dcm",
    ]


def test_zip_structures(server: DemoServer, http: requests.Session) -> None:
    url = server.url + EXP + "/scans/1/resources/DICOM/files"
    simplified = zipfile.ZipFile(
        io.BytesIO(http.get(url, params={"format": "zip", "structure": "simplified"}).content)
    )
    assert sorted(simplified.namelist()) == ["MR1/scans/1/DICOM/1.dcm", "MR1/scans/1/DICOM/2.dcm"]
    improved = zipfile.ZipFile(
        io.BytesIO(http.get(url, params={"format": "zip", "structure": "improved"}).content)
    )
    assert sorted(improved.namelist()) == ["scans/1_T1/DICOM/1.dcm", "scans/1_T1/DICOM/2.dcm"]


def test_zip_other_owners(server: DemoServer, http: requests.Session) -> None:
    names = zipfile.ZipFile(
        io.BytesIO(
            http.get(
                server.url + "/data/projects/STUDY/resources/PROTOCOL/files",
                params={"format": "zip"},
            ).content
        )
    ).namelist()
    assert "STUDY/resources/PROTOCOL/files/forms/intake.txt" in names
    resp = http.get(server.url + STUDY_EXP + "/resources/NOTES/files", params={"format": "zip"})
    assert resp.headers["Content-Disposition"] == 'attachment; filename="sub-01_MR1.zip";'
    assert (
        "sub-01_MR1/resources/NOTES/files/protocol/sequences/t1.txt"
        in zipfile.ZipFile(io.BytesIO(resp.content)).namelist()
    )


def test_zip_empty_is_404(server: DemoServer, http: requests.Session) -> None:
    resp = http.get(server.url + EXP + "/scans/1/resources/NOPE/files", params={"format": "zip"})
    assert resp.status_code == 404


def test_tar_and_tar_gz(server: DemoServer, http: requests.Session) -> None:
    url = server.url + EXP + "/scans/3/resources/DICOM/files"
    for fmt, ctype in (("tar", "application/x-tar"), ("tar.gz", "application/x-gtar")):
        resp = http.get(url, params={"format": fmt})
        assert resp.headers["Content-Type"] == ctype and "Content-Length" not in resp.headers
        with tarfile.open(fileobj=io.BytesIO(resp.content)) as tf:
            names = tf.getnames()
        assert sorted(names) == [
            "MR1/scans/3-T2/resources/DICOM/files/1.dcm",
            "MR1/scans/3-T2/resources/DICOM/files/2.dcm",
        ]


def test_big_file_is_lazy_and_served_in_full() -> None:
    from xnatfs.demo import build_demo_site

    size = 64 << 20
    site = build_demo_site(big_file_size=size)
    with DemoServer(site) as srv, requests.Session() as s:
        s.auth = ("demo", "demo")
        (row,) = rows(
            s, srv.url + "/data/projects/STUDY/experiments/sub-01_MR1/resources/RAW/files"
        )
        assert row["Size"] == str(size) and row["Name"] == "kspace.dat"
        got = 0
        with s.get(srv.url + row["URI"], stream=True) as resp:
            for chunk in resp.iter_content(1 << 20):
                got += len(chunk)
        assert got == size


def test_keep_alive_reuses_one_connection(server: DemoServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        auth = "Authorization: Basic ZGVtbzpkZW1v\r\n"
        for _ in range(2):
            sock.sendall(
                f"GET /data/projects?format=json HTTP/1.1\r\nHost: x\r\n{auth}\r\n".encode()
            )
            buf = b""
            while not buf.endswith(b"0\r\n\r\n"):
                buf += sock.recv(65536)
            assert buf.startswith(b"HTTP/1.1 200")
    wait_for_log(server, 2)
    assert server.log.count(kind="listing") == 2


class _SlowDigest(BytesFile):
    """A file whose digest is only available once `release` is set."""

    def __init__(self, release: threading.Event) -> None:
        super().__init__(b"slow", 0.0)
        self.release = release
        self.started = threading.Event()

    @property
    def md5(self) -> str:  # type: ignore[override]
        self.started.set()
        assert self.release.wait(10)
        return "0" * 32


def test_slow_listing_does_not_block_other_requests(
    server: DemoServer, http: requests.Session
) -> None:
    release = threading.Event()
    slow = _SlowDigest(release)
    project = server.site.project("TEST")
    assert project is not None
    server.site.add_file(server.site.add_resource(project, "SLOW"), "slow.bin", slow)
    result: list[int] = []
    t = threading.Thread(
        target=lambda: result.append(
            http.get(server.url + "/data/projects/TEST/resources/SLOW/files").status_code
        )
    )
    t.start()
    try:
        assert slow.started.wait(10)
        with requests.Session() as other:
            other.auth = ("demo", "demo")
            assert rows(other, server.url + "/data/projects/TEST/subjects")[0]["label"] == "1"
    finally:
        release.set()
        t.join(10)
    assert result == [200]
