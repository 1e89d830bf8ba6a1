"""Real mounts of the demo XNAT, used the way people use them: ls, find, cp, dcm2niix, faults."""

from __future__ import annotations

import errno
import filecmp
import hashlib
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.support.mounting import Mount, quiet_log, settled, tmp_mounted
from xnatfs.demo import DEMO_PASSWORD, DEMO_USER, DemoServer

pytestmark = pytest.mark.fuse

SESSION = "TEST/1/MR1"

SEED_TREE = sorted(
    [
        *(f"scans/{s}/DICOM/{f}" for s in "1234" for f in ("1.dcm", "2.dcm")),
        *(f"scans/{s}/SNAPSHOTS/snap.jpg" for s in "1234"),
        "reconstructions/RECON1/1/something.img",
        "reconstructions/RECON1/1/something.hdr",
        "assessors/ASSESS1/TEST/something.img",
        "assessors/ASSESS1/TEST/something.hdr",
    ]
)


def mount_demo(demo: DemoServer, tmp_path: Path, *options: str, **kw: object) -> object:
    return tmp_mounted(
        demo.url,
        tmp_path,
        user=DEMO_USER,
        password=DEMO_PASSWORD,
        options=("--metadata-ttl", "30", *options),
        **kw,  # type: ignore[arg-type]
    )


def direct(demo: DemoServer, uri: str) -> bytes:
    r = requests.get(demo.url + uri, auth=(DEMO_USER, DEMO_PASSWORD), timeout=30)
    r.raise_for_status()
    return r.content


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def by_id_tree(session: Path) -> list[str]:
    """The seed tree as reached through IDs and labels (no selector directories)."""
    out = []
    for top in ("scans", "reconstructions", "assessors"):
        for child in (session / top).iterdir():
            if child.name in ("ALL", "T1", "T2", "xnat:qcAssessmentData"):
                continue
            out += [f"{top}/{child.name}/{p}" for p in files_under(child)]
    return sorted(out)


def test_seed_tree_exactly_with_bytes_equal_to_the_server(demo: DemoServer, tmp_path: Path) -> None:
    with mount_demo(demo, tmp_path) as m:
        assert isinstance(m, Mount)
        assert sorted(os.listdir(m.path)) == ["LOCKED", "STUDY", "TEST"]  # SECRET is invisible
        session = m.path / SESSION
        assert sorted(os.listdir(session)) == ["assessors", "reconstructions", "resources", "scans"]
        assert sorted(os.listdir(session / "scans")) == ["1", "2", "3", "4", "ALL", "T1", "T2"]
        assert by_id_tree(session) == SEED_TREE
        # Every file byte-exact against a direct download of its URI, through ID paths and
        # through every kind of selector path.
        listing = requests.get(
            f"{demo.url}/data/projects/TEST/subjects/1/experiments/MR1/scans/ALL/files",
            params={"format": "json"},
            auth=(DEMO_USER, DEMO_PASSWORD),
            timeout=30,
        ).json()["ResultSet"]["Result"]
        for row in listing:
            scan = row["URI"].split("/scans/")[1].split("/")[0]
            expected = direct(demo, row["URI"])
            res, name = row["collection"], row["Name"]
            kind = "T1" if scan in "12" else "T2"
            for path in (
                f"scans/{scan}/{res}/{name}",
                f"scans/ALL/{res}/{scan}/{name}",
                f"scans/{kind}/{res}/{scan}/{name}",
                f"scans/{scan},4/{res}/{scan}/{name}",
            ):
                assert (session / path).read_bytes() == expected, path
        st = (session / "scans/1/DICOM/1.dcm").stat()
        assert oct(st.st_mode & 0o777) == "0o444" and st.st_size > 0
        assert st.st_mtime > 1e9  # a real date, not 1970 and not the mount time
        assert abs(st.st_mtime - time.time()) > 86400


def test_request_counts(demo: DemoServer, tmp_path: Path) -> None:
    with mount_demo(demo, tmp_path, "--prefetch", "off") as m:
        quiet_log(demo)
        dicom = m.path / SESSION / "scans/1/DICOM"
        names = os.listdir(dicom)
        # projects (cached at mount), subjects, experiments, scans, scan resources, files
        settled(demo)
        listings_before = demo.log.count(kind="listing")
        assert listings_before == 5
        for name in names * 3:
            (dicom / name).stat()
        for probe in (".hidden", ".directory", "desktop.ini", "autorun.inf", ".git"):
            assert not (dicom / probe).exists()
        settled(demo)
        assert demo.log.count(kind="listing") == listings_before
        assert demo.log.count(kind="file") == 0
        # A selector directory costs one server-side selector files request for all scans.
        quiet_log(demo)
        groups = os.listdir(m.path / SESSION / "scans/T1/DICOM")
        assert sorted(groups) == ["1", "2"]
        for g in groups:
            os.listdir(m.path / SESSION / "scans/T1/DICOM" / g)
        settled(demo)
        files = [e for e in demo.log.entries() if e.kind == "listing" and e.path.endswith("/files")]
        assert len(files) == 1 and "/scans/T1/" in files[0].path
        # Reading a file twice: one GET, the re-read comes from a cache.
        quiet_log(demo)
        data = (dicom / "1.dcm").read_bytes()
        assert (dicom / "1.dcm").read_bytes() == data
        assert (m.path / SESSION / "scans/ALL/DICOM/1/1.dcm").read_bytes() == data
        settled(demo)
        assert demo.log.count(kind="file") == 1


