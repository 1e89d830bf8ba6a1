"""The filesystem core driven directly (no mount, no HTTP): an in-memory remote stands in for
the XNAT client, so request counts, shared downloads and verification can be asserted exactly."""

from __future__ import annotations

import errno
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from tests.support.core import make_fs, walk
from tests.support.fake_remote import BIG, FILES, E, FakeRemote
from xnatfs.cache.disk import DiskCache
from xnatfs.errors import IntegrityError, NotFound, ReadOnly, Unavailable, errno_for
from xnatfs.fs.filesystem import Filesystem
from xnatfs.fs.inodes import ROOT_INODE


@pytest.fixture
def remote() -> FakeRemote:
    return FakeRemote()


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[DiskCache]:
    c = DiskCache(tmp_path / "cache", 64 * 1024 * 1024)
    yield c
    c.close()


async def read_all(fs: Filesystem, ino: int, chunk: int = 128 * 1024) -> bytes:
    fh, _, _ = fs.open(ino, 0)
    out = bytearray()
    try:
        while True:
            data = await fs.read(fh, len(out), chunk)
            if not data:
                return bytes(out)
            out += data
    finally:
        fs.release(fh)


async def test_one_listing_per_directory_and_lookups_reuse_it(
    remote: FakeRemote, cache: DiskCache
) -> None:
    async with trio.open_nursery() as nursery:
        fs = make_fs(remote, cache, nursery)
        res = await walk(fs, "TEST", "1", "MR1", "scans", "1", "DICOM")
        fh = await fs.opendir(res)
        names = [n.name for n in fs.readdir(fh, 0)]
        assert names == [".", "..", "big.dcm", "nosize.dcm", "small.dcm"]
        names = names[2:]
        async with trio.open_nursery() as inner:
            for name in names * 5:
                inner.start_soon(fs.lookup, res, name)
        assert remote.list_calls.count(FILES) == 1
        # Probes for names a file manager looks for cost nothing once the parent is listed.
        before = len(remote.list_calls)
        for probe in (".hidden", "desktop.ini", ".git"):
            with pytest.raises(NotFound):
                await fs.lookup(res, probe)
        assert len(remote.list_calls) == before
        assert remote.get_calls == []  # listing and stat download nothing
        fs.releasedir(fh)
        nursery.cancel_scope.cancel()


async def test_reads_are_answered_before_the_download_ends(
    remote: FakeRemote, cache: DiskCache
) -> None:
    remote.gate.clear()
    async with trio.open_nursery() as nursery:
        fs = make_fs(remote, cache, nursery)
        ino = await walk(fs, "TEST", "1", "MR1", "scans", "1", "DICOM", "big.dcm")
        fh, size_known, _ = fs.open(ino, 0)
        assert size_known and remote.get_calls == []  # open downloads nothing
        with trio.fail_after(5):
            head = await fs.read(fh, 0, 4096)
        assert head == BIG[:4096]
        # Only the first chunk has arrived: the end of the file is still pending.
        with trio.move_on_after(0.2) as scope:
            await fs.read(fh, len(BIG) - 10, 10)
        assert scope.cancelled_caught
        remote.gate.set()
        with trio.fail_after(5):
            assert await fs.read(fh, len(BIG) - 10, 10) == BIG[-10:]
        fs.release(fh)
        nursery.cancel_scope.cancel()


async def test_two_readers_share_one_download_and_rereads_hit_the_cache(
    remote: FakeRemote, cache: DiskCache
) -> None:
    async with trio.open_nursery() as nursery:
        fs = make_fs(remote, cache, nursery)
        ino = await walk(fs, "TEST", "1", "MR1", "scans", "1", "DICOM", "big.dcm")
        results: list[bytes] = []

        async def reader() -> None:
            results.append(await read_all(fs, ino))

        async with trio.open_nursery() as inner:
            inner.start_soon(reader)
            inner.start_soon(reader)
        assert results == [BIG, BIG]
        assert remote.get_calls == [f"{FILES}/big.dcm"]
        assert await read_all(fs, ino) == BIG
        assert len(remote.get_calls) == 1
        nursery.cancel_scope.cancel()


async def test_digest_mismatch_is_eio_and_never_cached(
    remote: FakeRemote, cache: DiskCache
) -> None:
    remote.bodies[f"{FILES}/small.dcm"] = b"HELLO"  # same size, wrong bytes
    async with trio.open_nursery() as nursery:
        fs = make_fs(remote, cache, nursery)
        ino = await walk(fs, "TEST", "1", "MR1", "scans", "1", "DICOM", "small.dcm")
        with pytest.raises(IntegrityError) as info:
            await read_all(fs, ino)
        assert errno_for(info.value) == errno.EIO
        assert cache.stats().entries == 0
        remote.bodies[f"{FILES}/small.dcm"] = b"hello"
        assert await read_all(fs, ino) == b"hello"  # the next read tries again
        with trio.fail_after(5):  # admitted right after the readers were answered
            while cache.stats().entries != 1:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()


