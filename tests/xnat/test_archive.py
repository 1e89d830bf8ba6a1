"""Attributing archive entries to listed files: exactly one, or none."""

from __future__ import annotations

import io
import random
import zipfile
from collections.abc import Iterator

import pytest
import requests

from xnatfs.demo import DEMO_PASSWORD, DEMO_USER, DemoServer
from xnatfs.demo.site import Site
from xnatfs.xnat.archive import (
    ArchiveIndex,
    Member,
    default_name,
    improved_name,
    member,
    simplified_name,
)

E = "/data/experiments/XNAT_E00001"


def scan_file(scan: str, rel: str, label: str = "DICOM", rid: str = "7") -> Member:
    m = member(f"{E}/scans/{scan}/resources/{rid}/files/{rel}", label)
    assert m is not None
    return m


def test_member_reads_owner_direction_label_and_paths() -> None:
    m = member(f"{E}/assessors/XNAT_E00009/out/resources/12/files/sub/files/a.nii", "DATA")
    assert m is not None
    assert (m.category, m.owner, m.direction, m.label) == (
        "assessors",
        "XNAT_E00009",
        "out",
        "DATA",
    )
    assert (m.rel, m.tail) == ("sub/files/a.nii", "a.nii")
    session = member(f"{E}/resources/3/files/notes.txt", "")
    assert session is not None
    assert (session.category, session.owner, session.label) == ("resources", "XNAT_E00001", "3")
    project = member("/data/projects/P/resources/4/files/x", "DOCS")
    assert project is not None and (project.category, project.owner) == ("resources", "")
    assert member("/data/experiments/E/scans/1", "DICOM") is None


def test_the_three_layouts_of_one_scan_file() -> None:
    m = scan_file("1", "sub/a.dcm")
    assert default_name(m, "1-T1") == "scans/1-T1/resources/DICOM/files/sub/a.dcm"
    assert simplified_name(m) == "scans/1/DICOM/sub/a.dcm"
    assert improved_name(m, "1_T1") == "scans/1_T1/DICOM/sub/a.dcm"


def test_default_layout_rewrites_every_segment_named_like_the_scan() -> None:
    m = scan_file("1", "1/a.dcm")
    assert default_name(m, "1-T1") == "scans/1-T1/resources/DICOM/files/1-T1/a.dcm"
    index = ArchiveIndex([m, scan_file("2", "1/a.dcm", rid="8")])
    assert index.match("MR1/scans/1-T1/resources/DICOM/files/1-T1/a.dcm") == m
    assert index.match("MR1/scans/1-T1/resources/DICOM/files/1/a.dcm") is None


def test_an_entry_of_another_scan_is_never_taken_for_a_claimed_one() -> None:
    """The reported case: equal names in scans 1-5; only scan 5's entry is scan 5's file."""
    members = [scan_file(str(n), "00003.dcm", rid=str(n)) for n in range(1, 6)]
    index = ArchiveIndex(members)
    for n in range(1, 6):
        assert index.match(f"MR1/scans/{n}-T1/resources/DICOM/files/00003.dcm") == members[n - 1]


def test_an_unlisted_file_is_skipped_and_counted() -> None:
    index = ArchiveIndex([scan_file("5", "00003.dcm")])
    assert index.match("MR1/scans/1-T1/resources/DICOM/files/00003.dcm") is None
    assert index.match("MR1/scans/5-T1/resources/DICOM/files/00004.dcm") is None
    assert index.match("garbage") is None
    assert (index.skipped, index.ambiguous) == (3, 0)


def test_a_name_two_listed_files_could_carry_is_ambiguous() -> None:
    # Scan "1" of type "X" and scan "1-X" without a type both become "1-X" in the archive.
    index = ArchiveIndex([scan_file("1", "a.dcm", rid="1"), scan_file("1-X", "a.dcm", rid="2")])
    assert index.match("MR1/scans/1-X/resources/DICOM/files/a.dcm") is None
    assert index.ambiguous == 1
    # Sub-folders differing only by what the rewrite produces.
    index = ArchiveIndex([scan_file("1", "1/a.dcm"), scan_file("1", "1-T1/a.dcm")])
    assert index.match("MR1/scans/1-T1/resources/DICOM/files/1-T1/a.dcm") is None


