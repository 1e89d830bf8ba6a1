"""The trio <-> thread boundary: work runs in threads, reports come back in order, stops stop."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import trio

from tests.support.fake_remote import BIG, FILES, FakeRemote
from xnatfs.errors import Unavailable
from xnatfs.remote import AsyncXnat, Post, Stop


class Recorder:
    """A `Writer` that remembers which thread wrote."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.threads: set[int] = set()

    def write(self, offset: int, data: bytes) -> None:
        assert offset == len(self.data)
        self.threads.add(threading.get_ident())
        self.data += data

    def same(self, offset: int, data: bytes) -> bool:
        return bytes(self.data[offset : offset + len(data)]) == data


async def test_a_download_writes_in_a_worker_thread_and_reports_in_order() -> None:
    remote = AsyncXnat(FakeRemote(), 2)  # type: ignore[arg-type]
    writer = Recorder()
    progress: list[int] = []
    trio_thread = threading.get_ident()
    await remote.download(f"{FILES}/big.dcm", writer, progress.append, remote.stop())
    assert bytes(writer.data) == BIG
    assert trio_thread not in writer.threads
    # Every report ran on the trio thread before the download returned, in order.
    assert progress == sorted(progress) and progress[-1] == len(BIG)


async def test_a_stream_consumer_runs_in_a_thread_and_posts_back() -> None:
    fake = FakeRemote()
    remote = AsyncXnat(fake, 2)  # type: ignore[arg-type]
    seen: list[tuple[int, int]] = []
    trio_thread = threading.get_ident()

    class Consumer:
        def consume(self, chunks: Iterator[bytes], post: Post, stop: Stop) -> None:
            assert threading.get_ident() != trio_thread
            total = 0
            for i, chunk in enumerate(chunks):
                total += len(chunk)
                post(lambda i=i, n=total: seen.append((i, n)))

    await remote.stream(FILES, {"format": "zip"}, Consumer(), remote.stop())
    assert seen and [i for i, _ in seen] == list(range(len(seen)))
    assert fake.zip_calls == [FILES]


async def test_close_sets_every_stop_and_later_ones_are_born_set() -> None:
    remote = AsyncXnat(FakeRemote(), 2)  # type: ignore[arg-type]
    live = remote.stop()
    assert not live.is_set() and not remote.closing
    remote.close()
    assert live.is_set() and remote.closing
    assert remote.stop().is_set()


async def test_blocking_work_runs_off_the_trio_thread() -> None:
    remote = AsyncXnat(FakeRemote(), 2)  # type: ignore[arg-type]
    assert await remote.blocking(threading.get_ident) != threading.get_ident()


async def test_a_stop_ends_a_download_at_its_next_chunk() -> None:
    fake = FakeRemote()
    fake.gate.clear()  # the body stops after its first chunk until the gate opens
    remote = AsyncXnat(fake, 2)  # type: ignore[arg-type]
    stop = remote.stop()
    writer = Recorder()
    outcome: list[BaseException] = []

    async def run() -> None:
        try:
            await remote.download(f"{FILES}/big.dcm", writer, lambda n: None, stop)
        except Unavailable as exc:
            outcome.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        await trio.sleep(0.05)
        stop.set()
        fake.gate.set()
    assert outcome and 0 < len(writer.data) < len(BIG)
