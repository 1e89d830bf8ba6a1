"""One archive filling claimed transfers: only proven entries are written, and a reader can take
a file out of the stream."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from tests.support.fake_remote import FakeRemote, md5
from xnatfs.cache.disk import DiskCache
from xnatfs.data.bulk import ZipBulk
from xnatfs.data.downloads import Downloads
from xnatfs.data.transfer import Transfer, pread_all
from xnatfs.fileversion import FileVersion
from xnatfs.remote import AsyncXnat, Stop
from xnatfs.xnat.archive import ArchiveIndex, member

E = "/data/experiments/XNAT_E00001"


def uri(scan: int, name: str) -> str:
    return f"{E}/scans/{scan}/resources/{10 + scan}/files/{name}"


def body(scan: int, name: str) -> bytes:
    return f"scan {scan} {name} ".encode() * 50


def archive(entries: list[tuple[int, str]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for scan, name in entries:
            z.writestr(f"MR1/scans/{scan}-T1/resources/DICOM/files/{name}", body(scan, name))
    return buf.getvalue()


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[DiskCache]:
    c = DiskCache(tmp_path / "cache", 64 << 20)
    yield c
    c.close()


def listing(scans: range, names: list[str]) -> list[tuple[FileVersion, str]]:
    return [(FileVersion(uri(s, n), len(body(s, n)), ""), "DICOM") for s in scans for n in names]


def index_of(files: list[tuple[FileVersion, str]]) -> ArchiveIndex:
    members = [member(v.uri, label) for v, label in files]
    return ArchiveIndex(m for m in members if m is not None)


async def consume(bulk: ZipBulk, data: bytes) -> None:
    token = trio.lowlevel.current_trio_token()
    chunks = iter([data[i : i + 500] for i in range(0, len(data), 500)])
    await trio.to_thread.run_sync(bulk.consume, chunks, token.run_sync_soon, Stop())


async def test_only_entries_proven_to_be_a_claimed_file_are_written(cache: DiskCache) -> None:
    names = ["1.dcm", "2.dcm"]
    files = listing(range(1, 4), names)
    done: list[tuple[Transfer, str]] = []
    async with trio.open_nursery() as nursery:
        downloads = Downloads(AsyncXnat(FakeRemote(), 2), cache, nursery)  # type: ignore[arg-type]
        # Scans 1 and 2 are cached already (not claimed); scan 3 is wanted.
        claimed = {v.uri: t for v, _ in files if uri(3, "") in v.uri and (t := downloads.claim(v))}
        bulk = ZipBulk(claimed, index_of(files), lambda t, h: done.append((t, h)))
        # An entry of a file not in the listing at all comes first.
        await consume(bulk, archive([(9, "1.dcm"), *((s, n) for s in (1, 2, 3) for n in names)]))
        assert sorted(t.version.uri for t in bulk.handed) == sorted(claimed)
        for t, h in done:
            scan = int(t.version.uri.split("/scans/")[1].split("/")[0])
            name = t.version.uri.rsplit("/", 1)[1]
            assert h == md5(body(scan, name))
            assert pread_all(t.fd, 10_000, 0) == body(scan, name)
        assert bulk.index.skipped == 1  # scan 9's entry: nobody's file
        for t in claimed.values():
            downloads.release(t, None)
        nursery.cancel_scope.cancel()


async def test_a_reader_takes_a_far_file_out_of_the_stream_but_never_a_begun_one(
    cache: DiskCache,
) -> None:
    names = [f"{i}.dcm" for i in range(10)]
    files = listing(range(1, 2), names)
    async with trio.open_nursery() as nursery:
        downloads = Downloads(AsyncXnat(FakeRemote(), 2), cache, nursery)  # type: ignore[arg-type]
        claimed = {v.uri: t for v, _ in files if (t := downloads.claim(v)) is not None}
        ts = list(claimed.values())
        bulk = ZipBulk(claimed, index_of(files), lambda t, h: None, lead=4)
        assert not bulk.steal(ts[2])  # close to where the stream will start
        assert bulk.steal(ts[8])  # far ahead: the reader fetches it itself
        assert not bulk.steal(ts[8])  # only once
        await consume(bulk, archive([(1, n) for n in names]))
        assert ts[8] not in bulk.handed and ts[8] in bulk.stolen
        assert pread_all(ts[8].fd, 10, 0) == b""  # the stream never wrote the stolen file
        assert len(bulk.handed) == 9
        assert not bulk.steal(ts[9])  # begun (and finished) by the stream
        for t in ts:
            downloads.release(t, None)
        nursery.cancel_scope.cancel()
