"""The pyfuse3 adapter driven directly: its async handlers are called as the kernel would call
them, over the real filesystem core and an in-memory remote (no mount, no HTTP).

`pyfuse3.readdir_reply` is replaced by a collector, so a test decides when the kernel's buffer
is full.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pyfuse3
import pytest
import trio

from tests.support.core import make_fs
from tests.support.fake_remote import BIG, FILES, FakeRemote, md5
from xnatfs.cache.disk import DiskCache
from xnatfs.errors import AccessDenied, NotFound, ReadOnly, Unavailable
from xnatfs.fs.inodes import ROOT_INODE
from xnatfs.fuse.ops import STATS_XATTR, XnatOperations

TTL = 42.0  # not pyfuse3's default of 300 s, so a forgotten timeout shows
UID, GID = 1234, 5678
CTX = pyfuse3.RequestContext()
RESOURCE = ("TEST", "1", "MR1", "scans", "1", "DICOM")
OPS_LOGGER = "xnatfs.fuse.ops"


@pytest.fixture
def remote() -> FakeRemote:
    return FakeRemote()


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[DiskCache]:
    c = DiskCache(tmp_path / "cache", 64 * 1024 * 1024)
    yield c
    c.close()


@pytest.fixture
async def ops(remote: FakeRemote, cache: DiskCache, nursery: trio.Nursery) -> XnatOperations:
    # pytest-trio's `nursery` fixture: downloads started by reads run in it and are cancelled
    # when the test ends.
    return XnatOperations(make_fs(remote, cache, nursery, ttl=TTL), ttl=TTL, uid=UID, gid=GID)


async def lookup(ops: XnatOperations, *names: str) -> pyfuse3.EntryAttributes:
    """Look a path up name by name from the root, as the kernel does; the last entry."""
    ino = ROOT_INODE
    attrs = await ops.getattr(ino, CTX)
    for name in names:
        attrs = await ops.lookup(ino, os.fsencode(name), CTX)
        ino = attrs.st_ino
    return attrs


class ReaddirCollector:
    """Stands in for `pyfuse3.readdir_reply`: takes `room` entries, then reports a full buffer
    (returns False) for the next one, as the kernel's buffer would."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.offered: list[tuple[str, pyfuse3.EntryAttributes, int]] = []

    def __call__(
        self, token: object, name: bytes, attrs: pyfuse3.EntryAttributes, next_id: int
    ) -> bool:
        self.offered.append((os.fsdecode(name), attrs, next_id))
        return len(self.offered) <= self.room

    @property
    def accepted(self) -> list[tuple[str, pyfuse3.EntryAttributes, int]]:
        return self.offered[: self.room]


async def readdir(
    ops: XnatOperations, monkeypatch: pytest.MonkeyPatch, fh: int, start: int, room: int = 1000
) -> ReaddirCollector:
    collector = ReaddirCollector(room)
    monkeypatch.setattr(pyfuse3, "readdir_reply", collector)
    await ops.readdir(fh, start, object())  # type: ignore[arg-type]
    return collector


def fuse_errno(info: pytest.ExceptionInfo[pyfuse3.FUSEError]) -> int:
    return int(info.value.errno)


# --- lookups and attributes ---------------------------------------------------------------------


async def test_lookup_answers_attributes_with_the_metadata_ttl(ops: XnatOperations) -> None:
    project = await lookup(ops, "TEST")
    assert project.st_ino > ROOT_INODE
    assert stat.S_ISDIR(project.st_mode) and stat.S_IMODE(project.st_mode) == 0o555
    assert (project.st_uid, project.st_gid) == (UID, GID)
    assert project.entry_timeout == TTL and project.attr_timeout == TTL
    # Every lookup the kernel sends is one reference it will forget.
    again = await ops.lookup(ROOT_INODE, b"TEST", CTX)
    assert again.st_ino == project.st_ino
    assert ops.fs.inodes.count(project.st_ino) == 2

    small = await lookup(ops, *RESOURCE, "small.dcm")
    assert stat.S_ISREG(small.st_mode) and stat.S_IMODE(small.st_mode) == 0o444
    # Three listed paths lead to a file of scan 1 (type T1): scans/1/, scans/T1/1/, scans/ALL/1/.
    assert (small.st_size, small.st_blocks, small.st_nlink) == (5, 1, 3)
    assert small.attr_timeout == TTL


