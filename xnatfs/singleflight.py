"""Deduplicate concurrent async work per key.

Invariant (as in s3ql's block cache): a key is in `_inflight` if and only if its work is running;
the event is set in `finally`, so waiters wake on success and on failure alike. Failures are not
remembered: the callers waiting at the time share the failure, the next caller tries again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

import outcome
import trio

from xnatfs.errors import Unavailable

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Abandoned(Unavailable):
    """The task doing the work was cancelled; its waiters see this instead of a result."""


class _Call(Generic[V]):
    __slots__ = ("done", "result")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.result: outcome.Outcome[V] | None = None


class SingleFlight(Generic[K, V]):
    """Run at most one `fn()` per key at a time; concurrent callers share its outcome."""

    def __init__(self) -> None:
        self._inflight: dict[K, _Call[V]] = {}

    def running(self, key: K) -> bool:
        return key in self._inflight

    async def run(self, key: K, fn: Callable[[], Awaitable[V]]) -> V:
        call = self._inflight.get(key)
        if call is None:
            call = self._inflight[key] = _Call()
            try:
                call.result = await outcome.acapture(fn)
            finally:
                del self._inflight[key]
                call.done.set()
        else:
            await call.done.wait()
        if call.result is None:  # the leader was cancelled before it finished
            raise Abandoned("the request was cancelled before it finished")
        return call.result.unwrap()
