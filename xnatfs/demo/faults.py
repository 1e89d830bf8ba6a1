"""Switches that make the demo server slow, flaky or hostile, and the log tests assert on.

`Faults` may be changed from any thread while the server runs; every switch takes effect at the
next request (or the next body chunk, for body rules). Plain attributes are read without a lock
(single assignments are atomic); the counted rules use `_lock`.

    faults.latency = 0.02                  # seconds added before every response
    faults.bandwidth = 10_000_000          # bytes/s, per response (0 = unlimited)
    faults.fail_next(2, 503, retry_after=1, path_regex=r"/files/")
    faults.cut_body(after_bytes=1000)      # send 1000 body bytes, then close the connection
    faults.stall_body(after_bytes=0, seconds=5)
    faults.corrupt(r"/scans/1/.*\\.dcm$")   # same length, different bytes
    faults.session_expiry = 2.0; faults.expiry_mode = "login_page"
    faults.range_support = True            # honour Range like a range-capable proxy would
    faults.zip_structure = "simplified"    # archives in this layout, whatever was asked
    faults.down = True                     # close every connection without an answer
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

ExpiryMode = Literal["401", "login_page"]
Kind = Literal["listing", "item", "file", "zip", "auth", "other", "unknown"]


@dataclass
class _FailureRule:
    remaining: int
    status: int
    retry_after: float | None
    pattern: re.Pattern[str] | None


@dataclass
class BodyRule:
    """Cut (close the connection) or stall (sleep `seconds`) once `after_bytes` of a response
    body have been sent. `remaining` counts the responses still affected (None = all)."""

    action: Literal["cut", "stall"]
    after_bytes: int
    seconds: float
    remaining: int | None
    pattern: re.Pattern[str] | None


def _compile(path_regex: str | None) -> re.Pattern[str] | None:
    return re.compile(path_regex) if path_regex is not None else None


class Faults:
    """Fault injection switches; see the module docstring. `clear()` restores the defaults."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        with self._lock:
            self.latency: float = 0.0
            self.bandwidth: int = 0
            self.range_support: bool = False
            # Archive layout used whatever `structure=` the request names (None: as asked),
            # for servers whose default layout differs (reference §4.2).
            self.zip_structure: str | None = None
            self.session_expiry: float | None = 900.0  # XNAT's default: 15 idle minutes
            self.expiry_mode: ExpiryMode = "401"
            self.down: bool = False
            self._failures: list[_FailureRule] = []
            self._body_rules: list[BodyRule] = []
            self._corrupt: list[re.Pattern[str]] = []

    # --- failures -------------------------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        *,
        retry_after: float | None = None,
        path_regex: str | None = None,
    ) -> None:
        """Answer the next `n` requests whose path matches `path_regex` (all if None) with
        `status` (and `Retry-After` when given) instead of serving them."""
        with self._lock:
            self._failures.append(_FailureRule(n, status, retry_after, _compile(path_regex)))

    def take_failure(self, path: str) -> tuple[int, float | None] | None:
        """Consume one matching failure for a request to `path`: (status, retry_after)."""
        with self._lock:
            for rule in self._failures:
                if rule.remaining > 0 and (rule.pattern is None or rule.pattern.search(path)):
                    rule.remaining -= 1
                    return rule.status, rule.retry_after
        return None

    # --- body rules -----------------------------------------------------------------------------

    def cut_body(
        self, after_bytes: int, *, times: int | None = None, path_regex: str | None = None
    ) -> None:
        """Close the connection after `after_bytes` body bytes of matching responses."""
        with self._lock:
            self._body_rules.append(BodyRule("cut", after_bytes, 0.0, times, _compile(path_regex)))

    def stall_body(
        self,
        after_bytes: int,
        seconds: float,
        *,
        times: int | None = None,
        path_regex: str | None = None,
    ) -> None:
        """Pause `seconds` after `after_bytes` body bytes of matching responses."""
        with self._lock:
            self._body_rules.append(
                BodyRule("stall", after_bytes, seconds, times, _compile(path_regex))
            )

    def take_body_rules(self, path: str) -> list[BodyRule]:
        """The body rules that apply to one response to `path` (their counts are consumed)."""
        out = []
        with self._lock:
            for rule in self._body_rules:
                if rule.remaining == 0:
                    continue
                if rule.pattern is not None and not rule.pattern.search(path):
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                out.append(rule)
        return sorted(out, key=lambda r: r.after_bytes)

    # --- corruption -----------------------------------------------------------------------------

    def corrupt(self, path_regex: str) -> None:
        """Serve different bytes (same length) for files whose URI or request path matches."""
        with self._lock:
            self._corrupt.append(re.compile(path_regex))

    def is_corrupt(self, *paths: str) -> bool:
        with self._lock:
            patterns = list(self._corrupt)
        return any(p.search(path) for p in patterns for path in paths)


def corrupted(chunk: bytes) -> bytes:
    """The same number of bytes, every one of them different."""
    return chunk.translate(_FLIP)


_FLIP = bytes((b ^ 0x5A) for b in range(256))


@dataclass(frozen=True)
class LogEntry:
    method: str
    path: str  # as received, without the query string
    query: str
    status: int
    kind: Kind
    bytes_sent: int  # body bytes
    user: str
    started: float = field(default_factory=time.time)


class RequestLog:
    """Every request the server answered (or dropped), in order; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[LogEntry] = []

    def record(self, entry: LogEntry) -> None:
        with self._lock:
            self._entries.append(entry)

    def reset(self) -> None:
        with self._lock:
            self._entries.clear()

    def entries(self) -> list[LogEntry]:
        with self._lock:
            return list(self._entries)

    def count(
        self,
        *,
        kind: Kind | None = None,
        method: str | None = None,
        path_contains: str | None = None,
        status: int | None = None,
    ) -> int:
        """How many logged requests match every given criterion."""
        return sum(
            1
            for e in self.entries()
            if (kind is None or e.kind == kind)
            and (method is None or e.method == method)
            and (path_contains is None or path_contains in e.path)
            and (status is None or e.status == status)
        )

    @property
    def total(self) -> int:
        return len(self.entries())

    @property
    def listings(self) -> int:
        return self.count(kind="listing")

    @property
    def files(self) -> int:
        return self.count(kind="file")

    @property
    def zips(self) -> int:
        return self.count(kind="zip")

    @property
    def auths(self) -> int:
        return self.count(kind="auth")

    @property
    def bytes_sent(self) -> int:
        return sum(e.bytes_sent for e in self.entries())

    def by_kind(self) -> Counter[str]:
        return Counter(e.kind for e in self.entries())
