"""The disk cache against a hostile neighbour and a cache directory that changes under the
mount, on real mounts.

Another local user is played by `nobody` (the tests run as root, which may hand files to any
user); a file of theirs is one chowned to them. A cache directory is trusted only when it is
ours alone: one made first by someone else, a planted `lock` symlink, a `data/` others can write,
are refused with one line before anything is mounted, and nothing outside the cache is touched.
While mounted, an entry replaced by a symlink is never followed; a removed cache directory is
laid out again; a read-only one serves without caching, with one warning.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.hostile import HostileXnat
from tests.support.mounting import Mount, in_mount_table, stop_mount, tmp_mounted
from xnatfs.cache.layout import iter_entries

pytestmark = pytest.mark.fuse

FILES = {f"f{i}.bin": bytes([65 + i]) * (50_000 + i) for i in range(4)}


@pytest.fixture
def xnat() -> Iterator[HostileXnat]:
    with HostileXnat() as server:
        server.files(server.serve_all(FILES))
        yield server


@pytest.fixture
def nobody() -> int:
    if os.geteuid() != 0:
        pytest.skip("needs root to give files to another user")
    try:
        return pwd.getpwnam("nobody").pw_uid
    except KeyError:
        pytest.skip("no user nobody here")


def mount(xnat: HostileXnat, tmp_path: Path, cache: Path, name: str = "mnt") -> object:
    return tmp_mounted(
        xnat.url, tmp_path, user=xnat.user, password=xnat.password, cache_dir=cache, name=name
    )


def refused_mount(xnat: HostileXnat, tmp_path: Path, cache: Path) -> str:
    """Mount with cache directory `cache`, which must be refused; returns the message. A mount
    that comes up instead is unmounted (and the test fails)."""
    mnt = tmp_path / "refused"
    mnt.mkdir(exist_ok=True)
    env = dict(os.environ, XNATFS_USER=xnat.user, XNATFS_PASSWORD=xnat.password)
    proc = subprocess.Popen(
        [sys.executable, "-m", "xnatfs", "mount", xnat.url, str(mnt), "--foreground"]
        + ["--cache-dir", str(cache)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and not in_mount_table(mnt) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not in_mount_table(mnt), "mounted on a cache directory that is not ours"
        _, err = proc.communicate(timeout=60)
    finally:
        stop_mount(mnt, proc)
    assert proc.returncode == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xnatfs: cache directory"), err
    return lines[0]


def drop_pages(path: Path) -> None:
    """Make the next read of `path` reach the mount (not the kernel's page cache)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def entries(cache: Path) -> list[Path]:
    return [Path(e.path) for e in iter_entries(cache)]


def wait_for_entries(cache: Path, n: int) -> list[Path]:
    deadline = time.monotonic() + 20
    while len(found := entries(cache)) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def test_a_cache_directory_made_first_by_another_user_is_refused(
    xnat: HostileXnat, tmp_path: Path, nobody: int
) -> None:
    shared = tmp_path / "xnatfs-cache"
    shared.mkdir()
    os.chown(shared, nobody, nobody)
    os.chmod(shared, 0o777)  # as it would be, made in /tmp by them for "everyone"
    assert "belongs to user nobody" in refused_mount(xnat, tmp_path, shared)
    assert list(shared.iterdir()) == []  # nothing was made in it
    # Theirs even when nobody else may write in it: they could still change it.
    os.chmod(shared, 0o755)
    assert "belongs to user nobody" in refused_mount(xnat, tmp_path, shared)
    # Below a directory of theirs (they could move ours away and put theirs in its place).
    assert "belongs to user nobody" in refused_mount(xnat, tmp_path, shared / "sub")


def test_a_lock_planted_as_a_symlink_is_never_followed(xnat: HostileXnat, tmp_path: Path) -> None:
    victim = tmp_path / "precious.txt"
    victim.write_text("years of work\n")
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    (cache / "lock").symlink_to(victim)
    assert "lock is a symbolic link" in refused_mount(xnat, tmp_path, cache)
    assert victim.read_text() == "years of work\n"
    # A dangling one is not created through either.
    (cache / "lock").unlink()
    (cache / "lock").symlink_to(tmp_path / "created-elsewhere")
    refused_mount(xnat, tmp_path, cache)
    assert not (tmp_path / "created-elsewhere").exists()


def test_a_data_directory_others_can_write_is_refused(
    xnat: HostileXnat, tmp_path: Path, nobody: int
) -> None:
    cache = tmp_path / "cache"
    with mount(xnat, tmp_path, cache) as m:
        assert isinstance(m, Mount)
        assert (m.path / xnat.RESOURCE / "f0.bin").read_bytes() == FILES["f0.bin"]
        (entry,) = wait_for_entries(cache, 1)
    # Another user gets hold of data/ and swaps the cached file for one of the same size.
    for directory in (cache / "data", entry.parent):
        os.chown(directory, nobody, nobody)
        os.chmod(directory, 0o777)
    entry.unlink()
    entry.write_bytes(b"X" * len(FILES["f0.bin"]))
    message = refused_mount(xnat, tmp_path, cache)
    assert "data belongs to user nobody" in message


def test_an_entry_replaced_by_a_symlink_is_not_served(xnat: HostileXnat, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    elsewhere = tmp_path / "elsewhere.bin"
    elsewhere.write_bytes(b"E" * len(FILES["f1.bin"]))
    with mount(xnat, tmp_path, cache) as m:
        assert isinstance(m, Mount)
        path = m.path / xnat.RESOURCE / "f1.bin"
        assert path.read_bytes() == FILES["f1.bin"]
        (entry,) = wait_for_entries(cache, 1)
        entry.unlink()
        entry.symlink_to(elsewhere)
        drop_pages(path)
        assert path.read_bytes() == FILES["f1.bin"]
        assert elsewhere.read_bytes() == b"E" * len(FILES["f1.bin"])  # untouched
        (again,) = wait_for_entries(cache, 1)
        assert not again.is_symlink() and again.read_bytes() == FILES["f1.bin"]
        assert "unusable, dropped" in m.log()


def test_a_cache_directory_removed_while_mounted_is_laid_out_again(
    xnat: HostileXnat, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    with mount(xnat, tmp_path, cache) as m:
        assert isinstance(m, Mount)
        resource = m.path / xnat.RESOURCE
        assert (resource / "f0.bin").read_bytes() == FILES["f0.bin"]
        wait_for_entries(cache, 1)
        subprocess.run(["rm", "-rf", str(cache)], check=True)
        # A file never read before, and one whose cached copy went with the directory.
        assert (resource / "f1.bin").read_bytes() == FILES["f1.bin"]
        drop_pages(resource / "f0.bin")
        assert (resource / "f0.bin").read_bytes() == FILES["f0.bin"]
        assert len(wait_for_entries(cache, 2)) == 2  # cached again
        assert (cache / "lock").read_text().strip() == str(m.proc.pid)  # and ours again
        assert m.log().count("laid out again") == 1


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """`path` bind-mounted read-only onto itself for the duration of the block."""
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True)
        yield
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_a_read_only_cache_directory_serves_without_caching_and_warns_once(
    xnat: HostileXnat, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to bind-mount the cache read-only")
    cache = tmp_path / "cache"
    with mount(xnat, tmp_path, cache) as m:
        assert isinstance(m, Mount)
        resource = m.path / xnat.RESOURCE
        assert (resource / "f0.bin").read_bytes() == FILES["f0.bin"]
        wait_for_entries(cache, 1)
        with read_only(cache):
            for name in ("f1.bin", "f2.bin"):
                assert (resource / name).read_bytes() == FILES[name]
            drop_pages(resource / "f0.bin")
            assert (resource / "f0.bin").read_bytes() == FILES["f0.bin"]  # still a hit
            assert len(entries(cache)) == 1
            assert m.log().count("cannot take downloads") == 1
            assert "Read-only file system" in m.log()
        # Writable again: the next download is cached.
        assert (resource / "f3.bin").read_bytes() == FILES["f3.bin"]
        assert len(wait_for_entries(cache, 2)) == 2
        assert m.log().count("caching resumes") == 1
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob("xnatfs-uncached-*/*"))