async def test_failed_download_wakes_readers_and_next_read_retries(
    remote: FakeRemote, cache: DiskCache
) -> None:
    remote.fail_next = Unavailable("server down")
    async with trio.open_nursery() as nursery:
        fs = make_fs(remote, cache, nursery)
        ino = await walk(fs, "TEST", "1", "MR1", "scans", "1", "DICOM", "small.dcm")
        fh, _, _ = fs.open(ino, 0)
        with pytest.raises(Unavailable):
            await fs.read(fh, 0, 5)
        assert await fs.read(fh, 0, 5) == b"hello"
        fs.release(fh)
        nursery.cancel_scope.cancel()


async def test_a_file_without_size_learns_it_with_one_request_at_lookup(
    remote: FakeRemote, cache: DiskCache
) -> None:
    async with trio.open_nursery() as nursery:
        fs = make_fs(remote, cache, nursery)
        ino = await walk(fs, "TEST", "1", "MR1", "scans", "1", "DICOM", "nosize.dcm")
        # Tools copy st_size bytes: the size is known before anyone opens the file.
        assert remote.size_calls == [f"{FILES}/nosize.dcm"] and remote.get_calls == []
        assert (await fs.entry(ino)).size == 3000
        fh, size_known, _ = fs.open(ino, 0)
        assert size_known
        fs.release(fh)
        assert await read_all(fs, ino, chunk=1000) == b"abc" * 1000
        await walk(fs, "TEST", "1", "MR1", "scans", "1", "DICOM", "nosize.dcm")
        assert len(remote.size_calls) == 1  # remembered
        nursery.cancel_scope.cancel()


async def test_a_file_the_server_does_not_size_is_downloaded_to_learn_it(
    remote: FakeRemote, cache: DiskCache
) -> None:
    remote.lengths = False  # neither the listing nor the headers say
    async with trio.open_nursery() as nursery:
        fs = make_fs(remote, cache, nursery)
        ino = await walk(fs, "TEST", "1", "MR1", "scans", "1", "DICOM", "nosize.dcm")
        assert remote.get_calls == [f"{FILES}/nosize.dcm"]
        assert (await fs.entry(ino)).size == 3000
        assert await read_all(fs, ino, chunk=1000) == b"abc" * 1000
        assert len(remote.get_calls) == 1  # read from the cache it was downloaded into
        nursery.cancel_scope.cancel()


async def test_lookup_counts_balance_and_writes_are_refused(
    remote: FakeRemote, cache: DiskCache
) -> None:
    async with trio.open_nursery() as nursery:
        fs = make_fs(remote, cache, nursery)
        ino = await walk(fs, "TEST", "1", "MR1", "scans", "1", "DICOM", "small.dcm")
        again = (
            await fs.lookup(await walk(fs, "TEST", "1", "MR1", "scans", "1", "DICOM"), "small.dcm")
        ).ino
        assert again == ino and fs.inodes.count(ino) == 2
        with pytest.raises(ReadOnly):
            fs.open(ino, 1)  # O_WRONLY
        counts = fs.inodes.counts()
        fs.forget([(i, c) for i, c in counts.items() if i != ROOT_INODE])
        assert fs.inodes.counts() == {ROOT_INODE: 1}
        # A forgotten path keeps its number: it is derived from what the entry is.
        assert await walk(fs, "TEST", "1", "MR1", "scans", "1", "DICOM", "small.dcm") == ino
        nursery.cancel_scope.cancel()


async def test_accession_id_alias_resolves_without_being_listed(
    remote: FakeRemote, cache: DiskCache
) -> None:
    async with trio.open_nursery() as nursery:
        fs = make_fs(remote, cache, nursery)
        project = await walk(fs, "TEST")
        fh = await fs.opendir(project)
        assert [n.name for n in fs.readdir(fh, 0)] == [".", "..", "1", "resources"]
        alias = await fs.lookup(project, "XNAT_S00001")
        assert alias.node.dir == (await fs.lookup(project, "1")).node.dir
        nursery.cancel_scope.cancel()


async def test_an_expired_listing_is_served_while_it_is_refreshed(
    remote: FakeRemote, cache: DiskCache
) -> None:
    async with trio.open_nursery() as nursery:
        fs = make_fs(remote, cache, nursery, ttl=0.2)
        await walk(fs, "TEST")
        await walk(fs, "TEST")
        assert remote.list_calls.count("/data/projects") == 1
        time.sleep(0.3)
        # Stale: answered at once from what was listed, and asked again in the background.
        await walk(fs, "TEST")
        with trio.fail_after(5):
            while remote.list_calls.count("/data/projects") < 2:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("mode", ["zip", "parallel"])
