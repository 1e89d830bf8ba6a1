"""Directory listings: one REST request per directory, cached for `--metadata-ttl` seconds.

Concurrent requests for the same listing share one HTTP request (single-flight), so an `ls -l`
that sends one readdir and dozens of lookups costs one request. What directories derive from a
listing (their children, groups, indexes) is memoised inside it (`Listing.derived`), so looking
up 10,000 names in a big resource stays linear, and it goes when the listing goes. The cache is
bounded by an estimate of the memory its listings hold (`max_bytes`), not by their number, so a
walk of a tree whose listings fit stays warm however many directories it has.

All state here is touched only from trio tasks.
"""

from __future__ import annotations

import logging

import trio
from cachetools import LRUCache

from xnatfs.errors import NotFound
from xnatfs.namespace.values import EMPTY, Children, Listing, Node, Rows, Source
from xnatfs.remote import AsyncXnat
from xnatfs.singleflight import SingleFlight

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 256 * 1024**2
# What one parsed row costs, beyond its strings: a dict, its entries, and the nodes and file
# versions derived from it (measured with tracemalloc on files listings).
_ROW_OVERHEAD = 700
_CELL_OVERHEAD = 60


def estimate_bytes(rows: Rows) -> int:
    """A rough count of the memory a listing of `rows` and what is derived from it hold."""
    total = 200
    for row in rows:
        total += _ROW_OVERHEAD + sum(len(v) + _CELL_OVERHEAD for v in row.values())
    return total


class _Cached:
    __slots__ = ("fetched", "listing", "size")

    def __init__(self, listing: Listing, fetched: float, size: int) -> None:
        self.listing = listing
        self.fetched = fetched
        self.size = size


class Listings:
    """Cached REST listings and the directory contents derived from them.

    `ttl`: seconds a listing is trusted (0: always ask); `max_bytes`: the memory the cached
    listings may hold (estimated; least recently used go first).
    """

    def __init__(self, remote: AsyncXnat, ttl: float, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._remote = remote
        self._ttl = ttl
        self._cache: LRUCache[Source, _Cached] = LRUCache(
            maxsize=max(max_bytes, 1), getsizeof=lambda c: c.size
        )
        self._flight: SingleFlight[Source, Listing] = SingleFlight()
        self._fixed: dict[tuple[int, object], Children] = {}
        self._requests = 0

    def clear(self) -> None:
        """Forget every listing (SIGHUP): the next access asks the server again."""
        self._cache.clear()
        self._fixed.clear()

    def stats(self) -> dict[str, object]:
        """Counters for the stats xattr: listing requests sent, listings and bytes cached."""
        return {
            "listing_requests": self._requests,
            "listings_cached": len(self._cache),
            "listing_bytes": int(self._cache.currsize),
        }

    async def listing(self, source: Source) -> Listing:
        """The listing of `source`, from the cache while fresh, else from the server."""
        cached = self._cache.get(source)
        if cached is not None and trio.current_time() - cached.fetched < self._ttl:
            return cached.listing
        return await self._flight.run(source, lambda: self._fetch(source))

    def prime(self, source: Source, rows: Rows) -> None:
        """Keep `rows` as the listing of `source`, fetched just now (the projects listing the
        mount's start-up check already read)."""
        if self._ttl > 0:
            self._cache[source] = _Cached(
                Listing(source, tuple(rows)), trio.current_time(), estimate_bytes(rows)
            )

    async def rows(self, source: Source) -> Rows:
        """The rows of `source` (see `listing`)."""
        return (await self.listing(source)).rows

    async def _fetch(self, source: Source) -> Listing:
        self._requests += 1
        try:
            rows: Rows = tuple(await self._remote.list(source.path, dict(source.params)))
        except NotFound:
            if not source.missing_ok:
                raise
            rows = ()
        listing = Listing(source, rows)
        if self._ttl > 0:
            size = estimate_bytes(rows)
            if size <= self._cache.maxsize:
                self._cache[source] = _Cached(listing, trio.current_time(), size)
            else:
                log.info("listing %s is larger than the listing cache; not kept", source.path)
        return listing

    async def children(self, node: Node) -> Children:
        """The entries of directory `node`, from its (possibly cached) listing."""
        return self._children(node, await self._listing_of(node))

    async def lookup(self, node: Node, name: str) -> Node | None:
        """The child `name` of directory `node`, listed or resolvable (alias, selector)."""
        assert node.dir is not None
        # One listing serves both the listed names and the resolvable ones, even with TTL 0.
        listing = await self._listing_of(node)
        child = self._children(node, listing).by_name.get(name)
        if child is not None:
            return child
        return node.dir.resolve(node, name, listing)

    def peek(self, node: Node) -> Children | None:
        """The entries of `node` if they are known without a request (cached or fixed)."""
        assert node.dir is not None
        source = node.dir.source()
        if source is None:
            return self._children(node, EMPTY)
        cached = self._cache.get(source)
        return None if cached is None else self._children(node, cached.listing)

    async def time(self, node: Node) -> int | None:
        """A directory's time derived from a listing (projects, the root); None if it has none."""
        spec = node.dir
        assert spec is not None
        time_source = getattr(spec, "time_source", spec.source)()
        if time_source is None:
            return None
        return spec.time(await self.listing(time_source))

    async def _listing_of(self, node: Node) -> Listing:
        assert node.dir is not None
        source = node.dir.source()
        return EMPTY if source is None else await self.listing(source)

    def _children(self, node: Node, listing: Listing) -> Children:
        spec = node.dir
        assert spec is not None
        if listing is EMPTY:
            # Fixed directories (a session's four): their children depend on the node only.
            key = (node.key, spec)
            fixed = self._fixed.get(key)
            if fixed is None:
                if len(self._fixed) > 65536:
                    self._fixed.clear()
                fixed = self._fixed[key] = Children.of(spec.entries(node, listing))
            return fixed
        return listing.derived(
            ("children", node.key, spec), lambda: Children.of(spec.entries(node, listing))
        )