def test_copy_a_session_out_and_convert_with_dcm2niix(demo: DemoServer, tmp_path: Path) -> None:
    if shutil.which("dcm2niix") is None:
        pytest.skip("dcm2niix is not installed")
    with mount_demo(demo, tmp_path) as m:
        series = next((m.path / "STUDY").glob("*/*/scans/T1 MPRAGE/DICOM"))
        local = tmp_path / "copy"
        subprocess.run(["cp", "-r", str(series), str(local)], check=True, timeout=120)
        cmp = filecmp.dircmp(series, local)
        assert not cmp.left_only and not cmp.right_only
        out_mount, out_local = tmp_path / "nii_mount", tmp_path / "nii_local"
        for src, out in ((series, out_mount), (local, out_local)):
            out.mkdir()
            subprocess.run(
                ["dcm2niix", "-f", "vol", "-z", "n", "-o", str(out), str(src)],
                check=True,
                capture_output=True,
                timeout=120,
            )
        a, b = out_mount / "vol.nii", out_local / "vol.nii"
        assert a.stat().st_size > 1_000_000
        assert hashlib.md5(a.read_bytes()).digest() == hashlib.md5(b.read_bytes()).digest()
        du = subprocess.run(["du", "-sb", str(series)], capture_output=True, text=True, check=True)
        assert int(du.stdout.split()[0]) >= sum(p.stat().st_size for p in local.rglob("*.dcm"))


def test_errors_enoent_eacces_erofs(demo: DemoServer, tmp_path: Path) -> None:
    with mount_demo(demo, tmp_path) as m:
        with pytest.raises(FileNotFoundError):
            os.stat(m.path / "TEST/nobody")
        with pytest.raises(FileNotFoundError):
            os.stat(m.path / "SECRET")
        with pytest.raises(PermissionError):
            os.listdir(m.path / "LOCKED")
        target = m.path / SESSION / "scans/1/DICOM/1.dcm"
        for action in (
            lambda: os.open(target, os.O_RDWR),
            lambda: os.open(m.path / SESSION / "new.txt", os.O_WRONLY | os.O_CREAT),
            lambda: os.mkdir(m.path / SESSION / "d"),
            lambda: os.unlink(target),
            lambda: os.rename(target, target.with_name("x")),
            lambda: os.chmod(target, 0o644),
        ):
            with pytest.raises(OSError) as info:
                action()
            assert info.value.errno == errno.EROFS
        assert target.read_bytes()[128:132] == b"DICM"  # still serving


def test_503s_are_retried_to_success(demo: DemoServer, tmp_path: Path) -> None:
    with mount_demo(demo, tmp_path) as m:
        demo.faults.fail_next(3, status=503, retry_after=0.1)
        assert sorted(os.listdir(m.path / SESSION / "scans")) == [
            "1",
            "2",
            "3",
            "4",
            "ALL",
            "T1",
            "T2",
        ]
        demo.faults.fail_next(2, status=502, path_regex=r"/files/1\.dcm$")
        assert (m.path / SESSION / "scans/2/DICOM/1.dcm").read_bytes()[128:132] == b"DICM"


def test_stopped_server_gives_eio_in_time_and_the_mount_recovers(
    demo: DemoServer, tmp_path: Path
) -> None:
    with mount_demo(
        demo,
        tmp_path,
        "--retries",
        "1",
        "--connect-timeout",
        "2",
        "--read-timeout",
        "2",
        "--metadata-ttl",
        "0",
    ) as m:
        scans = m.path / SESSION / "scans"
        cached = (scans / "1/DICOM/1.dcm").read_bytes()
        demo.stop()
        started = time.monotonic()
        with pytest.raises(OSError) as info:
            os.listdir(scans / "3/DICOM")
        assert info.value.errno == errno.EIO
        assert time.monotonic() - started < 30
        with pytest.raises(OSError) as info:
            (scans / "3/DICOM/1.dcm").read_bytes()
        assert info.value.errno in (errno.EIO, errno.ENOENT)
        assert m.proc.poll() is None  # the mount is alive
        demo.start()  # same port
        assert sorted(os.listdir(scans / "3/DICOM")) == ["1.dcm", "2.dcm"]
        with open(scans / "1/DICOM/1.dcm", "rb") as f:
            assert f.read() == cached


