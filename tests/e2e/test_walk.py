"""Walks at the speed of the pipe, on real mounts: `find` over a project shows the same tree with
listing ahead on and off, costs no more listing requests with it on (fewer: a session's scans come
in two replies), and a second walk after the kernel forgot every inode costs none."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.mounting import demo_mounted, quiet_log, settled
from xnatfs.demo import DemoServer

pytestmark = pytest.mark.fuse

PROJECT = "STUDY"  # several subjects and sessions


def find(root: Path) -> list[str]:
    """What `find` prints for every entry: path, type, size, inode number and, for files, links
    (a directory's count is 1, "unknown", until its listing is read: semantics.md)."""
    out = subprocess.run(
        ["find", str(root), "-printf", "%P|%y|%s|%i|%n\n"], check=True, capture_output=True
    )
    lines = (line.rsplit("|", 1) for line in out.stdout.decode().splitlines())
    return sorted(f"{head}|{links if '|f|' in head else '-'}" for head, links in lines)


@pytest.mark.parametrize("project", ["STUDY"])
def test_find_with_and_without_listing_ahead(
    demo: DemoServer, tmp_path: Path, project: str
) -> None:
    shown: dict[str, list[str]] = {}
    requests: dict[str, int] = {}
    for walk_ahead in ("0", "4096"):
        options = ("--metadata-ttl", "3600", "--walk-ahead", walk_ahead)
        with demo_mounted(demo, tmp_path / walk_ahead, *options) as m:
            quiet_log(demo)
            shown[walk_ahead] = find(m.path / PROJECT)
            settled(demo)
            requests[walk_ahead] = demo.log.listings
            Path("/proc/sys/vm/drop_caches").write_text("2")  # the kernel forgets every inode
            quiet_log(demo)
            assert find(m.path / PROJECT) == shown[walk_ahead]
            assert settled(demo) == 0, "a warm walk asks nothing"
    assert shown["0"] == shown["4096"]
    assert len(shown["0"]) > 100
    assert requests["4096"] < requests["0"], requests
