"""Reading XNAT replies: streamed bodies, login pages, error statuses, headers, JSON listings.

Everything here works on one open reply and knows nothing about sessions or retries; a failure
worth another attempt is raised as `Transient` for the client to retry.
"""

from __future__ import annotations

import email.utils
import json
import logging
import time
from collections.abc import Iterator, Mapping

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


class Reply:
    """An open streamed response plus any body bytes already read while classifying it."""

    def __init__(self, resp: requests.Response, display: str, started: float) -> None:
        self.resp = resp
        self.head = b""
        self.status = resp.status_code
        self._display = display
        self._started = started
        self._bytes = 0
        self._closed = False

    @property
    def headers(self) -> Mapping[str, str]:
        return self.resp.headers

    def read_some(self, size: int) -> bytes:
        """What the socket has (at most `size` bytes, at least one unless at the end)."""
        try:
            data: bytes = self.resp.raw.read1(size, decode_content=True)
        except Exception as exc:  # urllib3, http.client and socket errors alike
            raise Transient(describe(exc)) from None
        self._bytes += len(data)
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

    def read_all(self) -> bytes:
        return b"".join(self.chunks(256 * 1024))

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


def status_error(reply: Reply, url: str) -> Exception:
    """The error for a refused request: 404/410 -> NotFound, 403 -> AccessDenied, 5xx ->
    Unavailable, anything else -> ProtocolError; with the server's message when it has one."""
    status = reply.status
    message = server_message(reply)
    detail = f": {message}" if message else ""
    if status == 404 or status == 410:
        return NotFound(f"not found: {url}{detail}")
    if status == 403:
        return AccessDenied(f"access denied: {url}{detail}")
    if status >= 500:
        return Unavailable(f"GET {url}: server error {status}{detail}")
    return ProtocolError(f"GET {url}: unexpected HTTP {status}{detail}")


def server_message(reply: Reply) -> str:
    """The `<h3>` of a Restlet status page, or a short plain-text body; "" otherwise."""
    try:
        body = reply.peek(4096)
    except Transient:
        return ""
    text = body.decode("utf-8", "replace")
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


def parse_result_set(body: bytes, url: str) -> list[dict[str, str]]:
    """Validate `{"ResultSet": {"Result": [...]}}` and return its rows with string values.

    Bytes that are not UTF-8 inside one cell are kept as surrogate escapes (`os.fsencode`
    turns them back into the same bytes), so one odd row never makes the listing unreadable.
    """
    try:
        doc = json.loads(body.decode("utf-8", "surrogateescape"))
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError(f"GET {url}: the reply is not JSON") from None
    result_set = doc.get("ResultSet") if isinstance(doc, dict) else None
    rows = result_set.get("Result") if isinstance(result_set, dict) else None
    if not isinstance(rows, list):
        raise ProtocolError(f"GET {url}: the reply has no ResultSet.Result list")
    out: list[dict[str, str]] = []
    for row in rows:
        if not isinstance(row, dict):
            raise ProtocolError(f"GET {url}: a listing row is not an object")
        out.append({str(k): _cell(v, url) for k, v in row.items()})
    return out


def _cell(value: object, url: str) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise ProtocolError(f"GET {url}: a listing cell is not a plain value")
