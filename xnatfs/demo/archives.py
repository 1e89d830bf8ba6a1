"""Archives written as a stream of chunks, the way XNAT's `format=zip|tar|tar.gz` sends them.

Zip: STORED entries whose local headers already carry CRC-32 and sizes (what Java's
`ZipOutputStream` writes for STORED entries, and what a streaming unzipper needs), no data
descriptors, central directory at the end; Zip64 records only where a size or offset needs them.
Each file is therefore read twice: once for its CRC, once for the bytes.

Tar: POSIX (pax) headers from `tarfile`, data padded to 512 bytes, two zero blocks at the end;
`tar.gz` is the same stream through gzip.
"""

from __future__ import annotations

import struct
import tarfile
import time
import zlib
from collections.abc import Iterable, Iterator

from xnatfs.demo.content import DemoFile

_U32 = 0xFFFFFFFF
_U16 = 0xFFFF


def coalesce(chunks: Iterable[bytes], at_least: int = 256 * 1024) -> Iterator[bytes]:
    """Join small pieces (headers, small files) into chunks of at least `at_least` bytes, so a
    chunked response carries few large chunks instead of many tiny ones."""
    pending: list[bytes] = []
    size = 0
    for chunk in chunks:
        pending.append(chunk)
        size += len(chunk)
        if size >= at_least:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)


def _dos_datetime(mtime: float) -> tuple[int, int]:
    t = time.gmtime(max(mtime, 315532800))  # the DOS epoch is 1980
    dos_time = (t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2)
    dos_date = ((t.tm_year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday
    return dos_time, dos_date


def crc32_of(data: DemoFile) -> int:
    crc = 0
    for chunk in data.chunks():
        crc = zlib.crc32(chunk, crc)
    return crc


def zip_stream(entries: Iterable[tuple[str, DemoFile]]) -> Iterator[bytes]:
    """Yield a complete zip archive of `entries` (archive path, contents), one chunk at a time."""
    central: list[bytes] = []
    offset = 0
    count = 0
    for name, data in entries:
        encoded = name.encode("utf-8")
        flags = 0 if encoded.isascii() else 0x0800  # bit 11: name is UTF-8
        size = data.size
        crc = crc32_of(data)
        dos_time, dos_date = _dos_datetime(data.mtime)
        big = size >= _U32
        extra = struct.pack("<HHQQ", 0x0001, 16, size, size) if big else b""
        version = 45 if big else 10
        # From "version needed" to the name length, local header and central directory entry
        # carry the same fields.
        shared = struct.pack(
            "<HHHHHIIIH",
            version,
            flags,
            0,  # method: STORED
            dos_time,
            dos_date,
            crc,
            _U32 if big else size,
            _U32 if big else size,
            len(encoded),
        )
        local = struct.pack("<I", 0x04034B50) + shared + struct.pack("<H", len(extra))
        yield local + encoded + extra
        written = 0
        for chunk in data.chunks():
            written += len(chunk)
            yield chunk
        if written != size:
            raise RuntimeError(f"{name}: expected {size} bytes, read {written}")
        far = offset >= _U32
        cd_extra_fields = []
        if big:
            cd_extra_fields += [size, size]
        if far:
            cd_extra_fields.append(offset)
        cd_extra = (
            struct.pack(f"<HH{len(cd_extra_fields)}Q", 0x0001, 8 * len(cd_extra_fields),
                        *cd_extra_fields)
            if cd_extra_fields
            else b""
        )  # fmt: skip
        central.append(
            struct.pack("<IH", 0x02014B50, 0x0300 | max(version, 20))  # made by: Unix
            + shared
            + struct.pack(
                "<HHHHII",
                len(cd_extra),
                0,
                0,
                0,
                0o100644 << 16,  # external attributes: a regular file, rw-r--r--
                _U32 if far else offset,
            )
            + encoded
            + cd_extra
        )
        offset += len(local) + len(encoded) + len(extra) + size
        count += 1
    directory = b"".join(central)
    yield directory
    cd_offset, cd_size = offset, len(directory)
    if count >= _U16 or cd_offset >= _U32 or cd_size >= _U32:
        zip64_eocd = struct.pack(
            "<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, count, count, cd_size, cd_offset
        )
        locator = struct.pack("<IIQI", 0x07064B50, 0, cd_offset + cd_size, 1)
        yield zip64_eocd + locator
    yield struct.pack(
        "<IHHHHIIH",
        0x06054B50,
        0,
        0,
        min(count, _U16),
        min(count, _U16),
        min(cd_size, _U32),
        min(cd_offset, _U32),
        0,
    )


def tar_stream(entries: Iterable[tuple[str, DemoFile]], *, gzip: bool = False) -> Iterator[bytes]:
    """Yield a tar (or, with `gzip=True`, tar.gz) archive of `entries`."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31) if gzip else None

    def out(data: bytes) -> bytes:
        return compressor.compress(data) if compressor is not None else data

    for name, data in entries:
        info = tarfile.TarInfo(name)
        info.size = data.size
        info.mtime = int(data.mtime)
        info.mode = 0o644
        yield out(info.tobuf(format=tarfile.PAX_FORMAT))
        for chunk in data.chunks():
            piece = out(chunk)
            if piece:
                yield piece
        pad = (-data.size) % tarfile.BLOCKSIZE
        if pad:
            yield out(b"\0" * pad)
    yield out(b"\0" * (2 * tarfile.BLOCKSIZE))
    if compressor is not None:
        yield compressor.flush()
