"""What directories derive from a listing (entries, groups, indexes, times), computed once per
listing, and for a big listing never on the event loop.

A listing of more than `OFF_LOOP_ROWS` rows takes long to turn into entries (200,000 rows:
seconds of Python), so that work runs in a worker thread, on a private copy of the listing
(`Listing.copy`: the rows are immutable and shared, the memo is copied) which the trio thread
adopts afterwards (`Listing.adopt`); concurrent callers of one listing and key share one build.
The worker thread touches nothing the trio thread holds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from xnatfs.namespace.values import Listing
from xnatfs.singleflight import SingleFlight

T = TypeVar("T")

# Listings with more rows than this are turned into entries off the trio thread.
OFF_LOOP_ROWS = 5000

# Runs a blocking callable in a worker thread and returns its result (`AsyncXnat.blocking`).
Blocking = Callable[[Callable[[], Any]], Awaitable[Any]]


class Derivations:
    """`get` remembers what is derived from a listing in the listing (`Listing.derived`).
    Trio tasks only."""

    def __init__(self, blocking: Blocking) -> None:
        self._blocking = blocking
        self._building: SingleFlight[tuple[int, object], Any] = SingleFlight()

    async def get(self, listing: Listing, key: object, compute: Callable[[Listing], T]) -> T:
        """`compute(listing)` remembered under `key`; for a big listing it runs in a worker
        thread, on a copy, once however many tasks ask at the same time."""
        if len(listing.rows) <= OFF_LOOP_ROWS:
            return listing.derived(key, lambda: compute(listing))
        known = listing.known(key)
        if known is not None:
            return known  # type: ignore[no-any-return]

        async def build() -> T:
            twin = listing.copy()
            value = await self._blocking(lambda: twin.derived(key, lambda: compute(twin)))
            listing.adopt(twin)
            return value  # type: ignore[no-any-return]

        # The closure keeps the listing alive, so its id names it while the work runs.
        return await self._building.run((id(listing), key), build)  # type: ignore[no-any-return]
