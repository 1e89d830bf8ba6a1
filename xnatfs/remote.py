"""The one place where network work crosses from trio into worker threads.

`XnatClient` (requests, blocking) runs only inside `trio.to_thread.run_sync`, limited by a
dedicated `CapacityLimiter` sized by `--max-connections`, so no FUSE handler ever blocks the event
loop and the server never sees more parallel requests than configured. Threads get only immutable
arguments and callbacks that touch file descriptors; all shared state stays in trio tasks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from functools import partial

import trio

from xnatfs.xnat.client import DownloadInfo, XnatClient

WriteCallback = Callable[[int, bytes], None]
SameCallback = Callable[[int, bytes], bool]


class AsyncXnat:
    """Async facade over a blocking `XnatClient`."""

    def __init__(self, client: XnatClient, max_connections: int) -> None:
        self.client = client
        self.limiter = trio.CapacityLimiter(max_connections)

    async def list(
        self, path: str, params: Mapping[str, str] | None = None
    ) -> list[dict[str, str]]:
        return await trio.to_thread.run_sync(
            partial(self.client.list, path, params), limiter=self.limiter
        )

    async def download(
        self,
        path: str,
        write: WriteCallback,
        same: SameCallback,
        cancel: threading.Event,
        params: Mapping[str, str] | None = None,
    ) -> DownloadInfo:
        """Stream `path` into `write(offset, chunk)`, called in the worker thread in order;
        bytes a resumed body sends again are checked with `same(offset, chunk)`."""
        return await trio.to_thread.run_sync(
            partial(self.client.download, path, write, same=same, cancel=cancel, params=params),
            limiter=self.limiter,
        )

    async def run(self, fn: Callable[[], object]) -> object:
        """Run another blocking client call under the same limiter."""
        return await trio.to_thread.run_sync(fn, limiter=self.limiter)
