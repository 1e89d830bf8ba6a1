"""The one place where work crosses between trio and worker threads, in both directions.

pyfuse3 runs every request as a trio task on one thread, so nothing that blocks (HTTP, fsync,
a stat that may hang on a dead mount) may run there. Everything that does goes through this
module:

- `AsyncXnat.list` / `download` / `stream` run the blocking `XnatClient` in worker threads under
  a `CapacityLimiter` sized by `--max-connections`, so the server never sees more parallel
  requests than configured;
- `AsyncXnat.blocking` runs local blocking calls (fsync of finished downloads, the readiness
  statfs of the mount point) under a small separate limiter, and `AsyncXnat.serial` those that
  must not overlap (the metadata store) one at a time;
- a thread reports back with `Post`: `post(fn, *args)` queues `fn(*args)` to run on the trio
  thread, in order, without waiting (`TrioToken.run_sync_soon`), so a download never stalls on a
  busy event loop;
- a thread is asked to stop with a `Stop`, the only threading primitive shared with trio tasks.

Worker threads hold only the small object they write through: a `Writer` (one file's part
file) or a `StreamConsumer` (one archive). Everything else (inode table, listings, in-flight
downloads, the disk cache index) is touched only by trio tasks, so between two `await`s a task
has it to itself.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any, Protocol, TypeVar

import trio

from xnatfs.errors import ProtocolError, Unavailable, XnatfsError
from xnatfs.xnat.bodies import DownloadInfo
from xnatfs.xnat.client import XnatClient

T = TypeVar("T")
Post = Callable[..., None]  # post(fn, *args): fn(*args) soon on the trio thread, in order


class Stop(threading.Event):
    """Set from trio to make a worker thread give up at its next chunk (or retry wait)."""


class Writer(Protocol):
    """What a download thread writes one file's bytes through."""

    def write(self, offset: int, data: bytes) -> None:
        """Store `data` at `offset`; raise OSError when it cannot."""

    def same(self, offset: int, data: bytes) -> bool:
        """Whether `data` equals the bytes already stored at `offset` (a resumed body)."""


class StreamConsumer(Protocol):
    """What an archive thread hands the body of a streamed reply to."""

    def consume(self, chunks: Iterator[bytes], post: Post, stop: Stop) -> None:
        """Read `chunks` to the end (or until `stop`), reporting to trio only through `post`."""


class AsyncXnat:
    """Async facade over a blocking `XnatClient`; see the module docstring.

    `close()` sets every live and future `Stop`, so an unmount ends every transfer promptly.
    """

    def __init__(self, client: XnatClient, max_connections: int, disk_threads: int = 2) -> None:
        self._client = client
        self.limiter = trio.CapacityLimiter(max_connections)
        self._disk = trio.CapacityLimiter(disk_threads)
        self._serial = trio.CapacityLimiter(1)
        self._stops: weakref.WeakSet[Stop] = weakref.WeakSet()
        self._closed = False
        # Whether the server answers: when it last did (epoch seconds), and the last failure
        # to get an answer (epoch seconds, message). A 404 or 403 is an answer.
        self._answered: float | None = None
        self._failure: tuple[float, str] | None = None

    @property
    def closing(self) -> bool:
        return self._closed

    def stop(self) -> Stop:
        """A new stop flag for one transfer (already set once the facade is closed)."""
        flag = Stop()
        if self._closed:
            flag.set()
        self._stops.add(flag)
        return flag

    def stats(self) -> dict[str, object]:
        """The server for the stats xattr: its URL, whether its last reply came (`answers`:
        None before the first request), when it last answered and the last failure to get an
        answer (epoch seconds)."""
        failed_at, failure = self._failure or (None, None)
        answers = None
        if self._answered is not None or failed_at is not None:
            answers = failed_at is None or (self._answered or 0) > failed_at
        return {
            "server": {
                "url": getattr(self._client, "base_url", ""),
                "answers": answers,
                "last_answer": self._answered,
                "last_failure": failure,
                "last_failure_at": failed_at,
            }
        }

    async def _call(self, fn: Callable[[], T]) -> T:
        """`fn()` in a worker thread under the connection limiter, noting whether the server
        answered."""
        try:
            result = await trio.to_thread.run_sync(fn, limiter=self.limiter)
        except (Unavailable, ProtocolError) as exc:
            if not self._closed:
                self._failure = (time.time(), str(exc))
            raise
        except XnatfsError:
            self._answered = time.time()
            raise
        self._answered = time.time()
        return result

    def close(self) -> None:
        """Ask every running and future transfer to stop (unmount)."""
        self._closed = True
        for flag in list(self._stops):
            flag.set()

    async def list(
        self, path: str, params: Mapping[str, str] | None = None
    ) -> list[dict[str, str]]:
        """The rows of one REST listing (`XnatClient.list`)."""
        return await self._call(partial(self._client.list, path, params))

    async def size(self, path: str) -> int | None:
        """The length of the file at `path` without its body (`XnatClient.size_of`)."""
        return await self._call(partial(self._client.size_of, path))

    async def download(
        self,
        path: str,
        writer: Writer,
        progress: Callable[[int], None],
        stop: Stop,
        params: Mapping[str, str] | None = None,
    ) -> DownloadInfo:
        """Stream `path` into `writer` in a worker thread; `progress(bytes written so far)` runs
        on the trio thread after each chunk. Raises what `XnatClient.download` raises."""
        post = self._post()

        def write(offset: int, data: bytes) -> None:
            writer.write(offset, data)
            post(progress, offset + len(data))

        return await self._call(
            partial(
                self._client.download, path, write, same=writer.same, cancel=stop, params=params
            )
        )

    async def stream(
        self,
        path: str,
        params: Mapping[str, str],
        consumer: StreamConsumer,
        stop: Stop,
    ) -> None:
        """Hand the streamed body of `path` (an archive) to `consumer` in a worker thread."""
        post = self._post()

        def run() -> None:
            with self._client.stream(path, params) as chunks:
                consumer.consume(chunks, post, stop)

        await self._call(run)

    async def blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a local blocking call (fsync, stat) in a worker thread, a few at a time."""
        return await trio.to_thread.run_sync(partial(fn, *args), limiter=self._disk)

    async def serial(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a local blocking call in a worker thread, one such call at a time (the metadata
        store's one connection)."""
        return await trio.to_thread.run_sync(partial(fn, *args), limiter=self._serial)

    @staticmethod
    def _post() -> Post:
        token = trio.lowlevel.current_trio_token()
        return token.run_sync_soon
