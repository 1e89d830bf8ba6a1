"""The site model: the TEST layout of the how-to, the mutation API, laziness."""

from __future__ import annotations

import hashlib
import threading
import time

import pytest
import requests

from tests.demo.conftest import rows
from xnatfs.demo import DemoServer, build_demo_site, serve_forever


def test_test_project_matches_the_howto() -> None:
    site = build_demo_site()
    project = site.project("TEST")
    assert project is not None
    (subject,) = project.subjects.values()
    assert (subject.id, subject.label) == ("XNAT_S00001", "1")
    (exp,) = subject.experiments.values()
    assert (exp.id, exp.label) == ("XNAT_E00001", "MR1")
    assert [(s.id, s.type) for s in exp.scans.values()] == [
        ("1", "T1"),
        ("2", "T1"),
        ("3", "T2"),
        ("4", "T2"),
    ]
    for scan in exp.scans.values():
        assert {r.label: sorted(r.files) for r in scan.resources} == {
            "DICOM": ["1.dcm", "2.dcm"],
            "SNAPSHOTS": ["snap.jpg"],
        }
    recon = exp.reconstructions["RECON1"]
    (res,) = recon.out_resources
    assert (
        res.label == "1" and res.id != 1 and sorted(res.files) == ["something.hdr", "something.img"]
    )
    (assessor,) = exp.assessors.values()
    assert assessor.label == "ASSESS1" and assessor.id != "ASSESS1"
    assert [r.label for r in assessor.out_resources] == ["TEST"]


def test_build_is_cheap_and_lazy() -> None:
    started = time.monotonic()
    site = build_demo_site(big_file_size=1 << 40)  # a 1 TiB file costs nothing until read
    assert time.monotonic() - started < 5
    exp = next(e for e in site.experiments() if e.label == "sub-01_MR1")
    (raw,) = [r for r in exp.resources if r.label == "RAW"]
    assert raw.files["raw/kspace.dat"].data.size == 1 << 40
    assert len(raw.files["raw/kspace.dat"].data.read((1 << 40) - 10, 100)) == 10


def test_mutation_makes_new_data_appear(server: DemoServer, http: requests.Session) -> None:
    site = server.site
    subject = site.add_subject("TEST", "2")
    exp = site.add_experiment("TEST", "2", "MR2", date="2024-05-01")
    scan = site.add_scan(exp, "1", "T1")
    res = site.add_resource(scan, "DICOM")
    site.add_file(res, "a/b.dcm", b"new data")
    assert [r["label"] for r in rows(http, server.url + "/data/projects/TEST/subjects")] == [
        "1",
        "2",
    ]
    (row,) = rows(
        http,
        server.url + "/data/projects/TEST/subjects/2/experiments/MR2/scans/1/resources/DICOM/files",
    )
    assert row["URI"].endswith(
        f"/subjects/{subject.id}/experiments/{exp.id}/scans/1/resources/{res.id}/files/a/b.dcm"
    )
    assert http.get(server.url + row["URI"]).content == b"new data"


def test_replace_file_changes_bytes_digest_and_mtime(
    server: DemoServer, http: requests.Session
) -> None:
    exp = server.site.experiment_by_id("XNAT_E00001")
    assert exp is not None
    dicom = exp.scans["1"].resources[0]
    url = server.url + "/data/experiments/XNAT_E00001/scans/1/resources/DICOM/files"
    before = {r["Name"]: r for r in rows(http, url)}["1.dcm"]
    old_modified = http.get(url + "/1.dcm").headers["Last-Modified"]
    server.site.replace_file(dicom, "1.dcm", b"replaced!")
    after = {r["Name"]: r for r in rows(http, url)}["1.dcm"]
    assert after["Size"] == "9" and after["digest"] == hashlib.md5(b"replaced!").hexdigest()
    assert after["digest"] != before["digest"]
    resp = http.get(url + "/1.dcm")
    assert resp.content == b"replaced!" and resp.headers["Last-Modified"] != old_modified
    server.site.remove_file(dicom, "1.dcm")
    assert [r["Name"] for r in rows(http, url)] == ["2.dcm"]


def test_serve_forever_prints_url_and_stops(capsys: pytest.CaptureFixture[str]) -> None:
    ready, stop = threading.Event(), threading.Event()
    result: list[int] = []
    t = threading.Thread(
        target=lambda: result.append(
            serve_forever("127.0.0.1", 0, latency=0.0, ready=ready, stop=stop)
        )
    )
    t.start()
    try:
        assert ready.wait(10)
        out = capsys.readouterr().out
        url = out.split("demo XNAT at ", 1)[1].split()[0]
        assert "user demo, password demo" in out
        resp = requests.get(url + "/data/projects", auth=("demo", "demo"), timeout=10)
        assert resp.status_code == 200
    finally:
        stop.set()
        t.join(10)
    assert result == [0]


def test_module_cli_rejects_bad_sizes() -> None:
    from xnatfs.demo.__main__ import main

    with pytest.raises(SystemExit) as exc:
        main(["--bandwidth", "lots"])
    assert exc.value.code == 2