@pytest.mark.parametrize(
    ("modes", "shown"),
    [
        ({}, (0o444, 0o555)),
        ({"umask": 0o027}, (0o440, 0o550)),
        ({"file_mode": 0o640, "dir_mode": 0o750}, (0o440, 0o550)),  # never a write bit
        ({"file_mode": 0o555, "dir_mode": 0o711, "umask": 0o007}, (0o550, 0o510)),
    ],
)
async def test_modes_are_what_was_asked_less_the_umask_and_any_write_bit(
    remote: FakeRemote,
    cache: DiskCache,
    nursery: trio.Nursery,
    modes: dict[str, int],
    shown: tuple[int, int],
) -> None:
    fs = make_fs(remote, cache, nursery, ttl=TTL)
    ops = XnatOperations(fs, ttl=TTL, uid=UID, gid=GID, **modes)
    small = await lookup(ops, *RESOURCE, "small.dcm")
    project = await lookup(ops, "TEST")
    assert (stat.S_IMODE(small.st_mode), stat.S_IMODE(project.st_mode)) == shown
    assert stat.S_ISREG(small.st_mode) and stat.S_ISDIR(project.st_mode)
    assert stat.S_IMODE((await ops.getattr(ROOT_INODE, CTX)).st_mode) == shown[1]


async def test_negative_lookup_is_inode_zero_kept_for_the_ttl(
    ops: XnatOperations, remote: FakeRemote
) -> None:
    await lookup(ops, "TEST")
    known, calls = len(ops.fs.inodes), len(remote.list_calls)
    for probe in (b".hidden", b"desktop.ini", b"\xff\xfe"):
        attrs = await ops.lookup(ROOT_INODE, probe, CTX)
        assert attrs.st_ino == 0, probe
        assert attrs.entry_timeout == TTL, probe
    # A miss takes no inode and, with the parent listed, costs no request.
    assert len(ops.fs.inodes) == known
    assert len(remote.list_calls) == calls


async def test_a_file_of_unknown_size_is_sized_before_the_kernel_sees_it(
    ops: XnatOperations, remote: FakeRemote
) -> None:
    attrs = await lookup(ops, *RESOURCE, "nosize.dcm")
    # Tools copy st_size bytes: the size is learned with one request, never reported as 0.
    assert attrs.st_size == 3000 and attrs.attr_timeout == TTL
    assert remote.size_calls == [f"{FILES}/nosize.dcm"]
    fi = await ops.open(attrs.st_ino, os.O_RDONLY, CTX)
    assert not fi.direct_io
    assert await ops.read(fi.fh, 0, 10_000) == b"abc" * 1000
    await ops.release(fi.fh)


