from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.mounting import fuse_available


@pytest.fixture
def demo() -> Iterator[object]:
    """A fresh demo XNAT server on loopback (its own site, faults and request log)."""
    from xnatfs.demo import DemoServer, build_demo_site

    server = DemoServer(build_demo_site())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def pytest_collection_finish(session: pytest.Session) -> None:
    # After -k/-m deselection: only the real-mount tests that will actually run.
    session.config._xnatfs_fuse_items = [  # type: ignore[attr-defined]
        i.nodeid for i in session.items if i.get_closest_marker("fuse")
    ]


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    fuse_ids = set(getattr(config, "_xnatfs_fuse_items", []))
    if not fuse_ids:
        return
    passed = {r.nodeid for r in terminalreporter.stats.get("passed", [])}
    ran = len(fuse_ids & passed)
    terminalreporter.write_line(f"real-mount tests passed: {ran} of {len(fuse_ids)}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # A broken install (pyfuse3 missing, no fusermount3) must not pass quietly by skipping
    # every real-mount test on a machine that can mount.
    fuse_ids = set(getattr(session.config, "_xnatfs_fuse_items", []))
    if not fuse_ids or fuse_available() is not None or exitstatus != 0:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    passed = {r.nodeid for r in reporter.stats.get("passed", [])}
    if not fuse_ids & passed and os.environ.get("XNATFS_ALLOW_NO_FUSE") != "1":
        reporter.write_line("ERROR: /dev/fuse is present but no real-mount test passed", red=True)
        session.exitstatus = 1
