"""The per-open state of one file: read from the disk cache, or from a shared download.

`open` downloads nothing. The first read of a file that is not cached attaches this reader to the
file's download (starting one if none runs), and each read waits only for the bytes it needs.
"""

from __future__ import annotations

import os
from typing import Protocol

from xnatfs.data.transfer import Transfer, pread_all
from xnatfs.fileversion import FileVersion
from xnatfs.namespace.values import Source


class Store(Protocol):
    """What a reader needs from the downloads it shares (`xnatfs.data.downloads.Downloads`)."""

    def open_cached(self, version: FileVersion) -> int | None:
        """A read-only fd of the verified cache entry, or None."""

    def attach(self, version: FileVersion, listing: Source | None) -> Transfer:
        """The running download of `version` (started if none), with one more reader."""

    def detach(self, transfer: Transfer) -> None:
        """One reader less."""


class FileReader:
    """Reads of one open file. Trio thread only."""

    def __init__(self, downloads: Store, version: FileVersion, listing: Source | None) -> None:
        self._downloads = downloads
        self.version = version
        self._listing = listing
        self._fd: int | None = None
        self._transfer: Transfer | None = None

    async def read(self, offset: int, size: int) -> bytes:
        """Up to `size` bytes at `offset` (short only at EOF). Raises the download's error
        (EIO family) when the bytes cannot be had; the next read tries again."""
        if self._fd is None:
            failed = self._transfer
            if failed is not None and failed.done and failed.error is not None:
                # The download this reader relied on failed; this read tries again.
                self._downloads.detach(failed)
                self._transfer = None
            if self._transfer is None:
                self._fd = self._downloads.open_cached(self.version)
                if self._fd is None:
                    self._transfer = self._downloads.attach(self.version, self._listing)
        transfer = self._transfer
        if transfer is not None:
            if transfer.on_wait is not None and transfer.readable < offset + size:
                transfer.on_wait(transfer)
            await transfer.wait_for(offset + size)
            return pread_all(transfer.fd, size, offset)
        assert self._fd is not None
        return pread_all(self._fd, size, offset)

    @property
    def learned_size(self) -> int | None:
        """The real size once a download of a file with unknown size has completed."""
        t = self._transfer
        return t.readable if t is not None and t.done and t.error is None else None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._transfer is not None:
            self._downloads.detach(self._transfer)
            self._transfer = None
