"""Bounded retries with jittered exponential backoff, and short causes for transport errors.

One `Attempts` object follows one logical request (a listing, a whole download with its
resumptions). It allows at most `retries` further attempts after the first failure and gives up
once the next wait would end after `deadline` seconds from the start (or from the last progress,
for downloads that resume). Giving up raises `RetriesExhausted`, an `Unavailable` whose message
names the URL and the last cause; URLs built by xnatfs never contain credentials.
"""

from __future__ import annotations

import email.utils
import http.client
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from xnatfs.errors import Unavailable

Clock = Callable[[], float]
Sleep = Callable[[float, "threading.Event | None"], None]


class RetriesExhausted(Unavailable):
    """Every allowed attempt failed; `cause` is the last failure in a few words."""

    def __init__(self, message: str, cause: str) -> None:
        super().__init__(message)
        self.cause = cause


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to keep trying.

    `RetryPolicy(retries=4, deadline=60.0)`: up to 5 attempts, waits of about 0.25, 0.5, 1, 2 s
    (each randomly shortened by up to half), never waiting past 60 s after the first attempt.
    A server's `Retry-After` replaces the computed wait, capped at `max_retry_after`.
    """

    retries: int = 4
    deadline: float = 60.0
    backoff: float = 0.25
    max_backoff: float = 8.0
    max_retry_after: float = 30.0

    def delay(self, failures: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        full = min(self.backoff * 2 ** (failures - 1), self.max_backoff)
        return random.uniform(full / 2, full)


def real_sleep(delay: float, cancel: threading.Event | None) -> None:
    if cancel is None:
        time.sleep(delay)
    else:
        cancel.wait(delay)


class Attempts:
    """The retry budget of one logical request."""

    def __init__(
        self,
        policy: RetryPolicy,
        what: str,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = real_sleep,
        cancel: threading.Event | None = None,
        on_retry: Callable[[str, float], None] | None = None,  # (what failed, wait)
    ) -> None:
        self.policy = policy
        self.what = what
        self.cancel = cancel
        self._clock = clock
        self._sleep = sleep
        self._on_retry = on_retry
        self._start = clock()
        self._failures = 0
        self.attempts = 0

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Unavailable(f"{self.what}: cancelled")

    def progressed(self) -> None:
        """Bytes arrived: the next failure starts a fresh budget (a resumed download)."""
        self._failures = 0
        self._start = self._clock()

    def failed(self, cause: str, retry_after: float | None = None) -> None:
        """Record a retryable failure; wait before the next attempt or raise RetriesExhausted."""
        self._failures += 1
        if self._failures > self.policy.retries:
            tries = "attempt" if self._failures == 1 else "attempts"
            raise RetriesExhausted(
                f"{self.what}: {cause} (gave up after {self._failures} {tries})", cause
            )
        delay = self.policy.delay(self._failures, retry_after)
        if self._clock() - self._start + delay > self.policy.deadline:
            raise RetriesExhausted(
                f"{self.what}: {cause} (gave up after {self.policy.deadline:g} s of retries)", cause
            )
        if self._on_retry is not None:
            self._on_retry(f"{self.what}: {cause}", delay)
        self._sleep(delay, self.cancel)
        self.check_cancel()


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def describe(exc: BaseException) -> str:
    """A few words on why a transport call failed, e.g. "connection refused".

    Walks the exception's causes (requests wraps urllib3, which wraps socket errors). Never
    includes the exception text itself, which may echo request details.
    """
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 20:
        e = todo.pop(0)
        if any(e is s for s in seen):
            continue
        seen.append(e)
        for nxt in (e.__cause__, e.__context__, getattr(e, "reason", None), *e.args):
            if isinstance(nxt, BaseException):
                todo.append(nxt)
    names = {type(e).__name__ for e in seen}
    for e in seen:
        if isinstance(e, ConnectionRefusedError):
            return "connection refused"
    for e in seen:
        if isinstance(e, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
            return "connection reset"
        if isinstance(e, socket.gaierror) or "NameResolutionError" in names:
            return "host name not resolved"
        if isinstance(e, ssl.SSLError):
            return "TLS error"
    if "ConnectTimeout" in names or "ConnectTimeoutError" in names:
        return "connection timed out"
    if names & {"ReadTimeout", "ReadTimeoutError", "TimeoutError", "timeout"}:
        return "no reply within the read timeout"
    for e in seen:
        if isinstance(e, http.client.IncompleteRead) or type(e).__name__ == "IncompleteRead":
            return "connection closed before the reply was complete"
    if names & {"ProtocolError", "ChunkedEncodingError", "RemoteDisconnected"}:
        return "connection closed before the reply was complete"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return type(exc).__name__
