"""Extended attributes on a real mount, read with getfattr as users read them."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.support.mounting import quiet_log, tmp_mounted
from xnatfs.demo import DEMO_PASSWORD, DEMO_USER, DemoServer

pytestmark = pytest.mark.fuse

SESSION = "TEST/1/MR1"


def getfattr(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("getfattr") is None:
        pytest.skip("getfattr is not installed (the attr package; scripts/setup.sh installs it)")
    return subprocess.run(
        ["getfattr", *args, os.fspath(path)], capture_output=True, text=True, timeout=60
    )


def dump(path: Path) -> dict[str, str]:
    """`getfattr -d PATH` as a dict (it shows the user.* attributes, values quoted)."""
    out = getfattr(path, "-d")
    assert out.returncode == 0, out.stderr
    attrs = {}
    for line in out.stdout.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            attrs[name] = value.strip('"')
    return attrs


def listing(demo: DemoServer, path: str) -> list[dict[str, str]]:
    r = requests.get(
        demo.url + path, params={"format": "json"}, auth=(DEMO_USER, DEMO_PASSWORD), timeout=30
    )
    r.raise_for_status()
    rows: list[dict[str, str]] = r.json()["ResultSet"]["Result"]
    return rows


def test_getfattr_shows_every_name_from_memory(demo: DemoServer, tmp_path: Path) -> None:
    e = "XNAT_E00001"
    [dicom] = [
        r
        for r in listing(demo, f"/data/experiments/{e}/scans/1/resources")
        if r["label"] == "DICOM"
    ]
    rid = dicom["xnat_abstractresource_id"]
    [row] = [
        r
        for r in listing(demo, f"/data/experiments/{e}/scans/1/resources/{rid}/files")
        if r["Name"] == "1.dcm"
    ]
    with tmp_mounted(demo.url, tmp_path, user=DEMO_USER, password=DEMO_PASSWORD) as m:
        session = m.path / SESSION
        first = session / "scans/1/DICOM/1.dcm"
        expected = {
            "TEST": {"uri": "/data/projects/TEST", "id": "TEST", "type": "xnat:projectData"},
            "TEST/1": {
                "uri": "/data/projects/TEST/subjects/XNAT_S00001",
                "id": "XNAT_S00001",
                "type": "xnat:subjectData",
            },
            SESSION: {"uri": f"/data/experiments/{e}", "id": e, "type": "xnat:mrSessionData"},
            f"{SESSION}/scans": {"uri": f"/data/experiments/{e}/scans"},
            f"{SESSION}/scans/1": {
                "uri": f"/data/experiments/{e}/scans/1",
                "id": "1",
                "type": "T1",
            },
            f"{SESSION}/scans/1/DICOM": {
                "uri": f"/data/experiments/{e}/scans/1/resources/{rid}",
                "id": rid,
            },
            # The same resource reached through a type selector: one group per scan.
            f"{SESSION}/scans/T1/DICOM/1": {
                "uri": f"/data/experiments/{e}/scans/1/resources/{rid}",
                "id": rid,
            },
            f"{SESSION}/assessors/ASSESS1": {
                "uri": f"/data/experiments/{e}/assessors/XNAT_E00002",
                "id": "XNAT_E00002",
                "type": "xnat:qcAssessmentData",
            },
            f"{SESSION}/scans/1/DICOM/1.dcm": {
                "uri": row["URI"],
                "digest": row["digest"],
                "cached": "no",
            },
        }
        # Everything listed once; from then on attributes cost no request.
        for rel in expected:
            os.stat(m.path / rel)
        quiet_log(demo)
        for rel, attrs in expected.items():
            assert dump(m.path / rel) == {f"user.xnat.{k}": v for k, v in attrs.items()}, rel
        assert demo.log.total == 0, demo.log.entries()

        assert first.read_bytes()
        # Verified at once; admitted to the disk cache a moment later (after an fsync).
        deadline = time.monotonic() + 10
        while (state := dump(first)["user.xnat.cached"]) != "yes" and time.monotonic() < deadline:
            assert state == f"partial {first.stat().st_size}"
            time.sleep(0.05)
        assert state == "yes"


def test_other_namespaces_are_not_supported(demo: DemoServer, tmp_path: Path) -> None:
    with tmp_mounted(demo.url, tmp_path, user=DEMO_USER, password=DEMO_PASSWORD) as m:
        f = m.path / SESSION / "scans/1/DICOM/1.dcm"
        out = getfattr(f, "-n", "security.selinux")
        assert out.returncode != 0 and "Operation not supported" in out.stderr
        out = getfattr(f, "-n", "user.nothing")
        assert out.returncode != 0 and "No such attribute" in out.stderr
        # ls -l stays quiet about them (it treats ENOTSUP as "no labels, no ACLs").
        ls = subprocess.run(["ls", "-l", os.fspath(f.parent)], capture_output=True, text=True)
        assert ls.returncode == 0 and ls.stderr == "" and "1.dcm" in ls.stdout
