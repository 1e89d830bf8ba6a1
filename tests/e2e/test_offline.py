"""Listings that survive remounts, a dead server that still browses, `--offline`, and listings
refreshed in the background (real mounts)."""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path

import pytest

from tests.support.mounting import Mount, demo_mounted, settled
from xnatfs.demo import DemoServer

pytestmark = pytest.mark.fuse

SESSION = "TEST/1/MR1"


def mount(demo: DemoServer, tmp_path: Path, *options: str, name: str = "mnt") -> object:
    quick = ("--retries", "1", "--connect-timeout", "2", "--read-timeout", "2")
    return demo_mounted(demo, tmp_path, *quick, *options, name=name)


def tree(root: Path) -> list[str]:
    return sorted(os.fspath(p.relative_to(root)) for p in root.rglob("*"))


def browse(m: Mount) -> tuple[list[str], bytes]:
    """Walk the session (stat of everything) and read one file."""
    session = m.path / SESSION
    names = tree(session)
    for name in names:
        (session / name).stat()
    return names, (session / "scans/1/DICOM/1.dcm").read_bytes()


def test_a_remount_browses_and_reads_with_the_server_down(demo: DemoServer, tmp_path: Path) -> None:
    with mount(demo, tmp_path, "--metadata-ttl", "1") as m:
        assert isinstance(m, Mount)
        names, data = browse(m)
    time.sleep(1.5)  # every listing is past its TTL
    demo.faults.down = True  # every connection closed without an answer
    with mount(demo, tmp_path, "--metadata-ttl", "1", name="again") as m:
        assert isinstance(m, Mount)
        assert "TEST" in os.listdir(m.path)
        again, same = browse(m)
        assert again == names and same == data
        time.sleep(1.5)  # long after the TTL, still
        assert browse(m) == (names, data)
        # What was never read cannot be had: a clear error, not a hang.
        with pytest.raises(OSError) as failed:
            (m.path / SESSION / "scans/2/DICOM/2.dcm").read_bytes()
        assert failed.value.errno == errno.EIO
        assert "mounting what is stored" in m.log()


def test_offline_makes_no_request_and_says_what_is_not_on_disk(
    demo: DemoServer, tmp_path: Path
) -> None:
    with mount(demo, tmp_path, "--metadata-ttl", "30") as m:
        assert isinstance(m, Mount)
        names, data = browse(m)
        # A directory that was never listed.
        assert "DICOM" in os.listdir(m.path / SESSION / "scans/2")
    settled(demo)
    demo.log.reset()
    with mount(demo, tmp_path, "--offline", name="offline") as m:
        assert isinstance(m, Mount)
        assert browse(m) == (names, data)
        with pytest.raises(OSError) as uncached:
            (m.path / SESSION / "scans/2/DICOM/2.dcm").read_bytes()
        assert uncached.value.errno == errno.ENODATA
        with pytest.raises(OSError) as unlisted:
            os.listdir(m.path / "STUDY")
        assert unlisted.value.errno == errno.ENODATA
        # Routine offline, like ENOENT: not a warning in the log (nor in `xnatfs status`).
        assert "WARNING" not in m.log()
        stats = json.loads(os.getxattr(m.path, "user.xnatfs.stats"))
        assert stats["offline"] is True and stats["listing_requests"] == 0
    assert settled(demo) == 0  # not one request, not even at start


def test_offline_without_anything_stored_refuses_to_mount(demo: DemoServer, tmp_path: Path) -> None:
    with (
        pytest.raises(AssertionError, match="stored for offline use"),
        mount(demo, tmp_path, "--offline"),  # type: ignore[attr-defined]
    ):
        pass


def test_a_stale_listing_is_served_then_replaced_in_the_background(
    demo: DemoServer, tmp_path: Path
) -> None:
    with mount(demo, tmp_path, "--metadata-ttl", "1") as m:
        assert isinstance(m, Mount)
        before = sorted(os.listdir(m.path / "TEST"))
        demo.site.add_subject("TEST", "newcomer")
        time.sleep(1.5)
        settled(demo)
        demo.log.reset()
        # Answered at once from the last listing while it is asked for again...
        assert sorted(os.listdir(m.path / "TEST")) == before
        # ... and the new subject shows once the refresh is in.
        deadline = time.monotonic() + 10
        while "newcomer" not in os.listdir(m.path / "TEST"):
            assert time.monotonic() < deadline, "the refresh never arrived"
            time.sleep(0.1)
        settled(demo)
        assert demo.log.count(kind="listing", path_contains="/projects/TEST/subjects") == 1


def test_a_failing_server_keeps_the_last_listings_in_service(
    demo: DemoServer, tmp_path: Path
) -> None:
    with mount(demo, tmp_path, "--metadata-ttl", "1") as m:
        assert isinstance(m, Mount)
        names, data = browse(m)
        demo.faults.fail_next(10_000, 503)
        time.sleep(1.5)
        assert browse(m) == (names, data)
        deadline = time.monotonic() + 20
        while "serving the last listing" not in m.log():
            assert time.monotonic() < deadline, m.log()[-2000:]
            time.sleep(0.2)


def test_the_first_byte_on_a_remount_costs_no_listing(demo: DemoServer, tmp_path: Path) -> None:
    with mount(demo, tmp_path, "--metadata-ttl", "3600") as m:
        assert isinstance(m, Mount)
        data = (m.path / SESSION / "scans/1/DICOM/1.dcm").read_bytes()
    with mount(demo, tmp_path, "--metadata-ttl", "3600", name="again") as m:
        assert isinstance(m, Mount)
        settled(demo)
        demo.log.reset()
        assert (m.path / SESSION / "scans/1/DICOM/1.dcm").read_bytes() == data
        assert settled(demo) == 0