def test_the_first_attribution_fixes_the_layout() -> None:
    a, b = scan_file("1", "a.dcm"), scan_file("1", "b.dcm")
    index = ArchiveIndex([a, b])
    assert index.layout is None
    assert index.match("scans/1_T1/DICOM/a.dcm") == a
    assert index.layout == "improved"
    assert index.match("MR1/scans/1-T1/resources/DICOM/files/b.dcm") is None


def test_owner_level_resources_in_each_layout() -> None:
    m = member(f"{E}/resources/3/files/dir/notes.txt", "NOTES")
    assert m is not None
    for name in (
        "MR1/resources/NOTES/files/dir/notes.txt",
        "MR1/NOTES/dir/notes.txt",
        "resources/XNAT_E00001/NOTES/dir/notes.txt",
    ):
        assert ArchiveIndex([m]).match(name) == m, name
    subject = member("/data/projects/P/subjects/XNAT_S00001/resources/4/files/x.txt", "DOCS")
    assert subject is not None
    assert ArchiveIndex([subject]).match("resources/DOCS/x.txt") == subject


# -- against the demo server's own archives ----------------------------------------------------


def _tricky_site() -> Site:
    """Equal names across owners, a sub-folder named like its scan, an ID that is another ID plus
    a type suffix, reconstructions, assessors and session resources."""
    site = Site()
    site.add_project("P", "archives")
    site.add_subject("P", "s")
    exp = site.add_experiment("P", "s", "MR1")
    rng = random.Random(7)

    def fill(owner: object, label: str, paths: list[str], **kw: object) -> None:
        res = site.add_resource(owner, label, **kw)  # type: ignore[arg-type]
        for path in paths:
            site.add_file(res, path, rng.randbytes(64 + rng.randrange(64)), digest_known=False)

    for scan_id, kind in (("1", "T1"), ("2", "T1"), ("10", "T2 FLAIR/x"), ("1-T2", "")):
        scan = site.add_scan(exp, scan_id, kind)
        fill(scan, "DICOM", ["a.dcm", "b.dcm", f"{scan_id}/c.dcm", "sub/files/d.dcm"])
    recon = site.add_reconstruction(exp, "R1", "SEG")
    fill(recon, "NIFTI", ["a.dcm", "seg.nii"])
    for label in ("QC1", "QC2"):
        assessor = site.add_assessor(exp, label, "xnat:qcAssessmentData")
        fill(assessor, "DATA", ["a.dcm", "report.txt"])
    fill(exp, "NOTES", ["a.dcm", "n/notes.txt"])
    return site


@pytest.fixture(scope="module")
def tricky() -> Iterator[DemoServer]:
    with DemoServer(_tricky_site()) as server:
        yield server


def _get(server: DemoServer, path: str, **params: str) -> requests.Response:
    r = requests.get(server.url + path, params=params, auth=(DEMO_USER, DEMO_PASSWORD), timeout=30)
    r.raise_for_status()
    return r


SELECTIONS = [
    "scans/ALL/files",
    "scans/T1/files",
    "scans/1,10,1-T2/files",
    "scans/1/resources/DICOM/files",
    "reconstructions/ALL/out/files",
    "assessors/ALL/out/files",
    "resources/NOTES/files",
]


@pytest.mark.parametrize("structure", ["", "simplified", "improved"])
@pytest.mark.parametrize("selection", SELECTIONS)
def test_every_entry_holds_exactly_the_file_it_is_attributed_to(
    tricky: DemoServer, selection: str, structure: str
) -> None:
    exp = tricky.site.find_experiment(tricky.site.projects["P"], "MR1")
    assert exp is not None
    path = f"/data/experiments/{exp.id}/{selection}"
    rows = _get(tricky, path, format="json").json()["ResultSet"]["Result"]
    members = [m for r in rows if (m := member(r["URI"], r["collection"])) is not None]
    assert len(members) == len(rows)
    index = ArchiveIndex(members)
    archive = zipfile.ZipFile(
        io.BytesIO(_get(tricky, path, format="zip", structure=structure).content)
    )
    attributed = 0
    for info in archive.infolist():
        m = index.match(info.filename)
        if m is None:
            continue
        attributed += 1
        assert archive.read(info) == _get(tricky, m.key).content, (info.filename, m.key)
    # Everything that can be told apart is attributed; nothing is ever attributed wrongly.
    assert attributed + index.ambiguous + index.skipped == len(archive.infolist())
    assert index.skipped == 0
    # Only scan "1-T2" is lost, in the default layout: without scan 1's type, its four names
    # could be scan 1's ("1" + "-T2") as well.
    assert attributed >= len(members) - 4, index.ambiguous
