"""Deduplicate concurrent async work per key.

Invariant (as in s3ql's block cache): a key is in `_inflight` if and only if its work is running;
the event is set in `finally`, so waiters wake on success and on failure alike. Failures are not
remembered: the callers waiting at the time share the failure, the next caller tries again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

import trio

from xnatfs.errors import Unavailable

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Abandoned(Unavailable):
    """The task doing the work was cancelled; its waiters see this instead of a result."""


class _Call(Generic[V]):
    __slots__ = ("done", "error", "finished", "value")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.finished = False
        self.value: V | None = None
        self.error: BaseException | None = None


class SingleFlight(Generic[K, V]):
    """Run at most one `fn()` per key at a time; concurrent callers share its outcome."""

    def __init__(self) -> None:
        self._inflight: dict[K, _Call[V]] = {}

    async def run(self, key: K, fn: Callable[[], Awaitable[V]]) -> V:
        call = self._inflight.get(key)
        if call is not None:
            await call.done.wait()
            if call.error is not None:
                raise call.error
            if not call.finished:
                raise Abandoned("the request was cancelled before it finished")
            return call.value  # type: ignore[return-value]
        call = self._inflight[key] = _Call()
        try:
            call.value = await fn()
            call.finished = True
            return call.value
        except Exception as exc:
            call.error = exc
            raise
        finally:
            del self._inflight[key]
            call.done.set()
