"""Everyday tools on a real mount see one honest tree: find, du, tar, cp -a, rsync, Perl's
File::Find, stat, ls -a, shutil, and the times of projects and the root."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from tests.support.mounting import Mount, demo_mounted
from xnatfs.demo import DEMO_PASSWORD, DEMO_USER, DemoServer
from xnatfs.namespace.rules import parse_time_ns

pytestmark = pytest.mark.fuse

SESSION = "TEST/1/MR1"
SELECTORS = {"ALL", "T1", "T2", "xnat:qcAssessmentData"}


def mount(demo: DemoServer, tmp_path: Path, *options: str, name: str = "mnt") -> object:
    return demo_mounted(demo, tmp_path, "--metadata-ttl", "30", *options, name=name)


def run(*argv: str | Path, cwd: Path | None = None) -> str:
    proc = subprocess.run(
        [os.fspath(a) for a in argv],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def unique_files(session: Path) -> dict[str, int]:
    """Each file of the session once (through scan IDs, labels and resources, no selector):
    path -> size."""
    out = {}
    for top in ("scans", "reconstructions", "assessors", "resources"):
        for owner in (session / top).iterdir():
            if owner.name in SELECTORS:
                continue
            for f in owner.rglob("*"):
                if f.is_file():
                    out[os.fspath(f.relative_to(session))] = f.stat().st_size
    return out


def test_each_file_is_one_inode_counted_once_by_du_tar_cp_and_rsync(
    demo: DemoServer, tmp_path: Path
) -> None:
    with mount(demo, tmp_path) as m:
        assert isinstance(m, Mount)
        session = m.path / SESSION
        files = unique_files(session)
        assert len(files) == 16
        total = sum(files.values())
        # find counts names: each file once per listed path (ID, type, ALL).
        names = run("find", session, "-type", "f").split()
        assert len(names) == 48
        # One file, three names: one inode, three links.
        by_id = (session / "scans/1/DICOM/1.dcm").stat()
        for other in ("scans/T1/DICOM/1/1.dcm", "scans/ALL/DICOM/1/1.dcm"):
            st = (session / other).stat()
            assert (st.st_ino, st.st_nlink) == (by_id.st_ino, 3)
        assert by_id.st_nlink == 3
        # du counts every inode once.
        assert int(run("du", "-sb", session).split()[0]) == total
        # tar stores each file's bytes once and the other names as links.
        archive = tmp_path / "session.tar"
        run("tar", "cf", archive, "-C", session.parent, "MR1")
        with tarfile.open(archive) as t:
            members = [i for i in t.getmembers() if i.isfile() or i.islnk()]
            assert len(members) == 48
            assert sum(1 for i in members if i.isfile()) == 16
            assert sum(i.size for i in members if i.isfile()) == total
        # cp -a and rsync -aH keep the links: the bytes land on disk once.
        run("cp", "-a", session, tmp_path / "cp")
        run("rsync", "-aH", f"{session}/", tmp_path / "rsync")
        for copy in (tmp_path / "cp", tmp_path / "rsync"):
            inodes = {f.stat().st_ino for f in copy.rglob("*") if f.is_file()}
            assert len(inodes) == 16, copy
            assert int(run("du", "-sb", "--apparent-size", copy).split()[0]) >= total
            assert sum(os.stat(p).st_size for p in _one_per_inode(copy)) == total


def _one_per_inode(root: Path) -> list[Path]:
    seen: dict[int, Path] = {}
    for f in sorted(root.rglob("*")):
        if f.is_file():
            seen.setdefault(f.stat().st_ino, f)
    return list(seen.values())


def test_selectors_hidden_leave_one_name_per_file_and_still_resolve(
    demo: DemoServer, tmp_path: Path
) -> None:
    with mount(demo, tmp_path, "--selectors", "hidden") as m:
        assert isinstance(m, Mount)
        session = m.path / SESSION
        assert sorted(os.listdir(session / "scans")) == ["1", "2", "3", "4"]
        assert len(run("find", session, "-type", "f").split()) == 16
        assert (session / "scans/1/DICOM/1.dcm").stat().st_nlink == 1
        # Still there by name, as ZFS's hidden snapshot directory.
        assert sorted(os.listdir(session / "scans/T1/DICOM")) == ["1", "2"]
        assert (session / "scans/ALL/DICOM/1/1.dcm").read_bytes() == (
            session / "scans/1/DICOM/1.dcm"
        ).read_bytes()


def test_walkers_that_trust_directory_link_counts_find_every_file(
    demo: DemoServer, tmp_path: Path
) -> None:
    if shutil.which("perl") is None:
        pytest.skip("perl is not installed")
    with mount(demo, tmp_path) as m:
        assert isinstance(m, Mount)
        root = m.path / "TEST"
        script = (
            "use File::Find; $File::Find::dont_use_nlink = 0;"
            'find(sub { print "$File::Find::name\\n" if -f $_ }, $ARGV[0]);'
        )
        perl = sorted(run("perl", "-e", script, root).split())
        found = sorted(run("find", root, "-type", "f").split())
        assert len(found) >= 48 and perl == found
        # A listed directory counts its sub-directories (2 + n); an unlisted one says 1.
        session = m.path / SESSION
        os.listdir(session / "scans")
        subdirs = sum(1 for e in os.scandir(session / "scans") if e.is_dir())
        assert (session / "scans").stat().st_nlink == 2 + subdirs


def test_inode_numbers_survive_forgetting_and_remounts(demo: DemoServer, tmp_path: Path) -> None:
    paths = ["TEST", SESSION, f"{SESSION}/scans/1/DICOM", f"{SESSION}/scans/1/DICOM/1.dcm"]
    with mount(demo, tmp_path) as m:
        assert isinstance(m, Mount)
        before = {p: (m.path / p).stat().st_ino for p in paths}
        Path("/proc/sys/vm/drop_caches").write_text("2")  # the kernel forgets every inode
        assert {p: (m.path / p).stat().st_ino for p in paths} == before
    with mount(demo, tmp_path, name="again") as m:
        assert isinstance(m, Mount)
        assert {p: (m.path / p).stat().st_ino for p in paths} == before


def test_a_file_without_size_is_copied_whole_on_a_fresh_mount(
    demo: DemoServer, tmp_path: Path
) -> None:
    """Tools that copy st_size bytes (rsync, tar, shutil) must get them all."""
    import requests

    for tool in ("rsync", "tar", "shutil"):
        with mount(demo, tmp_path, name=f"mnt-{tool}") as m:
            assert isinstance(m, Mount)
            report = next((m.path / "STUDY").glob("*/*/resources/NOTES/qc/report.txt"))
            subject, session = report.parts[-6], report.parts[-5]
            rows = requests.get(
                f"{demo.url}/data/projects/STUDY/subjects/{subject}/experiments/{session}"
                "/resources/NOTES/files",
                params={"format": "json"},
                auth=(DEMO_USER, DEMO_PASSWORD),
                timeout=30,
            ).json()["ResultSet"]["Result"]
            (row,) = [r for r in rows if r["URI"].endswith("/qc/report.txt")]
            assert row["Size"] == ""  # the listing does not say
            expected = requests.get(
                demo.url + row["URI"], auth=(DEMO_USER, DEMO_PASSWORD), timeout=30
            ).content
            out = tmp_path / f"out-{tool}"
            out.mkdir()
            if tool == "rsync":
                run("rsync", "-a", report, out / "report.txt")
            elif tool == "tar":
                run("tar", "cf", out / "r.tar", "-C", report.parent, "report.txt")
                run("tar", "xf", out / "r.tar", "-C", out)
            else:
                shutil.copyfile(report, out / "report.txt")
            assert (out / "report.txt").read_bytes() == expected, tool


def test_every_listing_has_dot_and_dotdot(demo: DemoServer, tmp_path: Path) -> None:
    with mount(demo, tmp_path) as m:
        assert isinstance(m, Mount)
        for d in (m.path, m.path / "TEST", m.path / SESSION / "scans/T1/DICOM"):
            names = run("ls", "-a", d).split()
            assert names[:2] == [".", ".."], d


def test_project_and_root_times_come_from_subjects(demo: DemoServer, tmp_path: Path) -> None:
    """The server sends no project date (as real XNAT): a project shows its newest subject's
    insert date, the root the newest of all; never 1970, never the mount time, and the same
    after the listing cache expires."""
    site = demo.site
    newest = {
        pid: max(parse_time_ns(s.insert_date) or 0 for s in p.subjects.values())
        for pid, p in site.projects.items()
        if p.subjects
    }
    started = time.time()
    with mount(demo, tmp_path, "--metadata-ttl", "1") as m:
        assert isinstance(m, Mount)
        for pid in ("TEST", "STUDY"):
            assert (m.path / pid).stat().st_mtime_ns == newest[pid], pid
        readable = [p for p in os.listdir(m.path) if p in newest and p != "LOCKED"]
        assert m.path.stat().st_mtime_ns >= max(newest[p] for p in readable)
        assert m.path.stat().st_mtime < started - 86400  # a date from the archive, not now
        time.sleep(1.5)  # the listings expire
        assert (m.path / "TEST").stat().st_mtime_ns == newest["TEST"]


def test_a_non_empty_mount_point_is_refused_unless_allowed(
    demo: DemoServer, tmp_path: Path
) -> None:
    mnt = tmp_path / "busy"
    mnt.mkdir()
    (mnt / "notes.txt").write_text("mine")
    env = dict(os.environ, XNATFS_USER=DEMO_USER, XNATFS_PASSWORD=DEMO_PASSWORD)
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "xnatfs", "mount", demo.url, os.fspath(mnt)),
            *("--foreground", "--cache-dir", os.fspath(tmp_path / "cache")),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "not empty" in proc.stderr and "--allow-non-empty" in proc.stderr
    assert (mnt / "notes.txt").read_text() == "mine"
    with mount(demo, tmp_path, "--allow-non-empty", name="busy") as m:
        assert isinstance(m, Mount)
        assert "TEST" in os.listdir(m.path)
    assert (mnt / "notes.txt").read_text() == "mine"
