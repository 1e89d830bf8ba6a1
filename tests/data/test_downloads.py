"""Downloads: shared transfers, verification, admission, and the prefetcher's port."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from tests.support.fake_remote import BIG, FILES, FakeRemote, md5
from xnatfs.cache.disk import DiskCache
from xnatfs.data.downloads import Downloads
from xnatfs.errors import IntegrityError, Unavailable
from xnatfs.fileversion import FileVersion
from xnatfs.namespace.values import Source
from xnatfs.remote import AsyncXnat

SMALL = FileVersion(f"{FILES}/small.dcm", 5, md5(b"hello"))
BIG_V = FileVersion(f"{FILES}/big.dcm", len(BIG), md5(BIG))
LISTING = Source(FILES)


@pytest.fixture
def remote() -> FakeRemote:
    return FakeRemote()


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[DiskCache]:
    c = DiskCache(tmp_path / "cache", 64 << 20)
    yield c
    c.close()


async def read_all(downloads: Downloads, version: FileVersion) -> bytes:
    reader = downloads.open(version, LISTING)
    out = bytearray()
    try:
        while data := await reader.read(len(out), 256 * 1024):
            out += data
        return bytes(out)
    finally:
        reader.close()


async def settled(downloads: Downloads) -> None:
    with trio.fail_after(10):
        while downloads.stats()["in_flight"]:
            await trio.sleep(0.01)


async def test_two_readers_share_one_download_and_the_file_is_admitted(
    remote: FakeRemote, cache: DiskCache
) -> None:
    misses: list[tuple[FileVersion, Source]] = []
    async with trio.open_nursery() as nursery:
        downloads = Downloads(
            AsyncXnat(remote, 4), cache, nursery, on_miss=lambda v, s: misses.append((v, s))
        )  # type: ignore[arg-type]
        got: list[bytes] = []

        async def one() -> None:
            got.append(await read_all(downloads, BIG_V))

        async with trio.open_nursery() as readers:
            readers.start_soon(one)
            readers.start_soon(one)
        assert got == [BIG, BIG]
        assert remote.get_calls == [f"{FILES}/big.dcm"]
        assert misses == [(BIG_V, LISTING)]  # one miss, told to the prefetcher once
        await settled(downloads)
        assert downloads.is_verified(BIG_V)
        assert await read_all(downloads, BIG_V) == BIG
        assert remote.get_calls == [f"{FILES}/big.dcm"]  # the second read is a cache hit
        assert downloads.stats() == {
            "downloads": 1,
            "in_flight": 0,
            "size_requests": 0,
            "transfers": [],
        }


async def test_bytes_that_are_not_the_version_are_never_served_whole_nor_cached(
    remote: FakeRemote, cache: DiskCache
) -> None:
    remote.bodies[f"{FILES}/small.dcm"] = b"HELLO"  # same size, other bytes
    async with trio.open_nursery() as nursery:
        downloads = Downloads(AsyncXnat(remote, 4), cache, nursery)  # type: ignore[arg-type]
        with pytest.raises(IntegrityError, match="differs"):
            await read_all(downloads, SMALL)
        await settled(downloads)
        assert not downloads.is_verified(SMALL)
        assert list((cache.root / "parts").iterdir()) == []  # the part is gone too
        # The next read tries again, and the right bytes are kept.
        remote.bodies[f"{FILES}/small.dcm"] = b"hello"
        assert await read_all(downloads, SMALL) == b"hello"
        await settled(downloads)
        assert downloads.is_verified(SMALL)


async def test_a_failed_download_wakes_its_reader_and_the_next_read_retries(
    remote: FakeRemote, cache: DiskCache
) -> None:
    remote.fail_next = Unavailable("server down")
    async with trio.open_nursery() as nursery:
        downloads = Downloads(AsyncXnat(remote, 4), cache, nursery)  # type: ignore[arg-type]
        reader = downloads.open(SMALL, LISTING)
        with trio.fail_after(5), pytest.raises(Unavailable):
            await reader.read(0, 5)
        assert await reader.read(0, 5) == b"hello"
        reader.close()
        assert len(remote.get_calls) == 2


async def test_a_full_disk_makes_room_once_and_downloads_again(
    remote: FakeRemote, cache: DiskCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xnatfs.data import transfer

    real = transfer.pwrite_all
    failures = [OSError(errno.ENOSPC, "No space left on device")]

    def full_once(fd: int, data: bytes, offset: int) -> None:
        if failures:
            raise failures.pop()
        real(fd, data, offset)

    monkeypatch.setattr(transfer, "pwrite_all", full_once)
    async with trio.open_nursery() as nursery:
        downloads = Downloads(AsyncXnat(remote, 4), cache, nursery)  # type: ignore[arg-type]
        assert await read_all(downloads, BIG_V) == BIG
        assert remote.get_calls == [f"{FILES}/big.dcm"] * 2


async def test_claim_fetch_and_release_are_the_prefetchers_port(
    remote: FakeRemote, cache: DiskCache
) -> None:
    async with trio.open_nursery() as nursery:
        downloads = Downloads(AsyncXnat(remote, 4), cache, nursery)  # type: ignore[arg-type]
        t = downloads.claim(SMALL)
        assert t is not None and downloads.claim(SMALL) is None  # already in flight
        # A reader attaches to the claimed transfer instead of starting its own GET.
        reader = downloads.open(SMALL, LISTING)
        async with trio.open_nursery() as inner:
            inner.start_soon(reader.read, 0, 5)
            await trio.sleep(0.05)
            assert remote.get_calls == []
            downloads.fetch(t)
        assert remote.get_calls == [f"{FILES}/small.dcm"]
        reader.close()
        await settled(downloads)
        assert downloads.claim(SMALL) is None  # cached now
        # A released transfer wakes its readers with the reason, and leaves no part behind.
        t2 = downloads.claim(BIG_V)
        assert t2 is not None
        reader = downloads.open(BIG_V, LISTING)
        async with trio.open_nursery() as inner:

            async def wait_for_it() -> None:
                with pytest.raises(Unavailable, match="dropped"):
                    await reader.read(0, 10)

            inner.start_soon(wait_for_it)
            await trio.sleep(0.05)
            downloads.release(t2, Unavailable("prefetch dropped"))
        reader.close()
        assert not os.path.exists(t2.part_path)
