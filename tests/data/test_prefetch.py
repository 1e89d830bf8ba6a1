"""The series prefetch policy, over its narrow port to the downloads."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import trio

from tests.support.fake_remote import FILES, FakeRemote
from xnatfs.cache.disk import DiskCache
from xnatfs.data.downloads import Downloads
from xnatfs.data.prefetch import Prefetcher
from xnatfs.data.transfer import PartWriter, Transfer
from xnatfs.fileversion import FileVersion
from xnatfs.namespace.values import Row, Source
from xnatfs.remote import AsyncXnat

LISTING = Source(FILES)


def rows(sizes: Sequence[int | None]) -> list[dict[str, str]]:
    return [
        {
            "Name": f"{i}.dcm",
            "Size": "" if size is None else str(size),
            "URI": f"{FILES}/{i}.dcm",
            "collection": "DICOM",
            "digest": "",
        }
        for i, size in enumerate(sizes)
    ]


class Port:
    """Records what the prefetcher asks of the downloads; claims everything not in `have`."""

    def __init__(self) -> None:
        self.closing = False
        self.have: set[str] = set()
        self.claimed: list[Transfer] = []
        self.fetched: list[Transfer] = []
        self.downloaded: list[Transfer] = []
        self.released: list[Transfer] = []
        self.running = 0
        self.most = 0

    def claim(self, version: FileVersion) -> Transfer | None:
        if version.uri in self.have:
            return None
        t = Transfer(version, "/nonexistent.part", PartWriter(os.open(os.devnull, os.O_RDWR)))
        self.claimed.append(t)
        return t

    def fetch(self, transfer: Transfer) -> None:
        self.fetched.append(transfer)

    async def download(self, transfer: Transfer) -> None:
        self.running += 1
        self.most = max(self.most, self.running)
        await trio.sleep(0.01)
        self.running -= 1
        self.downloaded.append(transfer)

    def complete(self, transfer: Transfer, md5_hex: str) -> None:
        raise AssertionError("not in these tests")

    def release(self, transfer: Transfer, error: BaseException | None) -> None:
        self.released.append(transfer)

    def close(self) -> None:
        for t in self.claimed:
            os.close(t.fd)


@pytest.fixture
def port() -> Iterator[Port]:
    p = Port()
    yield p
    p.close()


def prefetcher(
    nursery: trio.Nursery, port: Port, listing_rows: list[dict[str, str]], **kw: object
) -> tuple[Prefetcher, list[Source]]:
    asked: list[Source] = []

    async def fetch_rows(source: Source) -> Sequence[Row]:
        asked.append(source)
        return listing_rows

    p = Prefetcher(AsyncXnat(FakeRemote(), 2), fetch_rows, nursery, **kw)  # type: ignore[arg-type]
    p.bind(port)
    return p, asked


async def settle() -> None:
    await trio.testing.wait_all_tasks_blocked()


async def until(check: Callable[[], bool]) -> None:
    with trio.fail_after(5):
        while not check():
            await trio.sleep(0.01)


async def test_two_misses_within_the_window_start_one_prefetch(port: Port) -> None:
    async with trio.open_nursery() as nursery:
        p, asked = prefetcher(nursery, port, rows([10] * 4), mode="parallel", window=5.0)
        v = FileVersion(f"{FILES}/0.dcm", 10, "")
        p.note_miss(v, LISTING)
        await settle()
        assert asked == [] and p.stats()["prefetches"] == 0  # one miss is not a walk
        p.note_miss(v, LISTING)
        p.note_miss(v, LISTING)  # while it runs, no second one
        await settle()
        assert asked == [LISTING] and p.stats()["prefetches"] == 1
        await until(lambda: len(port.downloaded) == 4)


async def test_misses_further_apart_than_the_window_start_nothing(port: Port) -> None:
    async with trio.open_nursery() as nursery:
        p, asked = prefetcher(nursery, port, rows([10] * 4), mode="parallel", window=0.05)
        v = FileVersion(f"{FILES}/0.dcm", 10, "")
        p.note_miss(v, LISTING)
        await trio.sleep(0.1)
        p.note_miss(v, LISTING)
        await settle()
        assert asked == []


async def test_off_prefetches_nothing(port: Port) -> None:
    async with trio.open_nursery() as nursery:
        p, asked = prefetcher(nursery, port, rows([10] * 4), mode="off")
        v = FileVersion(f"{FILES}/0.dcm", 10, "")
        for _ in range(3):
            p.note_miss(v, LISTING)
        await settle()
        assert asked == []


async def test_claims_stay_within_their_budgets(port: Port) -> None:
    port.have.add(f"{FILES}/1.dcm")  # cached or in flight: not claimed
    sizes = [10, 10, None, 100, 10, 10, 10]
    async with trio.open_nursery() as nursery:
        p, _ = prefetcher(
            nursery, port, rows(sizes), mode="parallel", max_file=50, max_bytes=25, parallel=1
        )
        v = FileVersion(f"{FILES}/0.dcm", 10, "")
        p.note_miss(v, LISTING)
        p.note_miss(v, LISTING)
        await settle()
    # 0 (10 bytes), not 1 (have), not 2 (no size), not 3 (too big), 4 (10), then 5 breaks the
    # 25-byte budget.
    assert [t.version.uri.rsplit("/", 1)[1] for t in port.claimed] == ["0.dcm", "4.dcm"]
    assert port.most == 1


async def test_parallel_mode_keeps_to_its_parallelism(port: Port) -> None:
    async with trio.open_nursery() as nursery:
        p, _ = prefetcher(nursery, port, rows([10] * 12), mode="parallel", parallel=3)
        v = FileVersion(f"{FILES}/0.dcm", 10, "")
        p.note_miss(v, LISTING)
        p.note_miss(v, LISTING)
        await settle()
    assert len(port.downloaded) == 12 and port.most == 3


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[DiskCache]:
    c = DiskCache(tmp_path / "cache", 64 << 20)
    yield c
    c.close()


async def test_an_archive_that_fails_leaves_waited_files_to_their_own_get(
    cache: DiskCache,
) -> None:
    remote = FakeRemote()
    series = {f"{i}.dcm": bytes([i]) * 1000 for i in range(6)}
    remote.listings[FILES] = [FakeRemote.row(n, b) for n, b in series.items()]
    remote.bodies = {f"{FILES}/{n}": b for n, b in series.items()}
    remote.zip_fails = True  # the archive request breaks off
    async with trio.open_nursery() as nursery:
        boundary = AsyncXnat(remote, 4)  # type: ignore[arg-type]

        async def fetch_rows(source: Source) -> Sequence[Row]:
            return await boundary.list(source.path)

        p = Prefetcher(boundary, fetch_rows, nursery, mode="zip")
        downloads = Downloads(boundary, cache, nursery, on_miss=p.note_miss)
        p.bind(downloads)
        readers = [
            downloads.open(FileVersion(r["URI"], 1000, r["digest"]), LISTING)
            for r in remote.listings[FILES]
        ]
        for reader in readers[:2]:
            assert len(await reader.read(0, 1000)) == 1000  # two misses start the prefetch
        with trio.fail_after(5):
            while p.stats()["prefetches"] == 0 or remote.zip_calls == []:
                await trio.sleep(0.01)
            # Somebody waits for file 4: after the failure it comes with its own GET.
            assert await readers[4].read(0, 1000) == series["4.dcm"]
        await trio.testing.wait_all_tasks_blocked()
        assert f"{FILES}/4.dcm" in remote.get_calls
        assert f"{FILES}/5.dcm" not in remote.get_calls  # nobody waits: released, not fetched
        for reader in readers:
            reader.close()
        # The archive held none of the files: this listing is not tried by archive again.
        readers2 = [
            downloads.open(FileVersion(f"{FILES}/{n}", 1000, ""), LISTING)
            for n in ("5.dcm", "3.dcm")
        ]
        for reader in readers2:
            await reader.read(0, 10)
            reader.close()
        assert remote.zip_calls == [FILES]
        nursery.cancel_scope.cancel()