def test_server_killed_mid_read_gives_eio_then_recovers(demo: DemoServer, tmp_path: Path) -> None:
    with mount_demo(demo, tmp_path, "--retries", "0", "--read-timeout", "2") as m:
        target = next((m.path / "STUDY").glob("*/*/scans/T1 MPRAGE/DICOM/*/*.dcm"))
        size = target.stat().st_size
        # Only a file's own GET stalls: listings fetched ahead of the glob's walk go through.
        demo.faults.stall_body(
            after_bytes=size // 2, seconds=10, times=1, path_regex=r"/files/[^?]+(\?|$)"
        )
        errors: list[int] = []

        def reader() -> None:
            try:
                target.read_bytes()
            except OSError as exc:
                errors.append(exc.errno or 0)

        thread = threading.Thread(target=reader)
        thread.start()
        time.sleep(0.5)
        demo.stop()
        thread.join(60)
        assert not thread.is_alive()
        assert errors == [errno.EIO]
        demo.faults.clear()
        demo.start()
        data = target.read_bytes()
        assert len(data) == size and data[128:132] == b"DICM"


def test_sigterm_unmounts_cleanly_with_status_zero(demo: DemoServer, tmp_path: Path) -> None:
    with mount_demo(demo, tmp_path) as m:
        os.listdir(m.path / "TEST")
        m.proc.send_signal(signal.SIGTERM)
        assert m.proc.wait(timeout=20) == 0
        with open("/proc/self/mountinfo") as f:
            assert str(m.path) not in f.read()


