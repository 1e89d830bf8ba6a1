"""One streamed archive filling many claimed transfers.

The archive thread holds one `ZipBulk`: it reads the zip front to back (`zipstream.iter_zip`),
attributes each entry to the one listed file its full name proves (`xnat.archive.ArchiveIndex`),
and writes it through that transfer's `PartWriter`, reporting progress and each finished entry
to trio through `post`. Nothing else is written anywhere.

A reader waiting for a file the stream will reach only after a long wait takes it out of the
bulk (`steal`, trio side) and fetches it with its own GET, so the file somebody waits for comes
first. How long is estimated from the stream's rate and the bytes before the file: a reader
that reads the series out of order (cp reads in inode order, which is not listing order) waits
for a stream that is about to deliver its file rather than downloading it twice. Which side
owns a transfer is decided by one `dict.setdefault`, atomic under the GIL (a C-level call on
objects with identity hashing), so the thread and trio never both write the same file and no
lock is shared between them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from xnatfs.data.transfer import Transfer
from xnatfs.data.zipstream import iter_zip
from xnatfs.errors import Unavailable
from xnatfs.remote import Post, Stop
from xnatfs.xnat.archive import ArchiveIndex

_STREAM, _STOLEN = "stream", "stolen"


class ZipBulk:
    """Claimed transfers (by canonical URI, in listing order) and the archive that fills them.

    `entry_done(transfer, md5_hex)` runs on the trio thread after each written entry. After
    `consume` returns or raises, `handed` lists the transfers the stream wrote completely and
    `begun` those it started writing.
    """

    def __init__(
        self,
        claimed: dict[str, Transfer],
        index: ArchiveIndex,
        entry_done: Callable[[Transfer, str], None],
        *,
        lead: int = 4,
        patience: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.claimed = claimed
        self.index = index
        self._entry_done = entry_done
        self._lead = lead  # files within this distance of the stream are left to it
        self._patience = patience  # seconds a reader may wait for the stream to reach its file
        self._clock = clock
        self._position = {t: i for i, t in enumerate(claimed.values())}
        # Bytes of the claimed files before each one: how far the stream has to go.
        self._before: list[int] = []
        total = 0
        for t in claimed.values():
            self._before.append(total)
            total += t.version.size or 0
        self._owner: dict[Transfer, str] = {}
        self._current = -1
        self._streamed = 0  # bytes of claimed files the stream has delivered
        self._started: float | None = None
        self.handed: list[Transfer] = []

    @property
    def begun(self) -> list[Transfer]:
        return [t for t, who in list(self._owner.items()) if who == _STREAM]

    @property
    def stolen(self) -> list[Transfer]:
        return [t for t, who in list(self._owner.items()) if who == _STOLEN]

    def consume(self, chunks: Iterator[bytes], post: Post, stop: Stop) -> None:
        """Worker thread: write every attributable entry into its claimed transfer."""
        for entry, body in iter_zip(chunks):
            m = self.index.match(entry.name)
            t = self.claimed.get(m.key) if m is not None else None
            if t is None or self._owner.setdefault(t, _STREAM) != _STREAM:
                continue
            self._current = self._position[t]
            if self._started is None:
                self._started = self._clock()
            writer = t.writer
            offset = 0
            for data in body:
                writer.write(offset, data)
                offset += len(data)
                self._streamed += len(data)
                post(t.advance, offset)
            self.handed.append(t)
            post(self._entry_done, t, writer.hexdigest())
            if stop.is_set():
                raise Unavailable("the archive download was stopped")

    def steal(self, t: Transfer) -> bool:
        """Trio side: take `t` for its own GET if the stream has not begun it and will not reach
        it within `patience` seconds at its rate so far (any file more than `lead` files ahead
        before the stream has delivered a byte); True when taken."""
        position = self._position[t]
        if t in self._owner or position - self._current <= self._lead:
            return False
        started, streamed = self._started, self._streamed
        if started is not None and streamed > 0:
            elapsed = self._clock() - started
            ahead = self._before[position] - streamed
            if ahead * elapsed / streamed <= self._patience:
                return False  # the stream brings it soon: waiting beats a second download
        return self._owner.setdefault(t, _STOLEN) == _STOLEN
