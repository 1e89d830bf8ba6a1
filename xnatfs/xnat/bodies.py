"""File bodies over the client's requests: resumable downloads, archive streams and sizes.

These take the `XnatClient` as a `Requester` (how to open one reply with retries and re-
authentication); the client's `download`, `stream`, `size_of` and `probe_ranges` are these.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from xnatfs.errors import IntegrityError, ProtocolError, Unavailable
from xnatfs.xnat.replies import Reply, Transient, body_extent, http_date
from xnatfs.xnat.retry import Attempts

WriteCallback = Callable[[int, bytes], None]
SameCallback = Callable[[int, bytes], bool]


class Requester(Protocol):
    """What the body functions need of the client (`XnatClient`)."""

    def open_reply(
        self,
        path: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str],
        attempts: Attempts,
        *,
        listing: bool,
        method: str = "GET",
    ) -> Reply:
        """Send until a reply worth reading arrives (see `XnatClient.open_reply`)."""

    def attempts(self, method: str, path: str, cancel: threading.Event | None) -> Attempts:
        """The retry budget of one logical request."""

    def retry_or_raise(self, attempts: Attempts, exc: Transient) -> None:
        """Wait before the next attempt, or raise when the budget is spent."""

    def url(self, path: str) -> str:
        """The full URL of `path`, for messages (never with credentials)."""


@dataclass(frozen=True)
class DownloadInfo:
    """What a finished download learned about the file.

    `size` is the number of bytes delivered; `status` the HTTP status of the first reply;
    `last_modified` epoch seconds from `Last-Modified` (or None); `ranges_supported` is True when
    the server answered a `Range` with 206 or announced `Accept-Ranges: bytes`.
    """

    size: int
    status: int
    content_type: str
    last_modified: float | None
    ranges_supported: bool


def download(
    client: Requester,
    path: str,
    write: WriteCallback,
    *,
    same: SameCallback | None = None,
    cancel: threading.Event | None = None,
    params: Mapping[str, str] | None = None,
    chunk_size: int = 256 * 1024,
) -> DownloadInfo:
    """Stream a file into `write(offset, chunk)`, called in order from this thread.

    Chunks are passed on as the socket delivers them (at most `chunk_size` bytes each). A
    connection lost mid-body is retried within the retry budget (which restarts whenever
    bytes arrived), and what follows must provably be the same file version: a `Range`
    from the first missing byte is sent only with `If-Range` naming the first reply's
    `ETag` or `Last-Modified`, so a changed file comes back whole; a whole body (a server
    that ignores `Range`, or none was sent) is read again from the start, and the bytes
    already delivered are compared with `same(offset, chunk)` (True when they equal what
    was written there) instead of being trusted. A body shorter than `Content-Length`
    counts as lost. Raises IntegrityError if the file's length, validators or re-sent bytes
    change between attempts, Unavailable once `cancel` is set. `chunk_size` defaults to the
    client's.
    """
    attempts = client.attempts("GET", path, cancel)
    delivered = 0
    first: _FirstReply | None = None
    ranges_supported = False
    try_range = True
    while True:
        headers = {"Accept-Encoding": "identity"}
        validator = first.validator if first is not None else None
        if delivered and try_range and validator is not None:
            headers["Range"] = f"bytes={delivered}-"
            headers["If-Range"] = validator
        reply = client.open_reply(path, params, headers, attempts, listing=False)
        before = delivered
        try:
            if reply.status == 416 and "Range" in headers:
                try_range = False
                continue
            if reply.status not in (200, 206) or (reply.status == 206 and "Range" not in headers):
                raise ProtocolError(f"GET {client.url(path)}: unexpected HTTP {reply.status}")
            total, start = body_extent(reply, path)
            if reply.status == 206:
                ranges_supported = True
                if start != delivered:
                    raise ProtocolError(
                        f"GET {client.url(path)}: asked for bytes from {delivered}, got {start}"
                    )
            elif "Range" in headers:
                try_range = False  # the server sends whole files; compare instead
            this = _FirstReply.of(reply, total)
            if first is None:
                first = this
                accept = reply.headers.get("Accept-Ranges", "").lower()
                ranges_supported = ranges_supported or accept == "bytes"
            elif first.differs(this):
                raise IntegrityError(
                    f"GET {client.url(path)}: the file changed on the server during the download"
                )
            pos = start
            for chunk in reply.chunks(chunk_size):
                attempts.check_cancel()
                end = pos + len(chunk)
                if pos < delivered:
                    # Bytes delivered before: proven equal, never trusted blindly.
                    seen = chunk[: delivered - pos]
                    if same is not None and not same(pos, seen):
                        raise IntegrityError(
                            f"GET {client.url(path)}: the file changed on the server "
                            "during the download"
                        )
                if end > delivered:
                    piece = chunk[delivered - pos :] if pos < delivered else chunk
                    write(delivered, piece)
                    delivered += len(piece)
                pos = end
            if total is not None and delivered != total:
                raise Transient("connection closed before the reply was complete")
            return DownloadInfo(
                delivered, first.status, first.content_type, first.mtime, ranges_supported
            )
        except Transient as exc:
            if delivered > before:
                attempts.progressed()
            client.retry_or_raise(attempts, exc)
        finally:
            reply.close()


@contextmanager
def stream(
    client: Requester,
    path: str,
    params: Mapping[str, str] | None = None,
    chunk_size: int = 256 * 1024,
) -> Iterator[Iterator[bytes]]:
    """A streamed body (e.g. `format=zip`, no Content-Length) as an iterator of chunks.

    Failures before the body starts are retried; a connection lost in the body raises
    Unavailable from the iterator (an archive stream cannot be resumed).
    """
    attempts = client.attempts("GET", path, None)
    reply = client.open_reply(
        path, params, {"Accept-Encoding": "identity"}, attempts, listing=False
    )
    url = client.url(path)

    def body() -> Iterator[bytes]:
        try:
            yield from reply.chunks(chunk_size)
        except Transient as exc:
            raise Unavailable(f"GET {url}: {exc.cause}") from None

    try:
        if reply.status != 200:
            raise ProtocolError(f"GET {url}: unexpected HTTP {reply.status}")
        yield body()
    finally:
        reply.close()


def probe_ranges(client: Requester, path: str) -> bool:
    """True only if the server answers `Range: bytes=0-0` on `path` with 206."""
    headers = {"Range": "bytes=0-0", "Accept-Encoding": "identity"}
    reply = client.open_reply(
        path, None, headers, client.attempts("GET", path, None), listing=False
    )
    reply.close()
    return reply.status == 206


def size_of(client: Requester, path: str) -> int | None:
    """The length of the file at `path` without its body: from a HEAD, or, where HEAD is
    refused (405, 501), from the headers of a GET whose body is never read. None when the
    server does not say (no Content-Length). Errors as for `download`."""
    headers = {"Accept-Encoding": "identity"}
    attempts = client.attempts("HEAD", path, None)
    for method in ("HEAD", "GET"):
        try:
            reply = client.open_reply(path, None, headers, attempts, listing=False, method=method)
        except (ProtocolError, Unavailable):
            if method == "GET":
                raise
            continue  # HEAD refused (or broken behind a proxy): ask with GET
        try:
            total, _start = body_extent(reply, path)
            return total
        finally:
            reply.close()
    return None  # pragma: no cover - the loop returns or raises


def _differs(a: object, b: object) -> bool:
    return a is not None and b is not None and a != b


@dataclass(frozen=True)
class _FirstReply:
    """What one reply says about the file version it carries."""

    status: int
    content_type: str
    mtime: float | None
    size: int | None
    etag: str | None
    last_modified: str | None

    @classmethod
    def of(cls, reply: Reply, size: int | None) -> _FirstReply:
        last_modified = reply.headers.get("Last-Modified")
        return cls(
            status=reply.status,
            content_type=reply.headers.get("Content-Type", ""),
            mtime=http_date(last_modified),
            size=size,
            etag=reply.headers.get("ETag"),
            last_modified=last_modified,
        )

    @property
    def validator(self) -> str | None:
        """The `If-Range` value that makes a server send the rest of this version only."""
        if self.etag and not self.etag.startswith("W/"):
            return self.etag
        return self.last_modified or None

    def differs(self, later: _FirstReply) -> bool:
        return (
            _differs(self.size, later.size)
            or _differs(self.mtime, later.mtime)
            or _differs(self.etag, later.etag)
        )
