"""`xnatfs status` against live mounts of the demo XNAT, run as users run it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.mounting import tmp_mounted
from xnatfs.demo import DEMO_PASSWORD, DEMO_USER, DemoServer

pytestmark = pytest.mark.fuse


def status(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xnatfs", "status", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_status_shows_server_downloads_cache_listings_and_errors(
    demo: DemoServer, tmp_path: Path
) -> None:
    with tmp_mounted(demo.url, tmp_path, user=DEMO_USER, password=DEMO_PASSWORD) as m:
        assert (m.path / "TEST/1/MR1/scans/1/DICOM/1.dcm").read_bytes()
        with pytest.raises(PermissionError):
            os.listdir(m.path / "LOCKED")
        out = status(os.fspath(m.path))
        assert out.returncode == 0, out.stderr
        text = out.stdout
        assert text.startswith(f"{m.path}  {demo.url}  (pid {m.proc.pid}, xnatfs ")
        assert "server:     answers (last reply" in text
        assert "uptime:" in text
        assert "downloads:  0 in flight, 1 so far" in text
        assert "prefetches: 0 running, 0 so far" in text
        assert "of 10.0 GiB (0%) in 1 file; 0 hits, 1 misses" in text
        assert "listings:" in text and "requests" in text
        # The refused directory is a warning, so it is among the last errors.
        assert "last errors:" in text and "WARNING opendir:" in text

        doc = json.loads(status(os.fspath(m.path), "--json").stdout)
        [mount] = doc
        assert mount["mountpoint"] == os.fspath(m.path)
        stats = mount["stats"]
        assert stats["server"]["url"] == demo.url and stats["server"]["answers"] is True
        assert stats["cache"]["entries"] == 1 and stats["cache"]["misses"] == 1
        assert stats["pid"] == m.proc.pid and stats["uptime"] > 0
        assert [e["level"] for e in stats["errors"]] == ["WARNING"]

        # Without a mount point: every xnatfs mount, this one among them.
        assert f"{m.path}  {demo.url}" in status().stdout


def test_status_says_when_the_server_stopped_answering(demo: DemoServer, tmp_path: Path) -> None:
    with tmp_mounted(
        demo.url,
        tmp_path,
        user=DEMO_USER,
        password=DEMO_PASSWORD,
        options=("--retries", "0", "--connect-timeout", "2", "--metadata-ttl", "0"),
    ) as m:
        os.listdir(m.path / "TEST")
        demo.faults.down = True
        with pytest.raises(OSError):
            os.listdir(m.path / "STUDY")
        text = status(os.fspath(m.path)).stdout
        assert "server:     NOT ANSWERING: " in text, text
        demo.faults.down = False
        os.listdir(m.path / "STUDY")
        assert "server:     answers" in status(os.fspath(m.path)).stdout


def test_status_of_a_directory_that_is_no_xnatfs_mount_is_an_error(tmp_path: Path) -> None:
    out = status(os.fspath(tmp_path))
    assert out.returncode == 2
    assert out.stderr.strip() == f"xnatfs: {tmp_path} is not an xnatfs mount"


def test_watch_redraws_until_ctrl_c(demo: DemoServer, tmp_path: Path) -> None:
    with tmp_mounted(demo.url, tmp_path, user=DEMO_USER, password=DEMO_PASSWORD) as m:
        proc = subprocess.Popen(
            [sys.executable, "-m", "xnatfs", "status", os.fspath(m.path), "--watch", "0.2"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            deadline = time.monotonic() + 30
            seen = 0
            while seen < 2 and time.monotonic() < deadline:
                if proc.stdout.readline().startswith(f"{m.path}  "):
                    seen += 1
            assert seen == 2
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=30) == 130
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
