"""One streamed archive filling many claimed transfers.

The archive thread holds one `ZipBulk`: it reads the zip front to back (`zipstream.iter_zip`),
attributes each entry to the one listed file its full name proves (`xnat.archive.ArchiveIndex`),
and writes it through that transfer's `PartWriter`, reporting progress and each finished entry
to trio through `post`. Nothing else is written anywhere.

A reader waiting for a file far ahead of the stream takes it out of the bulk (`steal`, trio
side) and fetches it with its own GET, so the file somebody waits for comes first. Which side
owns a transfer is decided by one `dict.setdefault`, atomic under the GIL (a C-level call on
objects with identity hashing), so the thread and trio never both write the same file and no
lock is shared between them.
"""

from __future__ import annotations

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
    ) -> None:
        self.claimed = claimed
        self.index = index
        self._entry_done = entry_done
        self._lead = lead  # files within this distance of the stream are left to it
        self._position = {t: i for i, t in enumerate(claimed.values())}
        self._owner: dict[Transfer, str] = {}
        self._current = -1
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
            writer = t.writer
            offset = 0
            for data in body:
                writer.write(offset, data)
                offset += len(data)
                post(t.advance, offset)
            self.handed.append(t)
            post(self._entry_done, t, writer.hexdigest())
            if stop.is_set():
                raise Unavailable("the archive download was stopped")

    def steal(self, t: Transfer) -> bool:
        """Trio side: take `t` for its own GET if the stream is far from it and has not begun
        it; True when taken."""
        if t in self._owner or self._position[t] - self._current <= self._lead:
            return False
        return self._owner.setdefault(t, _STOLEN) == _STOLEN
