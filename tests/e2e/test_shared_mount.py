"""Who can read a mount, on real mounts read by another local user (`nobody`, with or without a
group): without `--allow-other` nobody else; with it, whoever the modes let in, so
`--gid G --umask 0027` limits a shared mount to the members of G. The kernel checks the modes
(`default_permissions`), the mount itself is never asked.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.hostile import HostileXnat
from tests.support.mounting import Mount, MountSpec, mounted, require_fuse

pytestmark = pytest.mark.fuse

DATA = b"patient data" * 1000
GROUP = 4242  # a group `nobody` is not in unless a test says so


@pytest.fixture
def nobody() -> int:
    if os.geteuid() != 0:
        pytest.skip("needs root to read as another user and to use allow_other")
    try:
        return pwd.getpwnam("nobody").pw_uid
    except KeyError:
        pytest.skip("no user nobody here")


@pytest.fixture
def xnat() -> Iterator[HostileXnat]:
    with HostileXnat() as server:
        server.files(server.serve_all({"scan.dcm": DATA}))
        yield server


@contextlib.contextmanager
def shared_mount(xnat: HostileXnat, tmp_path: Path, *options: str) -> Iterator[Mount]:
    """A mount whose mount point other users can reach (tmp_path is private to root)."""
    require_fuse()
    workdir = Path(tempfile.mkdtemp(prefix="xnatfs-shared-"))
    try:
        workdir.chmod(0o755)
        spec = MountSpec(xnat.url, xnat.user, xnat.password, workdir)
        with mounted(spec, tmp_path / "cache", options=options) as m:
            yield m
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def as_user(uid: int, groups: list[int], *argv: str) -> subprocess.CompletedProcess[bytes]:
    """Run `argv` as user `uid` with exactly `groups` (the first is the primary group)."""
    return subprocess.run(
        list(argv),
        user=uid,
        group=groups[0],
        extra_groups=groups[1:] or [],
        capture_output=True,
        timeout=60,
    )


def test_without_allow_other_nobody_else_gets_in(
    xnat: HostileXnat, tmp_path: Path, nobody: int
) -> None:
    with shared_mount(xnat, tmp_path) as m:
        assert (m.path / xnat.RESOURCE / "scan.dcm").read_bytes() == DATA
        run = as_user(nobody, [nobody], "ls", str(m.path))
        assert run.returncode != 0 and b"Permission denied" in run.stderr


def test_allow_other_with_the_default_modes_lets_everybody_read(
    xnat: HostileXnat, tmp_path: Path, nobody: int
) -> None:
    with shared_mount(xnat, tmp_path, "--allow-other") as m:
        run = as_user(nobody, [nobody], "cat", str(m.path / xnat.RESOURCE / "scan.dcm"))
        assert run.returncode == 0 and run.stdout == DATA


@pytest.mark.parametrize(
    "options",
    [("--umask", "0027"), ("--file-mode", "0440", "--dir-mode", "0550")],
)
def test_a_shared_mount_can_be_limited_to_a_group(
    xnat: HostileXnat, tmp_path: Path, nobody: int, options: tuple[str, ...]
) -> None:
    with shared_mount(xnat, tmp_path, "--allow-other", "--gid", str(GROUP), *options) as m:
        path = m.path / xnat.RESOURCE / "scan.dcm"
        st, top = path.stat(), m.path.stat()
        assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o440, GROUP)
        assert (stat.S_IMODE(top.st_mode), top.st_gid) == (0o550, GROUP)
        member = as_user(nobody, [nobody, GROUP], "cat", str(path))
        assert member.returncode == 0 and member.stdout == DATA
        for argv in (("cat", str(path)), ("ls", str(m.path))):
            outsider = as_user(nobody, [nobody], *argv)
            assert outsider.returncode != 0 and b"Permission denied" in outsider.stderr, argv
