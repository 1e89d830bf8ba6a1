"""Read a zip archive as it streams in, entry by entry, without its central directory.

XNAT streams `format=zip` without a Content-Length and writes the central directory last, so the
archive is read front to back from local file headers. XNAT's STORED entries carry their CRC and
sizes in the local header (Java's ZipOutputStream requires them for STORED); DEFLATED entries are
decompressed until the deflate stream ends, so a trailing data descriptor is fine for them.
STORED entries with a data descriptor (sizes unknown up front) cannot be delimited safely and
raise `ZipFormatError`, so the caller falls back to per-file downloads.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

LOCAL_HEADER = 0x04034B50
CENTRAL_HEADER = 0x02014B50
END_OF_CENTRAL = 0x06054B50
DATA_DESCRIPTOR = 0x08074B50
_LOCAL = struct.Struct("<IHHHHHIIIHH")
_FLAG_DESCRIPTOR = 0x08
_FLAG_UTF8 = 0x800
_STORED, _DEFLATED = 0, 8


class ZipFormatError(Exception):
    """The stream is not a zip this reader can follow."""


@dataclass(frozen=True)
class ZipEntry:
    name: str
    size: int | None  # uncompressed size, when the header says
    crc: int


class _Stream:
    """Exact and partial reads over an iterator of byte chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = bytearray()
        self._pos = 0

    def _fill(self) -> bool:
        for chunk in self._chunks:
            if chunk:
                if self._pos:
                    del self._buf[: self._pos]
                    self._pos = 0
                self._buf += chunk
                return True
        return False

    def exact(self, n: int) -> bytes:
        while len(self._buf) - self._pos < n:
            if not self._fill():
                raise ZipFormatError("archive ends in the middle of an entry")
        data = bytes(self._buf[self._pos : self._pos + n])
        self._pos += n
        return data

    def some(self, limit: int) -> bytes:
        if len(self._buf) == self._pos and not self._fill():
            return b""
        end = min(len(self._buf), self._pos + limit)
        data = bytes(self._buf[self._pos : end])
        self._pos = end
        return data

    def unread(self, data: bytes) -> None:
        self._buf[self._pos : self._pos] = data


def iter_zip(
    chunks: Iterator[bytes], chunk_size: int = 256 * 1024
) -> Iterator[tuple[ZipEntry, Iterator[bytes]]]:
    """Yield `(entry, data)` for each file entry; `data` yields its uncompressed bytes.

    Consume (or abandon) each entry's `data` before asking for the next entry. Directory entries
    are skipped. Each entry's CRC-32 is checked when its data has been read.
    """
    stream = _Stream(chunks)
    while True:
        head = stream.some(4)
        if not head:
            return
        if len(head) < 4:
            head += stream.exact(4 - len(head))
        (sig,) = struct.unpack("<I", head)
        if sig in (CENTRAL_HEADER, END_OF_CENTRAL):
            return
        if sig != LOCAL_HEADER:
            raise ZipFormatError(f"unexpected zip record {sig:#x}")
        fields = _LOCAL.unpack(head + stream.exact(_LOCAL.size - 4))
        _, _, flags, method, _, _, crc, csize, usize, name_len, extra_len = fields
        raw_name = stream.exact(name_len)
        extra = stream.exact(extra_len)
        name = raw_name.decode("utf-8" if flags & _FLAG_UTF8 else "cp437")
        if usize == 0xFFFFFFFF or csize == 0xFFFFFFFF:
            usize, csize = _zip64_sizes(extra, usize, csize)
        described = bool(flags & _FLAG_DESCRIPTOR)
        if method == _STORED:
            if described and csize == 0 and usize == 0 and not name.endswith("/"):
                raise ZipFormatError(f"{name}: stored entry without sizes in its header")
            data = _stored(stream, csize, crc, name, chunk_size)
        elif method == _DEFLATED:
            data = _deflated(stream, chunk_size)
        else:
            raise ZipFormatError(f"{name}: compression method {method} is not supported")
        entry = ZipEntry(name, None if described else usize, crc)
        if name.endswith("/"):
            for _ in data:
                pass
        else:
            yield entry, data
            for _ in data:  # drain what the caller did not read
                pass
        if described:
            _skip_descriptor(stream, zip64=usize == 0xFFFFFFFF)


def _zip64_sizes(extra: bytes, usize: int, csize: int) -> tuple[int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + length]
        if tag == 0x0001:
            values = list(struct.unpack_from(f"<{len(body) // 8}Q", body))
            if usize == 0xFFFFFFFF and values:
                usize = values.pop(0)
            if csize == 0xFFFFFFFF and values:
                csize = values.pop(0)
            return usize, csize
        pos += 4 + length
    raise ZipFormatError("zip64 sizes missing")


def _stored(stream: _Stream, size: int, crc: int, name: str, chunk_size: int) -> Iterator[bytes]:
    left = size
    running = 0
    while left > 0:
        data = stream.some(min(left, chunk_size))
        if not data:
            raise ZipFormatError(f"{name}: archive ends inside the entry")
        left -= len(data)
        running = zlib.crc32(data, running)
        yield data
    if running != crc:
        raise ZipFormatError(f"{name}: CRC mismatch in the archive")


def _deflated(stream: _Stream, chunk_size: int) -> Iterator[bytes]:
    inflater = zlib.decompressobj(-15)
    while not inflater.eof:
        data = stream.some(chunk_size)
        if not data:
            raise ZipFormatError("archive ends inside a compressed entry")
        out = inflater.decompress(data)
        if inflater.unused_data:
            stream.unread(inflater.unused_data)
        if out:
            yield out


def _skip_descriptor(stream: _Stream, zip64: bool) -> None:
    head = stream.exact(4)
    if struct.unpack("<I", head)[0] != DATA_DESCRIPTOR:
        stream.unread(head)  # the signature is optional
    stream.exact(20 if zip64 else 12)