def test_bad_url_credentials_and_mountpoint_fail_before_mounting(
    demo: DemoServer, tmp_path: Path
) -> None:
    import sys

    mnt = tmp_path / "mnt"
    mnt.mkdir()
    env = dict(os.environ, XNATFS_USER=DEMO_USER, XNATFS_PASSWORD="wrong")
    cases = [
        ([demo.url, str(mnt)], env, "rejected"),
        (
            ["http://127.0.0.1:1", str(mnt)],
            dict(env, XNATFS_PASSWORD=DEMO_PASSWORD),
            "cannot reach",
        ),
        (["not a url", str(mnt)], env, "URL"),
        (
            [demo.url, str(tmp_path / "missing")],
            dict(env, XNATFS_PASSWORD=DEMO_PASSWORD),
            "does not exist",
        ),
    ]
    for argv, environ, phrase in cases:
        proc = subprocess.run(
            [sys.executable, "-m", "xnatfs", "mount", *argv, "--cache-dir", str(tmp_path / "c")],
            env=environ,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode != 0, argv
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and phrase in lines[0], proc.stderr
        assert "wrong" not in proc.stderr  # the password never shows
    with open("/proc/self/mountinfo") as f:
        assert str(mnt) not in f.read()


def test_background_mount_returns_when_live_and_umount(demo: DemoServer, tmp_path: Path) -> None:
    import sys

    from tests.support.mounting import mount_env, require_fuse, unmount

    require_fuse()
    mnt = tmp_path / "bg"
    mnt.mkdir()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "xnatfs",
            "mount",
            demo.url,
            str(mnt),
            "--cache-dir",
            str(tmp_path / "c"),
        ],
        env=mount_env(DEMO_USER, DEMO_PASSWORD),
        capture_output=True,
        text=True,
        timeout=60,
    )
    try:
        assert proc.returncode == 0, proc.stderr
        assert "TEST" in os.listdir(mnt)  # live as soon as the command returned
        out = subprocess.run(
            [sys.executable, "-m", "xnatfs", "umount", str(mnt)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        with open("/proc/self/mountinfo") as f:
            assert str(mnt) not in f.read()
    finally:
        unmount(mnt)


def mount_stats(path: Path) -> dict[str, object]:
    import json

    return dict(json.loads(os.getxattr(path, "user.xnatfs.stats")))


def test_lookup_counts_return_to_zero_when_the_kernel_forgets(
    demo: DemoServer, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("dropping the kernel's caches needs root")
    with mount_demo(demo, tmp_path) as m:
        found = subprocess.run(
            ["find", str(m.path / "TEST"), "-type", "f"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.split()
        subprocess.run(["ls", "-lR", str(m.path / "TEST")], capture_output=True, check=True)
        assert len(found) == 48
        assert int(mount_stats(m.path)["inodes"]) > 48  # type: ignore[call-overload]
        # `echo 2` makes the kernel forget every inode it holds: only the pinned root may remain,
        # which proves every lookup and readdirplus entry was counted exactly.
        deadline = time.monotonic() + 20
        while True:
            Path("/proc/sys/vm/drop_caches").write_text("2")
            inodes = int(mount_stats(m.path)["inodes"])  # type: ignore[call-overload]
            if inodes == 1 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert inodes == 1
        # Forgotten paths still resolve, with new numbers.
        assert (m.path / SESSION / "scans/1/DICOM/1.dcm").read_bytes()[128:132] == b"DICM"


def test_unknown_size_reads_completely_and_mmap_works(demo: DemoServer, tmp_path: Path) -> None:
    import sys

    with mount_demo(demo, tmp_path) as m:
        report = next((m.path / "STUDY").glob("*/*/resources/NOTES/qc/report.txt"))
        uri = None
        for row in requests.get(
            f"{demo.url}/data/projects/STUDY/subjects/{report.parts[-6]}/experiments/"
            f"{report.parts[-5]}/resources/NOTES/files",
            params={"format": "json"},
            auth=(DEMO_USER, DEMO_PASSWORD),
            timeout=30,
        ).json()["ResultSet"]["Result"]:
            if row["URI"].endswith("/qc/report.txt"):
                uri = row["URI"]
        assert uri is not None
        expected = direct(demo, uri)
        assert len(expected) > 0
        # The listing has no Size for it: the size is learned with one request before anyone
        # reads, so tools that copy st_size bytes get them all.
        demo.log.reset()
        assert report.stat().st_size == len(expected)
        assert demo.log.count(kind="file") <= 1
        assert report.read_bytes() == expected
        # mmap in another process: a page fault here would hold this process's GIL while the
        # demo server, a thread of this process, has to answer the download behind it.
        dicom = m.path / SESSION / "scans/3/DICOM/2.dcm"
        script = (
            "import mmap, sys, hashlib\n"
            "with open(sys.argv[1], 'rb') as f:\n"
            "    mm = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)\n"
            "    print(hashlib.md5(mm[:]).hexdigest())\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", script, str(dicom)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert out.stdout.strip() == hashlib.md5(dicom.read_bytes()).hexdigest()


@pytest.mark.parametrize("via", ["id", "selector"])
def test_copying_a_series_fetches_it_as_one_archive(
    demo: DemoServer, tmp_path: Path, via: str
) -> None:
    with mount_demo(demo, tmp_path) as m:
        scans = next((m.path / "STUDY").glob("*/*/scans/T1 MPRAGE")).parent
        series = next((scans / "T1 MPRAGE/DICOM").iterdir())  # the scan's own files
        source = series if via == "selector" else scans / series.name / "DICOM"
        names = sorted(os.listdir(source))
        assert len(names) > 100
        demo.log.reset()
        out = tmp_path / "copy"
        subprocess.run(["cp", "-r", str(source), str(out)], check=True, timeout=300)
        # Two single GETs reveal a series walk; one streamed zip brings the rest.
        assert demo.log.count(kind="zip") == 1
        assert demo.log.count(kind="file") <= 4
        stats = mount_stats(m.path)
        assert stats["prefetches"] == 1
        for name in (names[0], names[len(names) // 2], names[-1]):
            uri_part = f"/scans/{series.name}/"
            row = next(
                r
                for r in requests.get(
                    f"{demo.url}/data/experiments/{_experiment_id(demo, scans)}/scans/"
                    f"{series.name}/files",
                    params={"format": "json"},
                    auth=(DEMO_USER, DEMO_PASSWORD),
                    timeout=30,
                ).json()["ResultSet"]["Result"]
                if r["Name"] == name and uri_part in r["URI"] and r["collection"] == "DICOM"
            )
            assert (out / name).read_bytes() == direct(demo, row["URI"])
        # Everything was admitted to the cache: reading again costs no request.
        deadline = time.monotonic() + 10
        while int(mount_stats(m.path)["cache"]["entries"]) < len(names):  # type: ignore[index]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        quiet_log(demo)
        for name in names:
            (source / name).read_bytes()
        assert demo.log.count(kind="file") == 0 and demo.log.count(kind="zip") == 0


def _experiment_id(demo: DemoServer, scans: Path) -> str:
    subject_label, session_label = scans.parts[-3], scans.parts[-2]
    rows = requests.get(
        f"{demo.url}/data/projects/STUDY/subjects/{subject_label}/experiments",
        params={"format": "json"},
        auth=(DEMO_USER, DEMO_PASSWORD),
        timeout=30,
    ).json()["ResultSet"]["Result"]
    return str(next(r["ID"] for r in rows if r["label"] == session_label))