async def test_names_are_bytes_on_the_kernel_side(
    ops: XnatOperations, remote: FakeRemote, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote.listings["/data/projects"].append({"ID": "Ünïcödé"})
    fh = await ops.opendir(ROOT_INODE, CTX)
    names = [name for name, _, _ in (await readdir(ops, monkeypatch, fh, 0)).offered]
    assert "Ünïcödé" in names
    attrs = await ops.lookup(ROOT_INODE, "Ünïcödé".encode(), CTX)
    assert attrs.st_ino != 0
    await ops.releasedir(fh)


# --- readdir --------------------------------------------------------------------------------------


async def test_readdir_offers_every_entry_with_increasing_offsets(
    ops: XnatOperations, monkeypatch: pytest.MonkeyPatch
) -> None:
    res = await lookup(ops, *RESOURCE)
    fh = await ops.opendir(res.st_ino, CTX)
    got = await readdir(ops, monkeypatch, fh, 0)
    assert [(name, off) for name, _, off in got.offered] == [
        (".", 1),
        ("..", 2),
        ("big.dcm", 3),
        ("nosize.dcm", 4),
        ("small.dcm", 5),
    ]
    dot, dotdot = got.offered[0][1], got.offered[1][1]
    assert dot.st_ino == res.st_ino and stat.S_ISDIR(dotdot.st_mode)
    # readdir is readdirplus: every accepted entry is a lookup the kernel will forget, except
    # `.` and `..`, which the kernel does not count.
    assert ops.fs.inodes.count(res.st_ino) == 1
    for _, attrs, _ in got.offered[2:]:
        assert attrs.st_ino > ROOT_INODE
        assert ops.fs.inodes.count(attrs.st_ino) == 1
    await ops.releasedir(fh)


async def test_readdir_stops_at_a_full_buffer_and_undoes_the_rejected_lookup(
    ops: XnatOperations, monkeypatch: pytest.MonkeyPatch
) -> None:
    res = await lookup(ops, *RESOURCE)
    fh = await ops.opendir(res.st_ino, CTX)
    got = await readdir(ops, monkeypatch, fh, 2, room=1)  # after `.` and `..`
    # One accepted, one offered and refused, and nothing offered after the refusal.
    assert [name for name, _, _ in got.offered] == ["big.dcm", "nosize.dcm"]
    accepted_ino = got.offered[0][1].st_ino
    rejected_ino = got.offered[1][1].st_ino
    assert ops.fs.inodes.count(accepted_ino) == 1
    assert ops.fs.inodes.count(rejected_ino) == 0
    assert ops.fs.inodes.get(rejected_ino) is None  # the kernel never learned that number

    # The kernel continues from the last offset it accepted and gets the refused entry again.
    rest = await readdir(ops, monkeypatch, fh, got.accepted[-1][2])
    assert [(name, off) for name, _, off in rest.offered] == [("nosize.dcm", 4), ("small.dcm", 5)]
    again_ino = rest.offered[0][1].st_ino
    assert again_ino == rejected_ino  # numbers come from what the entry is
    assert ops.fs.inodes.count(again_ino) == 1
    await ops.releasedir(fh)


async def test_a_refused_entry_the_kernel_already_holds_keeps_its_reference(
    ops: XnatOperations, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = await lookup(ops, *RESOURCE, "small.dcm")
    assert ops.fs.inodes.count(small.st_ino) == 1
    res = await lookup(ops, *RESOURCE)
    fh = await ops.opendir(res.st_ino, CTX)
    got = await readdir(ops, monkeypatch, fh, 4, room=0)
    assert [(name, attrs.st_ino) for name, attrs, _ in got.offered] == [("small.dcm", small.st_ino)]
    # Only the reference readdir took is undone: the lookup's own stays.
    assert ops.fs.inodes.count(small.st_ino) == 1
    assert (await ops.getattr(small.st_ino, CTX)).st_size == 5
    await ops.releasedir(fh)


# --- open -----------------------------------------------------------------------------------------


async def test_keep_cache_only_for_a_file_verified_in_the_cache(
    ops: XnatOperations, cache: DiskCache, remote: FakeRemote
) -> None:
    ino = (await lookup(ops, *RESOURCE, "small.dcm")).st_ino
    first = await ops.open(ino, os.O_RDONLY, CTX)
    # Not cached yet: pages read now might come from a download that fails verification.
    assert (first.keep_cache, first.direct_io) == (False, False)
    assert await ops.read(first.fh, 0, 4096) == b"hello"
    await ops.release(first.fh)
    with trio.fail_after(10):  # admission follows the read, in the background
        while cache.stats().entries != 1:
            await trio.sleep(0.01)

    second = await ops.open(ino, os.O_RDONLY, CTX)
    assert (second.keep_cache, second.direct_io) == (True, False)
    assert second.fh != first.fh
    assert await ops.read(second.fh, 1, 3) == b"ell"
    await ops.release(second.fh)
    assert remote.get_calls == [f"{FILES}/small.dcm"]


async def test_direct_io_while_the_size_is_unknown(
    ops: XnatOperations, cache: DiskCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A file the kernel knows only from readdir, opened before anything asked its size: the
    # kernel would cut reads at st_size 0, so the page cache is bypassed.
    res = await lookup(ops, *RESOURCE)
    fh = await ops.opendir(res.st_ino, CTX)
    offered = (await readdir(ops, monkeypatch, fh, 0)).offered
    await ops.releasedir(fh)
    (attrs,) = [a for name, a, _ in offered if name == "nosize.dcm"]
    assert attrs.st_size == 0 and attrs.attr_timeout == 0  # not settled: asked again
    fi = await ops.open(attrs.st_ino, os.O_RDONLY, CTX)
    assert (fi.keep_cache, fi.direct_io) == (False, True)
    assert await ops.read(fi.fh, 0, 100_000) == b"abc" * 1000
    await ops.release(fi.fh)
    with trio.fail_after(10):
        while cache.stats().entries != 1:
            await trio.sleep(0.01)
    # Once the size is learned (and the file verified in the cache) it is an ordinary file.
    fi = await ops.open(attrs.st_ino, os.O_RDONLY, CTX)
    assert (fi.keep_cache, fi.direct_io) == (True, False)
    await ops.release(fi.fh)


# --- @guard ---------------------------------------------------------------------------------------


async def test_guard_turns_an_unexpected_exception_into_eio_with_a_traceback(
    ops: XnatOperations, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(ino: int) -> object:
        raise RuntimeError("a bug")

    monkeypatch.setattr(ops.fs, "entry", broken)
    caplog.set_level(logging.DEBUG, logger=OPS_LOGGER)
    with pytest.raises(pyfuse3.FUSEError) as info:
        await ops.getattr(ROOT_INODE, CTX)
    assert fuse_errno(info) == errno.EIO
    assert isinstance(info.value.__cause__, RuntimeError)
    [record] = [r for r in caplog.records if r.name == OPS_LOGGER]
    assert record.levelno == logging.ERROR
    assert record.getMessage().startswith("getattr(1, ")  # the handler and its arguments
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError


@pytest.mark.parametrize(
    ("error", "code", "level"),
    [
        (NotFound("gone"), errno.ENOENT, logging.DEBUG),
        (ReadOnly("read-only"), errno.EROFS, logging.DEBUG),
        (Unavailable("server down"), errno.EIO, logging.WARNING),
        (AccessDenied("403 Forbidden"), errno.EACCES, logging.WARNING),
        (OSError(errno.ENOSPC, "No space left on device"), errno.ENOSPC, logging.WARNING),
    ],
    ids=["not-found", "read-only", "unavailable", "forbidden", "disk-full"],
)
async def test_guard_maps_expected_failures_to_their_errno_in_one_log_line(
    ops: XnatOperations,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    error: Exception,
    code: int,
    level: int,
) -> None:
    async def failing(ino: int) -> int:
        raise error

    monkeypatch.setattr(ops.fs, "opendir", failing)
    caplog.set_level(logging.DEBUG, logger=OPS_LOGGER)
    with pytest.raises(pyfuse3.FUSEError) as info:
        await ops.opendir(ROOT_INODE, CTX)
    assert fuse_errno(info) == code
    [record] = [r for r in caplog.records if r.name == OPS_LOGGER]
    assert record.levelno == level
    assert record.getMessage().startswith("opendir: ")
    assert record.exc_info is None  # no traceback for a failure the user should just see


async def test_an_unknown_inode_is_enoent_without_a_traceback(
    ops: XnatOperations, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=OPS_LOGGER)
    with pytest.raises(pyfuse3.FUSEError) as info:
        await ops.getattr(999_999, CTX)
    assert fuse_errno(info) == errno.ENOENT
    records = [r for r in caplog.records if r.name == OPS_LOGGER]
    assert [r.levelno for r in records] == [logging.DEBUG]
    assert records[0].exc_info is None


async def test_a_fuse_error_passes_the_guard_untouched_and_unlogged(
    ops: XnatOperations, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=OPS_LOGGER)
    with pytest.raises(pyfuse3.FUSEError) as info:
        await ops.getxattr(ROOT_INODE, b"user.other", CTX)
    assert fuse_errno(info) == pyfuse3.ENOATTR
    assert info.value.__cause__ is None
    assert [r for r in caplog.records if r.name == OPS_LOGGER] == []


# --- forget ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        [(999_999, 1)],  # never looked up
        [(ROOT_INODE, 5)],  # the root is pinned
        None,  # not a sequence at all
        [("TEST", 1)],  # not an inode number
        [(2,)],  # not a pair
    ],
    ids=["unknown", "root", "none", "name", "short"],
)
async def test_forget_never_raises(
    ops: XnatOperations, caplog: pytest.LogCaptureFixture, bad: object
) -> None:
    project = await lookup(ops, "TEST")
    caplog.set_level(logging.DEBUG, logger=OPS_LOGGER)
    assert await ops.forget(bad) is None  # type: ignore[arg-type]
    assert ops.fs.inodes.count(ROOT_INODE) == 1
    # The table still works after bad input.
    await ops.forget([(project.st_ino, 1)])
    assert ops.fs.inodes.count(project.st_ino) == 0


async def test_forget_of_malformed_input_is_logged_as_a_failure(
    ops: XnatOperations, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=OPS_LOGGER)
    await ops.forget(None)  # type: ignore[arg-type]
    [record] = [r for r in caplog.records if r.name == OPS_LOGGER]
    assert record.getMessage() == "forget failed" and record.exc_info is not None


# --- read-only ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("handler", "args"),
    [
        ("setattr", (ROOT_INODE, pyfuse3.EntryAttributes(), pyfuse3.SetattrFields(), None, CTX)),
        ("mknod", (ROOT_INODE, b"x", 0o644, 0, CTX)),
        ("mkdir", (ROOT_INODE, b"x", 0o755, CTX)),
        ("unlink", (ROOT_INODE, b"TEST", CTX)),
        ("rmdir", (ROOT_INODE, b"TEST", CTX)),
        ("symlink", (ROOT_INODE, b"x", b"TEST", CTX)),
        ("rename", (ROOT_INODE, b"TEST", ROOT_INODE, b"x", 0, CTX)),
        ("link", (2, ROOT_INODE, b"x", CTX)),
        ("create", (ROOT_INODE, b"x", 0o644, os.O_WRONLY | os.O_CREAT, CTX)),
        ("write", (1, 0, b"data")),
        ("setxattr", (ROOT_INODE, b"user.x", b"1", CTX)),
        ("removexattr", (ROOT_INODE, STATS_XATTR, CTX)),
    ],
)
async def test_every_write_handler_is_erofs(
    ops: XnatOperations, handler: str, args: tuple[object, ...]
) -> None:
    with pytest.raises(pyfuse3.FUSEError) as info:
        await getattr(ops, handler)(*args)
    assert fuse_errno(info) == errno.EROFS


async def test_opening_for_writing_and_write_access_are_erofs(ops: XnatOperations) -> None:
    ino = (await lookup(ops, *RESOURCE, "small.dcm")).st_ino
    for flags in (os.O_WRONLY, os.O_RDWR, os.O_RDONLY | os.O_TRUNC, os.O_RDONLY | os.O_APPEND):
        with pytest.raises(pyfuse3.FUSEError) as info:
            await ops.open(ino, flags, CTX)
        assert fuse_errno(info) == errno.EROFS, flags
    with pytest.raises(pyfuse3.FUSEError) as info:
        await ops.access(ino, os.R_OK | os.W_OK, CTX)
    assert fuse_errno(info) == errno.EROFS
    assert await ops.access(ino, os.R_OK, CTX) is True
    assert ops.fs.stats()["open_files"] == 0  # a refused open holds no handle


# --- extended attributes and statfs -------------------------------------------------------------


async def test_stats_xattr_on_the_root_is_live_json(
    ops: XnatOperations, remote: FakeRemote
) -> None:
    res = await lookup(ops, *RESOURCE)
    fh = await ops.opendir(res.st_ino, CTX)
    stats = json.loads(await ops.getxattr(ROOT_INODE, STATS_XATTR, CTX))
    assert stats["open_dirs"] == 1 and stats["open_files"] == 0
    assert stats["inodes"] == len(ops.fs.inodes) == 1 + len(RESOURCE)
    assert stats["listing_requests"] == len(remote.list_calls)
    assert stats["cache"]["entries"] == 0 and stats["downloads"] == 0
    await ops.releasedir(fh)
    assert json.loads(await ops.getxattr(ROOT_INODE, STATS_XATTR, CTX))["open_dirs"] == 0
    assert await ops.listxattr(ROOT_INODE, CTX) == [STATS_XATTR]


async def test_unknown_xattrs_and_stats_below_the_root_are_enoattr(ops: XnatOperations) -> None:
    project = await lookup(ops, "TEST")
    for inode, name in ((ROOT_INODE, b"user.other"), (project.st_ino, STATS_XATTR)):
        with pytest.raises(pyfuse3.FUSEError) as info:
            await ops.getxattr(inode, name, CTX)
        assert fuse_errno(info) == pyfuse3.ENOATTR, (inode, name)
    assert STATS_XATTR not in await ops.listxattr(project.st_ino, CTX)


async def xattrs_of(ops: XnatOperations, inode: int) -> dict[str, str]:
    """Every attribute listxattr names, read with getxattr, as getfattr -d does."""
    return {
        name.decode(): (await ops.getxattr(inode, name, CTX)).decode()
        for name in await ops.listxattr(inode, CTX)
    }


async def test_every_level_names_its_xnat_object(ops: XnatOperations, remote: FakeRemote) -> None:
    remote.listings["/data/projects/TEST/subjects/XNAT_S00001/experiments"][0]["xsiType"] = (
        "xnat:mrSessionData"
    )
    E = "XNAT_E00001"
    expected = {
        ("TEST",): ("/data/projects/TEST", "TEST", "xnat:projectData"),
        ("TEST", "1"): (
            "/data/projects/TEST/subjects/XNAT_S00001",
            "XNAT_S00001",
            "xnat:subjectData",
        ),
        ("TEST", "1", "MR1"): (f"/data/experiments/{E}", E, "xnat:mrSessionData"),
        ("TEST", "1", "MR1", "scans"): (f"/data/experiments/{E}/scans", None, None),
        ("TEST", "1", "MR1", "scans", "1"): (f"/data/experiments/{E}/scans/1", "1", "T1"),
        ("TEST", "1", "MR1", "scans", "T1"): (f"/data/experiments/{E}/scans/T1", None, None),
        RESOURCE: (f"/data/experiments/{E}/scans/1/resources/11", "11", None),
        ("TEST", "1", "MR1", "resources"): (f"/data/experiments/{E}/resources", None, None),
    }
    for path, (uri, oid, kind) in expected.items():
        attrs = await xattrs_of(ops, (await lookup(ops, *path)).st_ino)
        wanted = {"user.xnat.uri": uri, "user.xnat.id": oid, "user.xnat.type": kind}
        assert attrs == {k: v for k, v in wanted.items() if v is not None}, path
    # The root stands for no XNAT object: it has only the mount's counters.
    assert await ops.listxattr(ROOT_INODE, CTX) == [STATS_XATTR]


async def test_a_file_shows_uri_digest_and_whether_it_is_cached(
    ops: XnatOperations, remote: FakeRemote
) -> None:
    entry = await lookup(ops, *RESOURCE, "small.dcm")
    attrs = await xattrs_of(ops, entry.st_ino)
    assert attrs == {
        "user.xnat.uri": f"{FILES}/small.dcm",
        "user.xnat.digest": md5(b"hello"),
        "user.xnat.cached": "no",
    }
    requests = len(remote.list_calls) + len(remote.get_calls)
    info = await ops.open(entry.st_ino, os.O_RDONLY, CTX)
    assert await ops.read(info.fh, 0, 100) == b"hello"
    await ops.release(info.fh)
    with trio.fail_after(10):
        while (await ops.getxattr(entry.st_ino, b"user.xnat.cached", CTX)) != b"yes":
            await trio.sleep(0.01)  # admission follows the read, off the reader's path
    # Answered from memory: no request beyond the one GET of the read.
    assert len(remote.list_calls) + len(remote.get_calls) == requests + 1


async def test_a_running_download_is_partial_with_its_bytes(
    ops: XnatOperations, remote: FakeRemote
) -> None:
    entry = await lookup(ops, *RESOURCE, "big.dcm")
    remote.gate.clear()  # the body stops before its first chunk
    info = await ops.open(entry.st_ino, os.O_RDONLY, CTX)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ops.read, info.fh, 0, 4096)
        with trio.fail_after(10):
            while (state := await ops.getxattr(entry.st_ino, b"user.xnat.cached", CTX)) in (
                b"no",
                b"partial 0",
            ):
                await trio.sleep(0.01)
        assert state == b"partial 65536"  # the first chunk, held there by the gate
        stats = json.loads(await ops.getxattr(ROOT_INODE, STATS_XATTR, CTX))
        [running] = stats["transfers"]
        assert running["uri"] == f"{FILES}/big.dcm" and running["rate"] > 0
        assert (running["done"], running["total"]) == (65536, len(BIG))
        remote.gate.set()
    await ops.release(info.fh)


@pytest.mark.parametrize("name", [b"security.selinux", b"system.posix_acl_access", b"trusted.x"])
async def test_other_namespaces_are_not_supported_so_ls_stops_asking(
    ops: XnatOperations, caplog: pytest.LogCaptureFixture, name: bytes
) -> None:
    caplog.set_level(logging.DEBUG)
    entry = await lookup(ops, *RESOURCE, "small.dcm")
    with pytest.raises(pyfuse3.FUSEError) as info:
        await ops.getxattr(entry.st_ino, name, CTX)
    assert fuse_errno(info) == errno.ENOTSUP
    assert caplog.records == []


async def test_statfs_names_block_size_and_name_limit(ops: XnatOperations) -> None:
    data = await ops.statfs(CTX)
    assert data.f_namemax == 255
    assert data.f_bsize == data.f_frsize == 128 * 1024
