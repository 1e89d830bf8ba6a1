"""The streaming zip reader against archives written by Python's zipfile."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator

import pytest

from xnatfs.data.zipstream import ZipFormatError, iter_zip


def chunked(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def archive(files: dict[str, bytes], method: int) -> bytes:
    buf = io.BytesIO()  # seekable: sizes and CRC end up in the local headers
    with zipfile.ZipFile(buf, "w", compression=method) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


FILES = {
    "MR1/scans/1-T1/resources/DICOM/files/1.dcm": bytes(range(256)) * 700,
    "MR1/scans/1-T1/resources/DICOM/files/sub/2.dcm": b"x" * 5,
    "MR1/scans/1-T1/resources/DICOM/files/empty.dcm": b"",
}


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 20])
def test_entries_and_bytes_in_order(method: int, chunk: int) -> None:
    data = archive(FILES, method)
    got = {e.name: b"".join(body) for e, body in iter_zip(chunked(data, chunk), chunk_size=999)}
    assert got == FILES


def test_unread_entries_are_skipped() -> None:
    data = archive(FILES, zipfile.ZIP_STORED)
    names = [e.name for e, _ in iter_zip(chunked(data, 100))]
    assert names == list(FILES)


def test_corrupt_stored_data_is_detected_by_crc() -> None:
    data = bytearray(archive({"a.bin": b"hello world"}, zipfile.ZIP_STORED))
    data[data.index(b"hello")] ^= 0xFF
    with pytest.raises(ZipFormatError, match="CRC"):
        for _, body in iter_zip(iter([bytes(data)])):
            b"".join(body)


def test_truncated_archive_raises() -> None:
    data = archive(FILES, zipfile.ZIP_STORED)
    with pytest.raises(ZipFormatError):
        for _, body in iter_zip(chunked(data[: len(data) // 3], 50)):
            b"".join(body)


def test_streamed_archive_with_descriptors() -> None:
    class Unseekable(io.RawIOBase):
        def __init__(self) -> None:
            self.data = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, b: bytes) -> int:  # type: ignore[override]
            self.data += b
            return len(b)

    out = Unseekable()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, body in FILES.items():
            z.writestr(name, body)
    got = {e.name: b"".join(body) for e, body in iter_zip(chunked(bytes(out.data), 333))}
    assert got == FILES
