"""The mount table: mountinfo, dead mounts, fusermount, unmount, and mount-point checks."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from xnatfs.app import mounts
from xnatfs.app.mounts import (
    MountEntry,
    check_mountpoint,
    clear_stale_mount,
    fusermount_command,
    is_dead,
    parse_mountinfo,
    unmount,
)
from xnatfs.errors import ConfigError

MOUNTINFO = (
    "22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    "98 22 0:50 / /mnt/x\\040y rw,nosuid,nodev,relatime shared:60 - fuse.xnatfs "
    "xnatfs:xnat.example.org ro,user_id=0,group_id=0\n"
    "99 22 0:51 / /mnt/other rw - fuse.sshfs host:/ rw\n"
)


def test_parse_mountinfo_unescapes() -> None:
    entries = parse_mountinfo(MOUNTINFO)
    assert entries[1] == MountEntry("/mnt/x y", "fuse.xnatfs", "xnatfs:xnat.example.org")
    assert [e.fstype for e in entries] == ["ext4", "fuse.xnatfs", "fuse.sshfs"]


def test_clear_stale_mount_leaves_unmounted_and_live_paths_alone(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    live = tmp_path / "live"
    live.mkdir()
    info.write_text(f"1 0 0:1 / {live} rw - fuse.xnatfs xnatfs:x ro\n")
    # Listed as an xnatfs mount, but it answers stat: alive, so it is not touched.
    assert clear_stale_mount(live, mountinfo=info) is False
    assert clear_stale_mount(tmp_path / "absent", mountinfo=info) is False
    assert clear_stale_mount(live, mountinfo=tmp_path / "no-such-file") is False


@pytest.mark.fuse
@pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="needs /dev/fuse")
def test_clear_stale_mount_detaches_a_dead_mount(tmp_path: Path) -> None:
    """A FUSE process killed with SIGKILL leaves ENOTCONN behind; the helper clears it."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = (
        "import os, sys, pyfuse3, trio\n"
        "class Ops(pyfuse3.Operations):\n"
        "    pass\n"
        "opts = set(pyfuse3.default_options) | {'fsname=xnatfs:test', 'subtype=xnatfs', 'ro'}\n"
        "pyfuse3.init(Ops(), sys.argv[1], opts)\n"
        "print('up', flush=True)\n"
        "trio.run(pyfuse3.main)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(mnt)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "up"
        proc.kill()
        proc.wait(timeout=30)
        with pytest.raises(OSError) as dead:
            os.stat(mnt)
        assert dead.value.errno in (errno.ENOTCONN, errno.ECONNABORTED)
        assert clear_stale_mount(mnt) is True
        assert os.stat(mnt).st_ino != 0
        assert not any(e.mountpoint == str(mnt) for e in parse_mountinfo(_mountinfo()))
        assert clear_stale_mount(mnt) is False
    finally:
        proc.kill()
        proc.wait(timeout=30)
        subprocess.run(["fusermount3", "-u", "-z", str(mnt)], capture_output=True, check=False)


def _mountinfo() -> str:
    return Path("/proc/self/mountinfo").read_text()


def test_unusable_mount_points_are_refused_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        check_mountpoint(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        check_mountpoint(tmp_path / "file")
    with pytest.raises(ConfigError, match="already a mount point"):
        check_mountpoint("/proc")
    # A directory with entries: the mount would hide them.
    with pytest.raises(ConfigError, match="not empty.*--allow-non-empty"):
        check_mountpoint(tmp_path)
    check_mountpoint(tmp_path, allow_non_empty=True)
    (tmp_path / "empty").mkdir()
    check_mountpoint(tmp_path / "empty")  # an ordinary empty directory is fine


def test_a_dead_mount_of_another_type_is_named_not_cleared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_stat = os.stat

    def dead(path: str | os.PathLike[str], *args: Any, **kwargs: Any) -> os.stat_result:
        if os.fspath(path) == str(tmp_path):
            raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(mounts.os, "stat", dead)
    with pytest.raises(ConfigError) as err:
        check_mountpoint(tmp_path)
    assert str(err.value) == (
        f"mount point {tmp_path} is a dead mount; clear it with: xnatfs umount --lazy {tmp_path}"
    )


@pytest.mark.parametrize("code", [errno.ENOTCONN, errno.ECONNABORTED])
def test_is_dead_asks_statvfs_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    def gone(path: object) -> os.statvfs_result:
        raise OSError(code, os.strerror(code))

    assert is_dead(tmp_path) is False
    monkeypatch.setattr(mounts.os, "statvfs", gone)
    assert is_dead(tmp_path) is True


def fake_tool(directory: Path, name: str, script: str) -> Path:
    directory.mkdir(exist_ok=True)
    tool = directory / name
    tool.write_text("#!/bin/sh\n" + script)
    tool.chmod(0o755)
    return tool


def test_fusermount_is_found_on_path_first_then_in_usr_bin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = fake_tool(tmp_path / "bin", "fusermount3", "exit 0\n")
    monkeypatch.setenv("PATH", str(mine.parent))
    assert fusermount_command() == str(mine)
    # A unit's PATH may lack /usr/bin; the system's fusermount3 is still found there.
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    found = fusermount_command()
    if found is not None:
        assert Path(found).parent in (Path("/usr/bin"), Path("/bin"))


def test_unmount_passes_fusermount_its_complaint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "args"
    fake_tool(
        tmp_path / "bin",
        "fusermount3",
        f'echo "$@" > {log}\n'
        'echo "fusermount3: failed to unmount $3: Device or resource busy" >&2\n'
        "exit 1\n",
    )
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(OSError) as err:
        unmount(tmp_path / "m", lazy=True)
    assert err.value.strerror == (
        f"fusermount3: failed to unmount {tmp_path / 'm'}: Device or resource busy"
    )
    assert log.read_text().split() == ["-u", "-z", str(tmp_path / "m")]


def test_unmount_without_fusermount(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mounts, "fusermount_command", lambda: None)
    with pytest.raises(FileNotFoundError, match="install the fuse3 package"):
        unmount(tmp_path)
