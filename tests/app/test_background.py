"""Background mounts: the ready pipe between the child and the parent that waits for it."""

from __future__ import annotations

import os
import signal
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.mounting import require_fuse, unmount
from xnatfs.app import background
from xnatfs.app.background import READY_FD_ENV, Readiness
from xnatfs.app.mounts import read_mounts
from xnatfs.config import build_config
from xnatfs.errors import ConfigError, XnatfsError


def read_all(fd: int) -> bytes:
    with os.fdopen(fd, "rb") as pipe:
        return pipe.read()


def test_the_child_says_ok_once_and_forgets_the_pipe() -> None:
    read_fd, write_fd = os.pipe()
    environ = {READY_FD_ENV: str(write_fd), "OTHER": "x"}
    assert background.is_child(environ)
    readiness = Readiness.from_environ(environ)
    assert environ == {"OTHER": "x"}  # processes the mount starts are not children
    readiness.ready()
    readiness.failed("too late")  # the parent has its answer; the fd is closed already
    assert read_all(read_fd) == b"ok\n"


def test_a_failure_is_one_line() -> None:
    read_fd, write_fd = os.pipe()
    Readiness(write_fd).failed("cannot mount\non /m")
    assert read_all(read_fd) == b"error: cannot mount on /m\n"


def test_outside_a_background_child_nothing_is_sent() -> None:
    environ: dict[str, str] = {}
    assert not background.is_child(environ)
    readiness = Readiness.from_environ(environ)
    readiness.ready()
    readiness.failed("x")


def test_a_parent_that_went_away_is_ignored() -> None:
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    Readiness(write_fd).ready()  # EPIPE is swallowed (SIGPIPE is ignored by Python)


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("XNATFS_", "NOTIFY_")) or name in ("NETRC", "CREDENTIALS_DIRECTORY"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.mark.usefixtures("clean_env")
def test_the_parent_reports_the_childs_message(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    argv = ["mount", "https://127.0.0.1:9", str(missing), "--cache-dir", str(tmp_path / "c")]
    cfg = build_config("https://127.0.0.1:9", missing, {"cache_dir": str(tmp_path / "c")})
    with pytest.raises(XnatfsError) as err:
        background.start(cfg, argv)
    assert str(err.value) == f"mount point {missing} does not exist"
    log = background.log_path(cfg)
    assert log == tmp_path / "c.log"
    # The message is all the log would say: a failed first start leaves no log file behind.
    assert not log.exists()
    # A log that was there before stays (it tells of earlier mounts), private.
    log.write_text("earlier mount\n")
    log.chmod(0o644)
    with pytest.raises(XnatfsError):
        background.start(cfg, argv)
    assert log.read_text().startswith("earlier mount\n")
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


@pytest.mark.usefixtures("clean_env")
def test_the_log_file_and_the_directories_made_for_it_go_after_a_failed_start(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "missing"
    log = tmp_path / "logs" / "deep" / "x.log"
    values = {"cache_dir": str(tmp_path / "c"), "log_file": str(log)}
    cfg = build_config("https://127.0.0.1:9", missing, values)
    argv = ["mount", "https://127.0.0.1:9", str(missing), "--log-file", str(log)]
    with pytest.raises(XnatfsError, match="does not exist"):
        background.start(cfg, argv)
    assert not (tmp_path / "logs").exists()


@pytest.mark.usefixtures("clean_env")
def test_a_child_that_ends_without_a_word_points_to_its_log(tmp_path: Path) -> None:
    cfg = build_config("https://127.0.0.1:9", tmp_path, {"cache_dir": str(tmp_path / "c")})
    with pytest.raises(XnatfsError) as err:
        background.start(cfg, ["--version"])
    log = tmp_path / "c.log"
    assert str(err.value) == f"the mount process exited (0); see {log}"
    assert log.read_text().startswith("xnatfs ")


def in_mount_table(path: Path) -> bool:
    return any(e.mountpoint == str(path) for e in read_mounts())


def wait_for_exit(pid: int) -> None:
    """Wait for the background child `pid` (killing it after 30 s)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return  # reaped already, by subprocess' own bookkeeping
        if done:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


@pytest.mark.fuse
@pytest.mark.usefixtures("clean_env")
def test_start_returns_once_the_mount_answers(
    demo: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xnatfs.demo import DEMO_PASSWORD, DEMO_USER

    require_fuse()
    monkeypatch.setenv("XNATFS_USER", DEMO_USER)
    monkeypatch.setenv("XNATFS_PASSWORD", DEMO_PASSWORD)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    argv = ["mount", demo.url, str(mnt), "--cache-dir", str(tmp_path / "c")]
    cfg = build_config(demo.url, mnt, {"cache_dir": str(tmp_path / "c")})
    try:
        started = background.start(cfg, argv)
        # No waiting here: the parent returned only once the mount answered.
        assert in_mount_table(mnt)
        assert "TEST" in os.listdir(mnt)
        unmount(mnt)
        wait_for_exit(started.pid)
        assert "mounted" in started.log_path.read_text()
    finally:
        unmount(mnt)


def test_the_log_is_a_file_of_ours_alone(tmp_path: Path) -> None:
    cache = tmp_path / "new" / "cache"
    log = tmp_path / "new" / "cache.log"
    os.close(background.open_log(log, cache))
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert stat.S_IMODE(log.parent.stat().st_mode) == 0o700
    log.unlink()
    log.symlink_to(tmp_path / "elsewhere")  # planted where the log goes
    with pytest.raises(ConfigError, match="cannot write the log file"):
        background.open_log(log, cache)
    assert not (tmp_path / "elsewhere").exists()
    log.unlink()
    log.write_text("ours\n")
    log.chmod(0o666)
    os.close(background.open_log(log, cache))  # ours: made private
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    if os.geteuid() == 0:
        os.chown(log, 65534, 65534)  # another user's
        with pytest.raises(ConfigError, match="belongs to"):
            background.open_log(log, cache)
        assert log.read_text() == "ours\n"
