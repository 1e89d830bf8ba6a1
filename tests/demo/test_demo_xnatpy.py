"""Fidelity of the demo server against a client written by others: xnatpy.

xnatpy logs in through /data/services/auth, checks /data/auth, reads the version from
/xapi/siteConfig/buildInfo after /data/version fails, builds its object model from
/xapi/schemas and /data/search/elements, then walks the archive with table listings and
"items" documents. Everything below goes through xnatpy's own classes.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from xnatfs.demo import DEMO_PASSWORD, DEMO_USER, DemoServer, build_demo_site

xnat = pytest.importorskip("xnat")


@pytest.fixture(scope="module")
def server() -> Iterator[DemoServer]:
    with DemoServer(build_demo_site(), context_path="/xnat") as srv:
        yield srv


@pytest.fixture(scope="module")
def session(server: DemoServer) -> Iterator[object]:
    conn = xnat.connect(server.url, user=DEMO_USER, password=DEMO_PASSWORD, loglevel="ERROR")
    try:
        yield conn
    finally:
        conn.disconnect()


def _raw(server: DemoServer, uri: str) -> bytes:
    resp = requests.get(server.url + uri, auth=(DEMO_USER, DEMO_PASSWORD), timeout=30)
    resp.raise_for_status()
    return resp.content


def test_version_and_projects(session: object) -> None:
    assert session.xnat_version.startswith("1.8")  # type: ignore[attr-defined]
    projects = session.projects  # type: ignore[attr-defined]
    assert sorted(projects.keys()) == ["LOCKED", "STUDY", "TEST"]  # SECRET stays hidden
    assert projects["TEST"].name == "Test project"


def test_walk_test_project_down_to_file_bytes(session: object, server: DemoServer) -> None:
    project = session.projects["TEST"]  # type: ignore[attr-defined]
    subject = project.subjects["1"]
    assert subject.id == "XNAT_S00001" and subject.label == "1"
    experiment = subject.experiments["MR1"]
    assert experiment.id == "XNAT_E00001"
    assert experiment.__xsi_type__ == "xnat:mrSessionData"
    scans = experiment.scans
    assert sorted(scans.keys()) == ["1", "2", "3", "4"]
    assert [scans[k].type for k in ("1", "2", "3", "4")] == ["T1", "T1", "T2", "T2"]
    resources = scans["1"].resources
    assert sorted(r.label for r in resources.values()) == ["DICOM", "SNAPSHOTS"]
    files = resources["DICOM"].files
    assert sorted(files.keys()) == ["1.dcm", "2.dcm"]
    with files["1.dcm"].open() as stream:
        via_xnatpy = stream.read()
    direct = _raw(server, "/data/experiments/XNAT_E00001/scans/1/resources/DICOM/files/1.dcm")
    assert via_xnatpy == direct and via_xnatpy[128:132] == b"DICM"
    listing = server.site.experiment_by_id("XNAT_E00001")
    assert listing is not None
    expected = listing.scans["1"].resources[0].files["1.dcm"].data.md5
    assert hashlib.md5(via_xnatpy).hexdigest() == expected


def test_reconstructions_and_assessors(session: object, server: DemoServer) -> None:
    experiment = session.projects["TEST"].subjects["1"].experiments["MR1"]  # type: ignore[attr-defined]
    assert list(experiment.reconstructions.keys()) == ["RECON1"]
    assessor = experiment.assessors["ASSESS1"]
    assert assessor.__xsi_type__ == "xnat:qcAssessmentData"
    assert assessor.id != "ASSESS1"
    files = assessor.resources["TEST"].files
    assert sorted(files.keys()) == ["something.hdr", "something.img"]
    with files["something.hdr"].open() as stream:
        assert len(stream.read()) == 348


def test_study_subfolders_and_types(session: object) -> None:
    study = session.projects["STUDY"]  # type: ignore[attr-defined]
    assert sorted(s.label for s in study.subjects.values()) == [
        "sub-01",
        "sub-02",
        "sub-03",
        "sub-04",
    ]
    experiment = study.subjects["sub-01"].experiments["sub-01_MR1"]
    scan_types = {scan.id: scan.type for scan in experiment.scans.values()}
    assert scan_types["3"] == "T2/FLAIR" and scan_types["11"] == "2"
    assessor_types = sorted(a.__xsi_type__ for a in experiment.assessors.values())
    assert assessor_types == ["fs:fsData", "xnat:qcAssessmentData"]
    notes = experiment.resources["NOTES"].files
    # xnatpy keys files by their path inside the resource (taken from the URI).
    assert "protocol/sequences/t1.txt" in list(notes.keys())
    with notes["protocol/sequences/t1.txt"].open() as stream:
        assert stream.read().startswith(b"T1 MPRAGE")


def test_download_scan_as_zip(session: object, server: DemoServer, tmp_path: Path) -> None:
    experiment = session.projects["TEST"].subjects["1"].experiments["MR1"]  # type: ignore[attr-defined]
    target = tmp_path / "scan2.zip"
    experiment.scans["2"].download(str(target), verbose=False)
    with zipfile.ZipFile(target) as zf:
        names = sorted(zf.namelist())
        assert names == [
            "MR1/scans/2-T1/resources/DICOM/files/1.dcm",
            "MR1/scans/2-T1/resources/DICOM/files/2.dcm",
            "MR1/scans/2-T1/resources/SNAPSHOTS/files/snap.jpg",
        ]
        got = zf.read("MR1/scans/2-T1/resources/DICOM/files/2.dcm")
    assert got == _raw(server, "/data/experiments/XNAT_E00001/scans/2/resources/DICOM/files/2.dcm")


def test_download_resource_dir(session: object, tmp_path: Path) -> None:
    experiment = session.projects["TEST"].subjects["1"].experiments["MR1"]  # type: ignore[attr-defined]
    experiment.scans["3"].resources["SNAPSHOTS"].download_dir(str(tmp_path), verbose=False)
    (snap,) = tmp_path.rglob("snap.jpg")
    assert snap.read_bytes()[:3] == b"\xff\xd8\xff"
    assert "3-T2" in str(snap)


def test_protected_project_refused(session: object) -> None:
    locked = session.projects["LOCKED"]  # type: ignore[attr-defined]
    with pytest.raises(xnat.exceptions.XNATResponseError):
        list(locked.subjects.keys())


def test_login_with_bad_password_fails(server: DemoServer) -> None:
    with pytest.raises(xnat.exceptions.XNATLoginFailedError):
        xnat.connect(server.url, user=DEMO_USER, password="wrong", loglevel="ERROR")


def test_zip_is_readable_from_a_stream(server: DemoServer) -> None:
    resp = requests.get(
        server.url + "/data/experiments/XNAT_E00001/scans/ALL/files",
        params={"format": "zip"},
        auth=(DEMO_USER, DEMO_PASSWORD),
        stream=True,
    )
    data = b"".join(resp.iter_content(4096))
    assert len(zipfile.ZipFile(io.BytesIO(data)).namelist()) == 12
