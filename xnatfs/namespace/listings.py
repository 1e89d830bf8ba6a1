"""Directory listings: one REST request per directory, trusted for `--metadata-ttl` seconds, kept
in memory and on disk.

Concurrent requests for the same listing share one HTTP request (single-flight), so an `ls -l`
that sends one readdir and dozens of lookups costs one request. What directories derive from a
listing (their children, groups, indexes) is memoised inside it (`Listing.derived`), so looking
up 10,000 names in a big resource stays linear, and it goes when the listing goes.

Two tiers: memory, bounded by an estimate of what its listings hold (`max_bytes`), and an
optional `ListingStore` on disk (`xnatfs.cache.metadata`), which survives remounts. Freshness:

- fresh (fetched less than `ttl` ago): served;
- stale: served at once while one request in the background replaces it
  (stale-while-revalidate); when that request fails, the stale listing keeps being served
  (stale-if-error), and no listing is asked again in the background for a while (1 s after the
  first failure, doubling up to a minute), so a dead server costs one warning, not one failed
  request and one warning per directory opened;
- after `forget()` (SIGHUP): asked again before it is served, but served stale if the server
  cannot be reached;
- not known at all: asked for, the caller waiting;
- `offline`: no request ever; a listing that was never stored is `NotCached` (ENODATA).

All state here is touched only from trio tasks; the disk store runs in a worker thread, and so
does turning a big listing into entries (`derive`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import trio
from cachetools import LRUCache

from xnatfs.errors import NotCached, NotFound, XnatfsError
from xnatfs.namespace.derive import OFF_LOOP_ROWS as OFF_LOOP_ROWS
from xnatfs.namespace.derive import Derivations
from xnatfs.namespace.values import EMPTY, Batch, Children, Listing, Node, Row, Rows, Source
from xnatfs.remote import AsyncXnat
from xnatfs.singleflight import SingleFlight

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 256 * 1024**2
# What one parsed row costs, beyond its strings: a dict, its entries, and the nodes and file
# versions derived from it (measured with tracemalloc: a 200,000-row files listing of the
# `LISTING_COLUMNS` XNAT sends, with its entries, holds about 810 bytes a row).
_ROW_OVERHEAD = 450
_CELL_OVERHEAD = 60
_SAMPLE = 1000


def estimate_bytes(rows: Rows) -> int:
    """A rough count of the memory a listing of `rows` and what is derived from it hold.

    A big listing is measured on an even sample of `_SAMPLE` rows (the rows of one listing are
    alike), so the estimate costs the trio thread the same for 500 rows as for 500,000.
    """
    step = max(1, len(rows) // _SAMPLE)
    sample = rows[::step]
    total = 0
    for row in sample:
        total += _ROW_OVERHEAD + sum(len(v) + _CELL_OVERHEAD for v in row.values())
    return 200 + (total * len(rows) // len(sample) if sample else 0)


def store_key(source: Source) -> str:
    """The key a listing is stored under: its path and query."""
    if not source.params:
        return source.path
    return source.path + "?" + "&".join(f"{k}={v}" for k, v in source.params)


class ListingStore(Protocol):
    """Listings on disk (`xnatfs.cache.metadata.ListingStore`); called in a worker thread."""

    def get(self, key: str) -> tuple[list[dict[str, str]], float] | None:
        """Rows and when they were fetched (epoch seconds), or None."""

    def put(self, key: str, rows: Sequence[Row], fetched: float) -> None:
        """Keep rows fetched at `fetched`."""

    def age_all(self) -> None:
        """Make every stored listing ask again before it is trusted."""

    def delete(self, key: str) -> None:
        """Forget the listing of `key` (gone on the server)."""


class _Cached:
    __slots__ = ("fetched", "listing", "size")

    def __init__(self, listing: Listing, fetched: float, size: int) -> None:
        self.listing = listing
        self.fetched = fetched  # epoch seconds; 0 after forget(): ask before trusting
        self.size = size


class _Backoff:
    """When background refreshes may be tried again after failures (doubling from 1 s to 60 s);
    one warning when they start failing, one line when they work again."""

    __slots__ = ("_delay", "_until")

    def __init__(self) -> None:
        self._delay = 0.0
        self._until = 0.0

    def waiting(self, now: float) -> bool:
        return now < self._until

    def failed(self, now: float, what: str, exc: XnatfsError) -> None:
        if not self._delay:
            log.warning("could not refresh %s (serving the last listings): %s", what, exc)
        else:
            log.debug("could not refresh %s: %s", what, exc)
        self._delay = min(max(2 * self._delay, 1.0), 60.0)
        self._until = now + self._delay

    def worked(self) -> None:
        if self._delay:
            log.info("listings are refreshed again")
        self._delay = self._until = 0.0


class Listings:
    """Cached REST listings and the directory contents derived from them.

    `ttl`: seconds a listing is trusted (0: always ask); `max_bytes`: the memory cached listings
    may hold (estimated; least recently used go first); `store`: listings on disk; `offline`: never
    ask the server. Background refreshes run in the nursery given to `start`.
    """

    def __init__(
        self,
        remote: AsyncXnat,
        ttl: float,
        max_bytes: int = DEFAULT_MAX_BYTES,
        *,
        store: ListingStore | None = None,
        offline: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._remote = remote
        self._ttl = ttl
        self._store = store
        self.offline = offline
        self._clock = clock
        self._cache: LRUCache[Source, _Cached] = LRUCache(
            maxsize=max(max_bytes, 1), getsizeof=lambda c: c.size
        )
        self._flight: SingleFlight[Source, Listing] = SingleFlight()
        self._derive = Derivations(remote.blocking)
        self._fixed: dict[tuple[int, object], Children] = {}
        self._nursery: trio.Nursery | None = None
        self._refreshing: set[Source] = set()
        self._requests = 0
        self._stale_served = 0
        self._failed_refreshes = 0
        self._backoff = _Backoff()

    def start(self, nursery: trio.Nursery) -> None:
        """Let stale listings be refreshed in the background, in `nursery`."""
        self._nursery = nursery

    def clear(self) -> None:
        """Forget every listing in memory (the next access reads the disk or asks)."""
        self._cache.clear()
        self._fixed.clear()

    async def forget(self) -> None:
        """SIGHUP: every listing is asked for again before it is trusted; one that cannot be had
        is still served as it was."""
        for cached in list(self._cache.values()):
            cached.fetched = 0.0
        if self._store is not None:
            await self._remote.serial(self._store.age_all)

    def stats(self) -> dict[str, object]:
        """Counters for the stats xattr."""
        return {
            "listing_requests": self._requests,
            "listings_cached": len(self._cache),
            "listing_bytes": int(self._cache.currsize),
            "stale_listings_served": self._stale_served,
            "failed_refreshes": self._failed_refreshes,
            "offline": self.offline,
        }

    async def prime(self, source: Source, rows: Rows) -> None:
        """Keep `rows` as the listing of `source`, fetched just now (the projects listing the
        mount's start-up check already read), in memory and on disk."""
        fetched = self._clock()
        self._keep(Listing(source, tuple(rows)), fetched)
        if self._store is not None and self._ttl > 0:
            await self._put(source, tuple(rows), fetched)

    async def listing(self, source: Source) -> Listing:
        """The listing of `source` (see the module docstring for how fresh)."""
        cached = self._cache.get(source)
        if cached is None and self._store is not None:
            cached = await self._load(source)
        if cached is None:
            if self.offline:
                raise NotCached(f"offline: {source.path} was never listed")
            return await self._flight.run(source, lambda: self._fetch(source))
        age = self._clock() - cached.fetched
        if age < self._ttl or self.offline:
            return cached.listing
        if self._backoff.waiting(self._clock()):
            self._stale_served += 1
            return cached.listing  # the server failed a moment ago: not asked again yet
        if cached.fetched == 0.0:
            # Forgotten on request (SIGHUP): ask first, and fall back only if that fails.
            try:
                return await self._flight.run(source, lambda: self._fetch(source))
            except XnatfsError as exc:
                return self._stale(cached, source, exc)
        self._refresh_later(source)
        self._stale_served += 1
        return cached.listing

    def is_fresh(self, source: Source) -> bool:
        """Whether the listing of `source` is in memory and within its TTL."""
        cached = self._cache.get(source)
        return cached is not None and self._clock() - cached.fetched < self._ttl

    async def batch(self, batch: Batch) -> int:
        """Ask `batch.source` once and keep every listing it answers that is not fresh already
        (in memory and on disk); the number kept. The combined listing itself is not kept."""
        self._requests += 1
        try:
            rows: Rows = tuple(
                await self._remote.list(batch.source.path, dict(batch.source.params))
            )
        except NotFound:
            if not batch.source.missing_ok:
                raise
            rows = ()
        fetched = self._clock()
        kept = 0
        for source, part in batch.split(rows).items():
            if self.is_fresh(source):
                continue
            self._keep(Listing(source, part), fetched)
            if self._store is not None and self._ttl > 0 and self._nursery is not None:
                self._nursery.start_soon(self._put, source, part, fetched)
            kept += 1
        return kept

    async def rows(self, source: Source) -> Rows:
        """The rows of `source` (see `listing`)."""
        return (await self.listing(source)).rows

    def _stale(self, cached: _Cached, source: Source, exc: XnatfsError) -> Listing:
        if isinstance(exc, NotFound):
            raise exc  # gone on the server: not served from memory either
        self._stale_served += 1
        self._backoff.failed(self._clock(), source.path, exc)
        return cached.listing

    def _refresh_later(self, source: Source) -> None:
        if self._nursery is None or source in self._refreshing:
            return
        self._refreshing.add(source)
        self._nursery.start_soon(self._refresh, source)

    async def _refresh(self, source: Source) -> None:
        try:
            await self._flight.run(source, lambda: self._fetch(source))
        except NotFound:
            # Gone on the server: not served any more.
            self._cache.pop(source, None)
            if self._store is not None:
                await self._remote.serial(self._store.delete, store_key(source))
        except XnatfsError as exc:
            self._failed_refreshes += 1
            self._backoff.failed(self._clock(), source.path, exc)
        finally:
            self._refreshing.discard(source)

    async def _load(self, source: Source) -> _Cached | None:
        assert self._store is not None
        found = await self._remote.serial(self._store.get, store_key(source))
        if found is None:
            return None
        rows, fetched = found
        return self._keep(Listing(source, tuple(rows)), fetched)

    async def _fetch(self, source: Source) -> Listing:
        self._requests += 1
        try:
            rows: Rows = tuple(await self._remote.list(source.path, dict(source.params)))
        except NotFound:
            if not source.missing_ok:
                raise
            rows = ()
        self._backoff.worked()
        fetched = self._clock()
        listing = Listing(source, rows)
        self._keep(listing, fetched)
        if self._store is not None and self._ttl > 0:
            if self._nursery is not None:
                self._nursery.start_soon(self._put, source, rows, fetched)
            else:
                await self._put(source, rows, fetched)
        return listing

    async def _put(self, source: Source, rows: Rows, fetched: float) -> None:
        assert self._store is not None
        await self._remote.serial(self._store.put, store_key(source), rows, fetched)

    def _keep(self, listing: Listing, fetched: float) -> _Cached:
        cached = _Cached(listing, fetched, estimate_bytes(listing.rows))
        if self._ttl > 0 or self.offline:
            if cached.size <= self._cache.maxsize:
                assert listing.source is not None
                self._cache[listing.source] = cached
            else:
                log.info("listing %s is larger than the listing cache; not kept", listing.source)
        return cached

    async def children(self, node: Node) -> Children:
        """The entries of directory `node`, from its (possibly cached) listing."""
        return await self._children(node, await self._listing_of(node))

    async def lookup(self, node: Node, name: str) -> Node | None:
        """The child `name` of directory `node`, listed or resolvable (alias, selector)."""
        assert node.dir is not None
        # One listing serves both the listed names and the resolvable ones, even with TTL 0.
        listing = await self._listing_of(node)
        child = (await self._children(node, listing)).by_name.get(name)
        if child is not None:
            return child
        return node.dir.resolve(node, name, listing)

    def peek(self, node: Node) -> Children | None:
        """The entries of `node` if they are already known: fixed, or derived from a cached
        listing before (nothing is fetched or computed)."""
        assert node.dir is not None
        source = node.dir.source()
        if source is None:
            return self._fixed_children(node)
        cached = self._cache.get(source)
        if cached is None:
            return None
        known: Children | None = cached.listing.known(("children", node.key, node.dir))
        return known

    async def time(self, node: Node) -> int | None:
        """A directory's time derived from a listing (projects, the root); None if it has none."""
        spec = node.dir
        assert spec is not None
        time_source = getattr(spec, "time_source", spec.source)()
        if time_source is None:
            return None
        listing = await self.listing(time_source)
        found: int | None = await self._derive.get(listing, ("time", spec), spec.time)
        return found

    async def _listing_of(self, node: Node) -> Listing:
        assert node.dir is not None
        source = node.dir.source()
        return EMPTY if source is None else await self.listing(source)

    async def _children(self, node: Node, listing: Listing) -> Children:
        spec = node.dir
        assert spec is not None
        if listing is EMPTY:
            return self._fixed_children(node)
        children: Children = await self._derive.get(
            listing, ("children", node.key, spec), lambda lst: Children.of(spec.entries(node, lst))
        )
        return children

    def _fixed_children(self, node: Node) -> Children:
        # Fixed directories (a session's four): their children depend on the node only.
        spec = node.dir
        assert spec is not None
        key = (node.key, spec)
        fixed = self._fixed.get(key)
        if fixed is None:
            if len(self._fixed) > 65536:
                self._fixed.clear()
            fixed = self._fixed[key] = Children.of(spec.entries(node, EMPTY))
        return fixed