async def test_walking_a_series_prefetches_the_rest(
    remote: FakeRemote, cache: DiskCache, mode: str
) -> None:
    series = {f"{i}.dcm": bytes([i]) * (1000 + i) for i in range(1, 21)}
    remote.listings[FILES] = [FakeRemote.row(n, b) for n, b in series.items()]
    remote.bodies = {f"{FILES}/{n}": b for n, b in series.items()}
    async with trio.open_nursery() as nursery:
        fs = make_fs(remote, cache, nursery, prefetch=mode)
        res = await walk(fs, "TEST", "1", "MR1", "scans", "1", "DICOM")
        got = {}
        for name in series:  # a reader walking the series in name order
            got[name] = await read_all(fs, (await fs.lookup(res, name)).ino)
        assert got == series
        with trio.fail_after(5):
            while cache.stats().entries < len(series):
                await trio.sleep(0.01)
        if mode == "zip":
            # Two single GETs started the walk; one archive brought the other 18 files.
            assert len(remote.get_calls) == 2 and remote.zip_calls == [FILES]
        else:
            assert sorted(remote.get_calls) == sorted(f"{FILES}/{n}" for n in series)
        assert cache.stats().entries == len(series)
        nursery.cancel_scope.cancel()


async def test_prefetch_off_fetches_file_by_file(remote: FakeRemote, cache: DiskCache) -> None:
    async with trio.open_nursery() as nursery:
        fs = make_fs(remote, cache, nursery, prefetch="off")
        res = await walk(fs, "TEST", "1", "MR1", "scans", "1", "DICOM")
        for name in ("small.dcm", "big.dcm", "nosize.dcm"):
            await read_all(fs, (await fs.lookup(res, name)).ino)
        assert remote.zip_calls == [] and len(remote.get_calls) == 3
        nursery.cancel_scope.cancel()


async def test_a_file_a_reader_waits_for_comes_before_the_archive(
    remote: FakeRemote, cache: DiskCache
) -> None:
    series = {f"{i}.dcm": bytes([i]) * (3000 + i) for i in range(1, 21)}
    remote.listings[FILES] = [FakeRemote.row(n, b) for n, b in series.items()]
    remote.bodies = {f"{FILES}/{n}": b for n, b in series.items()}
    async with trio.open_nursery() as nursery:
        fs = make_fs(remote, cache, nursery, prefetch="zip")
        res = await walk(fs, "TEST", "1", "MR1", "scans", "1", "DICOM")
        remote.zip_gate.clear()  # the archive stalls near its start
        for name in ("1.dcm", "2.dcm"):  # two misses start the prefetch
            assert await read_all(fs, (await fs.lookup(res, name)).ino) == series[name]
        with trio.fail_after(5):
            while not remote.zip_calls:
                await trio.sleep(0.01)
        # A viewer jumps to the last slice: it must not wait for the archive to get there.
        with trio.fail_after(5):
            last = await read_all(fs, (await fs.lookup(res, "20.dcm")).ino)
        assert last == series["20.dcm"]
        assert f"{FILES}/20.dcm" in remote.get_calls
        remote.zip_gate.set()
        for name, body in series.items():
            assert await read_all(fs, (await fs.lookup(res, name)).ino) == body
        assert remote.get_calls.count(f"{FILES}/20.dcm") == 1 and len(remote.zip_calls) == 1
        nursery.cancel_scope.cancel()


async def test_a_selector_that_matches_nothing_is_an_empty_directory(
    remote: FakeRemote, cache: DiskCache
) -> None:
    # Without a project in the path XNAT answers 404 for an empty selector (§3.6).
    remote.listings[f"/data/experiments/{E}/reconstructions"] = []
    async with trio.open_nursery() as nursery:
        fs = make_fs(remote, cache, nursery)
        for _ in range(2):
            for name in ("ALL", "RX,RY"):
                selector = await walk(fs, "TEST", "1", "MR1", "reconstructions", name)
                fh = await fs.opendir(selector)
                assert [n.name for n in fs.readdir(fh, 0)] == [".", ".."]
                fs.releasedir(fh)
        base = f"/data/experiments/{E}/reconstructions"
        # An empty collection's ALL is known empty from the collection listing itself.
        assert remote.list_calls.count(f"{base}/ALL/out/resources") == 0
        assert remote.list_calls.count(f"{base}/RX,RY/out/resources") == 1  # 404 cached too
        nursery.cancel_scope.cancel()


async def test_resolving_an_alias_costs_one_listing_even_without_caching(
    remote: FakeRemote, cache: DiskCache
) -> None:
    async with trio.open_nursery() as nursery:
        fs = make_fs(remote, cache, nursery, ttl=0)
        project = await walk(fs, "TEST")
        before = remote.list_calls.count("/data/projects/TEST/subjects")
        await fs.lookup(project, "XNAT_S00001")
        assert remote.list_calls.count("/data/projects/TEST/subjects") == before + 1
        nursery.cancel_scope.cancel()
