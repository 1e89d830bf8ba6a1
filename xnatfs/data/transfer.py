"""One download of one file version: the part file a thread writes, and the state readers wait on.

`PartWriter` is the only object a download thread holds: it writes bytes into the transfer's own
part file and hashes them as they go. `Transfer` is its trio side: how much is readable, whether
the file is verified, and who is still reading; readers wait on a trio event for the bytes they
need (no polling).
"""

from __future__ import annotations

import errno
import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from xnatfs.fileversion import FileVersion


class PartWriter:
    """Writes one part file from a worker thread: pwrite + MD5 of everything written in order.

    Nothing else touches its fd from a thread; readers on the trio thread only `pread` bytes that
    a progress report has already announced.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._md5 = hashlib.md5(usedforsecurity=False)
        self.written = 0

    def write(self, offset: int, data: bytes) -> None:
        """Store `data` at `offset` (the next byte: bodies arrive in order); OSError (ENOSPC on
        a short write) when the disk refuses."""
        pwrite_all(self.fd, data, offset)
        self._md5.update(data)
        self.written = offset + len(data)

    def same(self, offset: int, data: bytes) -> bool:
        """Whether `data` equals what was written at `offset` (bytes a resumed body resends)."""
        return pread_all(self.fd, len(data), offset) == data

    def restart(self) -> None:
        """Empty the part file, to write it again from the start."""
        os.ftruncate(self.fd, 0)
        self._md5 = hashlib.md5(usedforsecurity=False)
        self.written = 0

    def hexdigest(self) -> str:
        return self._md5.hexdigest()


@dataclass(eq=False)
class Transfer:
    """One running (or just finished) download of `version` into `part_path`.

    States: running (`done` False) -> done and verified (readers may read to the end; fsync and
    admission follow) or done with `error` -> settled (handed over: its fd closes with its last
    reader). `refs` counts readers attached to it.
    """

    version: FileVersion
    part_path: str
    writer: PartWriter
    done: bool = False
    verified: bool = False
    settled: bool = False
    error: BaseException | None = None
    refs: int = 0
    readable: int = 0  # bytes [0, readable) are on disk and announced
    changed: trio.Event = field(default_factory=trio.Event)
    # Called when a reader is about to wait for bytes that have not arrived (prefetch uses it
    # to fetch a file a reader needs before the bulk download would reach it).
    on_wait: Callable[[Transfer], None] | None = None
    created: float = field(default_factory=time.monotonic)  # for the rate `xnatfs status` shows

    @property
    def fd(self) -> int:
        return self.writer.fd

    def advance(self, written: int) -> None:
        """Progress report (trio thread): bytes [0, written) are readable."""
        self.readable = written
        self._wake()

    def finish(self, error: BaseException | None) -> None:
        self.error = error
        self.done = True
        self._wake()

    def _wake(self) -> None:
        event, self.changed = self.changed, trio.Event()
        event.set()

    async def wait_for(self, end: int) -> None:
        """Wait until bytes [0, end) are readable; `end` at or past EOF waits for verification."""
        while True:
            if self.error is not None:
                raise self.error
            if self.done:
                return
            # Bytes before the end are served as they arrive; the last byte only after the
            # whole file has been verified. With no size in the listing, EOF is unknown.
            size = self.version.size
            if (size is None or end < size) and self.readable >= end:
                return
            await self.changed.wait()


def pwrite_all(fd: int, data: bytes, offset: int) -> None:
    """Write all of `data` at `offset`, or raise.

    `pwrite` may write less than asked when the disk fills up; ignoring that would leave a hole
    behind bytes that were hashed and reported as written, and so serve and cache wrong bytes.
    """
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        if n <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[n:]
        offset += n


def pread_all(fd: int, size: int, offset: int) -> bytes:
    """Up to `size` bytes at `offset`, short only at EOF (pyfuse3 pads short reads with zeroes
    unless at EOF, so a single short `pread` must never reach the kernel)."""
    chunks = []
    while size > 0:
        data = os.pread(fd, size, offset)
        if not data:
            break
        chunks.append(data)
        size -= len(data)
        offset += len(data)
    return b"".join(chunks)
