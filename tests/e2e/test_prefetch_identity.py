"""A series prefetch never attributes one file's bytes to another (real mounts).

The session below is the one the wrong-bytes report describes: scans 1-5 all of type T1 (and
five assessors of one xsi:type), each with a resource holding files of the same names and sizes
but different bytes, listed without digests. Reading scans 1-4 through their own paths and then
every file of scan 5 through a selector starts a prefetch of the selector's archive, which holds
every scan's entries. Only scan 5's entries may land in scan 5's files, whatever layout the
archive uses; the bytes must equal the server's on the same mount and after a remount.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.support.mounting import Mount, tmp_mounted
from xnatfs.demo import DEMO_PASSWORD, DEMO_USER, DemoServer
from xnatfs.demo.site import Site

pytestmark = pytest.mark.fuse

PROJECT, SUBJECT, SESSION = "WB", "s1", "MR1"
FILES = [f"{i:05d}.dcm" for i in range(1, 21)]
SIZE = 4096
ASSESSOR_TYPE = "xnat:qcAssessmentData"


def _site(digests: bool) -> Site:
    site = Site()
    site.add_project(PROJECT, "Wrong bytes")
    site.add_subject(PROJECT, SUBJECT)
    exp = site.add_experiment(PROJECT, SUBJECT, SESSION, date="2024-01-02")
    rng = random.Random(14)
    for n in range(1, 6):
        scan = site.add_scan(exp, str(n), "T1")
        res = site.add_resource(scan, "DICOM", format="DICOM")
        for name in FILES:
            site.add_file(res, name, rng.randbytes(SIZE), mtime=1.7e9, digest_known=digests)
        assessor = site.add_assessor(exp, f"A{n}", ASSESSOR_TYPE)
        out = site.add_resource(assessor, "DATA")
        for name in FILES:
            site.add_file(out, name, rng.randbytes(SIZE), mtime=1.7e9, digest_known=digests)
    return site


def _server_bytes(demo: DemoServer, uri: str) -> bytes:
    r = requests.get(demo.url + uri, auth=(DEMO_USER, DEMO_PASSWORD), timeout=30)
    r.raise_for_status()
    return r.content


def _expected(demo: DemoServer, collection: str, owner_id: str, resource: str) -> dict[str, str]:
    """name -> MD5 of the server's bytes, fetched one file at a time through the file's URI."""
    listing = requests.get(
        f"{demo.url}/data/experiments/{_experiment_id(demo)}/{collection}/{owner_id}"
        f"{'' if collection == 'scans' else '/out'}/resources/{resource}/files",
        params={"format": "json"},
        auth=(DEMO_USER, DEMO_PASSWORD),
        timeout=30,
    ).json()["ResultSet"]["Result"]
    return {
        row["Name"]: hashlib.md5(_server_bytes(demo, row["URI"])).hexdigest() for row in listing
    }


def _experiment_id(demo: DemoServer) -> str:
    exp = demo.site.find_experiment(demo.site.projects[PROJECT], SESSION)
    assert exp is not None
    return exp.id


def _assessor_id(demo: DemoServer, label: str) -> str:
    exp = demo.site.find_experiment(demo.site.projects[PROJECT], SESSION)
    assert exp is not None
    return next(a.id for a in exp.assessors.values() if a.label == label)


def _eventually(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    """The server logs a request when its handler ends, a moment after the client has read."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _md5s(directory: Path) -> dict[str, str]:
    return {name: hashlib.md5((directory / name).read_bytes()).hexdigest() for name in FILES}


def _mount(demo: DemoServer, tmp_path: Path, name: str) -> object:
    return tmp_mounted(
        demo.url,
        tmp_path,
        user=DEMO_USER,
        password=DEMO_PASSWORD,
        options=("--metadata-ttl", "60", "--prefetch", "zip"),
        name=name,
    )


def _check(
    demo: DemoServer,
    tmp_path: Path,
    collection: str,
    selector: str,
    *,
    digests: bool,
) -> None:
    session = Path(PROJECT, SUBJECT, SESSION, collection)
    if collection == "scans":
        own = [session / str(n) / "DICOM" for n in range(1, 6)]
        group = session / selector / "DICOM" / "5"
        want = _expected(demo, "scans", "5", "DICOM")
    else:
        own = [session / f"A{n}" / "DATA" for n in range(1, 6)]
        group = session / selector / "DATA" / "A5"
        want = _expected(demo, "assessors", _assessor_id(demo, "A5"), "DATA")
    with _mount(demo, tmp_path, "mnt") as m:
        assert isinstance(m, Mount)
        for directory in own[:4]:
            for name in FILES:
                (m.path / directory / name).read_bytes()
        zips_before = demo.log.count(kind="zip")
        gets_before = demo.log.count(kind="file")
        # In order, as a converter reads a series: the second miss starts the prefetch.
        got = _md5s(m.path / group)
        assert _eventually(lambda: demo.log.count(kind="zip") > zips_before), "no prefetch ran"
        # The archive delivered the group (two misses, and perhaps a file a reader took ahead
        # of the stream, are single GETs); the fallback of one GET per file would also be
        # right, but would mean the archive's layout was not understood.
        assert demo.log.count(kind="file") - gets_before <= 6
        assert got == want
        assert _md5s(m.path / own[4]) == want
        log = m.log()
    assert "differs" not in log, log[-3000:]
    # The cache holds what was admitted: a remount serves the same bytes from it.
    with _mount(demo, tmp_path, "again") as m:
        assert isinstance(m, Mount)
        assert _md5s(m.path / group) == want
        assert _md5s(m.path / own[4]) == want


@pytest.fixture
def server(request: pytest.FixtureRequest) -> object:
    digests, structure = request.param
    with DemoServer(_site(digests)) as demo:
        demo.faults.zip_structure = structure
        yield demo


LAYOUTS = [None, "simplified", "improved"]


@pytest.mark.parametrize("server", [(False, s) for s in LAYOUTS], indirect=True, ids=str)
def test_all_selector_scans_in_every_layout(server: DemoServer, tmp_path: Path) -> None:
    _check(server, tmp_path, "scans", "ALL", digests=False)


@pytest.mark.parametrize("server", [(False, s) for s in LAYOUTS], indirect=True, ids=str)
def test_all_selector_assessors_in_every_layout(server: DemoServer, tmp_path: Path) -> None:
    _check(server, tmp_path, "assessors", "ALL", digests=False)


@pytest.mark.parametrize("selector", ["T1", "1,2,3,4,5"])
@pytest.mark.parametrize("server", [(False, None)], indirect=True, ids=str)
def test_type_and_comma_selectors_scans(server: DemoServer, tmp_path: Path, selector: str) -> None:
    _check(server, tmp_path, "scans", selector, digests=False)


@pytest.mark.parametrize("selector", [ASSESSOR_TYPE, "A1,A2,A3,A4,A5"])
@pytest.mark.parametrize("server", [(False, None)], indirect=True, ids=str)
def test_type_and_comma_selectors_assessors(
    server: DemoServer, tmp_path: Path, selector: str
) -> None:
    _check(server, tmp_path, "assessors", selector, digests=False)


@pytest.mark.parametrize("server", [(True, None)], indirect=True, ids=str)
def test_with_digests_no_mismatch_is_ever_written(server: DemoServer, tmp_path: Path) -> None:
    _check(server, tmp_path, "scans", "ALL", digests=True)
