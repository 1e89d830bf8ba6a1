"""Reading XNAT replies: streamed bodies, login pages, error statuses, headers, JSON listings.

Everything here works on one open reply and knows nothing about sessions or retries; a failure
worth another attempt is raised as `Transient` for the client to retry.

Bounds: a compressed body (`Content-Encoding: gzip` or `deflate`, which listings may be sent
with) is inflated here, a piece of at most the size asked for at a time, so a small reply that
inflates to gigabytes costs no more memory than what its reader keeps; `read_all` refuses a
body past its limit, and `parse_result_set` a listing with more rows than its limit, before
either is held whole.
"""

from __future__ import annotations

import email.utils
import json
import logging
import time
import zlib
from collections.abc import Callable, Collection, Iterator, Mapping

import requests

from xnatfs.errors import AccessDenied, NotFound, ProtocolError, Unavailable
from xnatfs.xnat.retry import describe

log = logging.getLogger("xnatfs.http")

LOGIN_MARKER = b"<!-- BEGIN xnat-templates/screens/Login.vm -->"
# How much of an HTML file reply is held back to look for the login page marker.
HTML_SNIFF = 256 * 1024


class Transient(Exception):
    """A failure worth another attempt; `cause` is a few words, `retry_after` from the server."""

    def __init__(self, cause: str, retry_after: float | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.retry_after = retry_after


class TooLarge(ProtocolError):
    """A reply past a limit the client sets (a listing's size or rows); not worth retrying."""


class Reply:
    """An open streamed response plus any body bytes already read while classifying it.

    The body is read as the server sent it and inflated here when it is compressed (gzip or
    deflate; any other `Content-Encoding` is a ProtocolError at the first read): never more than
    the `size` asked for comes out of one `read_some`, whatever the compression ratio.
    """

    def __init__(self, resp: requests.Response, display: str, started: float) -> None:
        self.resp = resp
        self.head = b""
        self.status = resp.status_code
        self._display = display
        self._started = started
        self._bytes = 0
        self._closed = False
        self._inflater: _Inflater | None = None
        self._encoding = resp.headers.get("Content-Encoding", "").strip().lower()
        if self._encoding in ("gzip", "x-gzip", "deflate"):
            self._inflater = _Inflater(self._encoding)

    @property
    def headers(self) -> Mapping[str, str]:
        return self.resp.headers

    def read_some(self, size: int) -> bytes:
        """What the socket has (at most `size` bytes, at least one unless at the end), inflated
        when the body is compressed."""
        if self._inflater is not None:
            data = self._inflater.read(size, self._read_raw, self._display)
        elif self._encoding in ("", "identity"):
            data = self._read_raw(size)
        else:
            raise ProtocolError(
                f"GET {self._display}: unsupported Content-Encoding {self._encoding[:40]!r}"
            )
        self._bytes += len(data)
        return data

    def _read_raw(self, size: int) -> bytes:
        try:
            data: bytes = self.resp.raw.read1(size, decode_content=False)
        except Exception as exc:  # urllib3, http.client and socket errors alike
            raise Transient(describe(exc)) from None
        return data

    def peek(self, limit: int) -> bytes:
        """Read up to `limit` bytes into `head` (for classification) and return them."""
        while len(self.head) < limit:
            data = self.read_some(limit - len(self.head))
            if not data:
                break
            self.head += data
        return self.head

    def chunks(self, size: int) -> Iterator[bytes]:
        if self.head:
            head, self.head = self.head, b""
            yield head
        while data := self.read_some(size):
            yield data

    def read_all(self, limit: int | None = None) -> bytearray:
        """The whole (inflated) body; TooLarge, as soon as it passes `limit` bytes, when given
        (what was read is dropped at once)."""
        body = bytearray()
        for chunk in self.chunks(256 * 1024):
            body += chunk
            if limit is not None and len(body) > limit:
                body.clear()
                raise TooLarge(f"GET {self._display}: the reply is larger than {limit} bytes")
        return body

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.resp.close()
        ms = (time.monotonic() - self._started) * 1000
        log.debug("GET %s -> %d, %d bytes, %.0f ms", self._display, self.status, self._bytes, ms)


def is_login_page(reply: Reply, listing: bool) -> bool:
    """Whether a 200 is XNAT's login page: any HTML reply to a listing; for a file, HTML
    without `Content-Disposition` that contains `LOGIN_MARKER`. Reads into `reply.head`."""
    if reply.status != 200:
        return False
    ctype = reply.headers.get("Content-Type", "").lower()
    if listing:
        head = reply.peek(1024)
        start = head.lstrip()[:15].lower()
        if "text/html" in ctype or start.startswith((b"<!doctype", b"<html")):
            reply.peek(HTML_SNIFF)
            return True
        return False
    # A file may legitimately be HTML; XNAT sends files with Content-Disposition.
    if "text/html" in ctype and "Content-Disposition" not in reply.headers:
        return LOGIN_MARKER in reply.peek(HTML_SNIFF)
    return False


Redact = Callable[[str], str]


def status_error(reply: Reply, url: str, redact: Redact = lambda text: text) -> Exception:
    """The error for a refused request: 404/410 -> NotFound, 403 -> AccessDenied, 5xx ->
    Unavailable, anything else -> ProtocolError; with the server's message when it has one,
    passed through `redact` (a server may repeat the credentials it was sent)."""
    status = reply.status
    message = server_message(reply, redact)
    detail = f": {message}" if message else ""
    if status == 404 or status == 410:
        return NotFound(f"not found: {url}{detail}")
    if status == 403:
        return AccessDenied(f"access denied: {url}{detail}")
    if status >= 500:
        return Unavailable(f"GET {url}: server error {status}{detail}")
    return ProtocolError(f"GET {url}: unexpected HTTP {status}{detail}")


def server_message(reply: Reply, redact: Redact = lambda text: text) -> str:
    """The `<h3>` of a Restlet status page, or a short plain-text body; "" otherwise. `redact`
    sees the whole body first, before it is shortened or its spaces folded."""
    try:
        body = reply.peek(4096)
    except Transient:
        return ""
    text = redact(body.decode("utf-8", "replace"))
    lower = text.lower()
    if "<h3>" in lower and "</h3>" in lower:
        text = text[lower.index("<h3>") + 4 : lower.index("</h3>")]
    elif "<" in text:
        return ""
    text = " ".join(text.split())
    return text[:200]


def body_extent(reply: Reply, path: str) -> tuple[int | None, int]:
    """(full file length if known, offset of the first body byte)."""
    encoding = reply.headers.get("Content-Encoding", "identity").lower()
    if encoding not in ("", "identity"):
        return None, 0
    length = int_header(reply.headers.get("Content-Length"))
    if reply.status != 206:
        return length, 0
    content_range = reply.headers.get("Content-Range", "")
    try:
        unit, _, spec = content_range.partition(" ")
        span, _, total = spec.partition("/")
        first, _, _last = span.partition("-")
        if unit != "bytes":
            raise ValueError(unit)
        return (None if total == "*" else int(total)), int(first)
    except ValueError:
        raise ProtocolError(f"GET {path}: malformed Content-Range") from None


def int_header(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        number = int(value.strip())
    except ValueError:
        return None
    return number if number >= 0 else None


def http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


# Cells at most this long are shared between rows when equal (types, collections, sizes, IDs
# that repeat in every row of a big listing): one string instead of one per row.
_SHARED_CELL = 40
# The keys of the two objects around the rows.
_ENVELOPE = frozenset({"ResultSet", "Result"})


class _TooManyRows(Exception):
    pass


def parse_result_set(
    body: bytes | bytearray,
    url: str,
    *,
    columns: Collection[str] | None = None,
    max_rows: int | None = None,
) -> list[dict[str, str]]:
    """Validate `{"ResultSet": {"Result": [...]}}` and return its rows with string values.

    `columns`: the only keys kept in each row (None: all); `max_rows`: more rows than this are
    TooLarge, raised while parsing (before they are all held). A `bytearray` body is emptied
    once decoded, so the bytes and their text are never held together with the rows.

    Bytes that are not UTF-8 inside one cell are kept as surrogate escapes (`os.fsencode`
    turns them back into the same bytes), so one odd row never makes the listing unreadable;
    a row that is not an object, or that holds a cell that is not a plain value, is left out
    with one log line. Raises ProtocolError for a body that is not such a document.
    """
    text = body.decode("utf-8", "surrogateescape")
    if isinstance(body, bytearray):
        body.clear()
    keep = None if columns is None else frozenset(columns) | _ENVELOPE
    shared: dict[str, str] = {}
    objects = 0

    def plain(pairs: list[tuple[str, object]]) -> dict[str, object]:
        # Every JSON object comes here, innermost first: each row, then the two around them.
        nonlocal objects
        objects += 1
        if max_rows is not None and objects > max_rows + 2:
            raise _TooManyRows
        row: dict[str, object] = {}
        for key, value in pairs:
            if keep is not None and key not in keep:
                continue
            if type(value) is str:
                if len(value) <= _SHARED_CELL:
                    value = shared.setdefault(value, value)
            elif value is None:
                value = ""
            elif type(value) is bool:
                value = "true" if value else "false"
            elif type(value) in (int, float):
                value = str(value)
            row[key] = value
        return row

    try:
        doc = json.loads(text, object_pairs_hook=plain)
    except _TooManyRows:
        raise TooLarge(f"GET {url}: the listing has more than {max_rows} rows") from None
    except ValueError:
        raise ProtocolError(f"GET {url}: the reply is not JSON") from None
    finally:
        del text
    result_set = doc.get("ResultSet") if isinstance(doc, dict) else None
    rows = result_set.get("Result") if isinstance(result_set, dict) else None
    if not isinstance(rows, list):
        raise ProtocolError(f"GET {url}: the reply has no ResultSet.Result list")
    out: list[dict[str, str]] = [
        row for row in rows if isinstance(row, dict) and all(type(v) is str for v in row.values())
    ]
    if len(out) < len(rows):
        log.warning(
            "leaving out %d row(s) of %s that are not objects of plain values",
            len(rows) - len(out),
            url,
        )
    return out


class _Inflater:
    """Inflates a gzip or deflate body a bounded piece at a time.

    Gzip bodies may hold several members one after the other (each is inflated in turn); bytes
    after the last member that are not another member are ignored, as browsers do. `deflate`
    is zlib-wrapped by the standard, but some servers send it raw: both are read.
    """

    def __init__(self, encoding: str) -> None:
        self._gzip = encoding != "deflate"
        self._wbits = 16 + zlib.MAX_WBITS if self._gzip else zlib.MAX_WBITS
        self._z = zlib.decompressobj(self._wbits)
        self._pending = b""  # compressed bytes read but not yet given to `_z`
        self._started = False
        self._done = False

    def read(self, size: int, read_raw: Callable[[int], bytes], display: str) -> bytes:
        """At most `size` inflated bytes (b"" at the end); ProtocolError for corrupt data,
        Transient for a body cut off inside the compressed stream."""
        while not self._done:
            z = self._z
            if z.unconsumed_tail:
                data = z.unconsumed_tail
            else:
                data = self._pending or (z.eof and z.unused_data) or read_raw(size)
                self._pending = b""
                if not data:
                    if self._started and not z.eof:
                        raise Transient("connection closed before the reply was complete")
                    self._done = True
                    break
                if z.eof:
                    if not (self._gzip and data.startswith(b"\x1f\x8b")):
                        self._done = True  # bytes after the last member
                        break
                    z = self._z = zlib.decompressobj(self._wbits)
            try:
                out = z.decompress(data, size)
            except zlib.error:
                if self._gzip or self._started or self._wbits < 0:
                    raise ProtocolError(f"GET {display}: corrupt compressed reply") from None
                # `deflate` sent raw, without the zlib wrapper the standard asks for.
                self._wbits = -zlib.MAX_WBITS
                self._z = zlib.decompressobj(self._wbits)
                self._pending = data
                continue
            self._started = True
            if out:
                return out
        return b""
