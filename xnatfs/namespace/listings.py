"""Directory listings: one REST request per directory, cached for `--metadata-ttl` seconds.

Concurrent requests for the same listing share one HTTP request (single-flight), so an `ls -l`
that sends one readdir and dozens of lookups costs one request. Children computed from a listing
are memoised alongside it, so looking up 10,000 names in a big resource stays linear.
All state here is touched only from trio tasks.
"""

from __future__ import annotations

import logging

from cachetools import TTLCache

from xnatfs.errors import NotFound
from xnatfs.namespace.values import Children, Dir, Node, Rows, Source
from xnatfs.remote import AsyncXnat
from xnatfs.singleflight import SingleFlight

log = logging.getLogger(__name__)


class Listings:
    """Cached REST listings and the directory contents derived from them."""

    def __init__(self, remote: AsyncXnat, ttl: float, max_listings: int = 4096) -> None:
        self._remote = remote
        self._ttl = ttl
        # TTLCache needs a positive TTL; a zero TTL means "always ask the server".
        self._rows: TTLCache[Source, Rows] | None = (
            TTLCache(maxsize=max_listings, ttl=ttl) if ttl > 0 else None
        )
        self._children: dict[tuple[Dir, tuple[str, ...]], tuple[Rows, Children]] = {}
        self._flight: SingleFlight[Source, Rows] = SingleFlight()
        self._requests = 0

    def clear(self) -> None:
        """Forget every listing (SIGHUP): the next access asks the server again."""
        if self._rows is not None:
            self._rows.clear()
        self._children.clear()

    def stats(self) -> dict[str, object]:
        """Counters for the stats xattr: listing requests sent, listings cached."""
        cached = len(self._rows) if self._rows is not None else 0
        return {"listing_requests": self._requests, "listings_cached": cached}

    async def rows(self, source: Source) -> Rows:
        if self._rows is not None:
            cached = self._rows.get(source)
            if cached is not None:
                return cached
        return await self._flight.run(source, lambda: self._fetch(source))

    async def _fetch(self, source: Source) -> Rows:
        self._requests += 1
        try:
            rows: Rows = tuple(await self._remote.list(source.path, dict(source.params)))
        except NotFound:
            if not source.missing_ok:
                raise
            rows = ()
        if self._rows is not None:
            self._rows[source] = rows
        return rows

    async def children(self, node: Node) -> Children:
        """The entries of directory `node`, from its (possibly cached) listing."""
        return (await self._listing(node))[1]

    async def lookup(self, node: Node, name: str) -> Node | None:
        """The child `name` of directory `node`, listed or resolvable (alias, selector)."""
        assert node.dir is not None
        # One listing serves both the listed names and the resolvable ones, even with TTL 0.
        rows, children = await self._listing(node)
        child = children.by_name.get(name)
        if child is not None:
            return child
        return node.dir.resolve(node, name, rows)

    async def _listing(self, node: Node) -> tuple[Rows, Children]:
        assert node.dir is not None
        spec = node.dir
        source = spec.source()
        rows: Rows = () if source is None else await self.rows(source)
        key = (spec, node.path)
        memo = self._children.get(key)
        if memo is not None and memo[0] is rows:
            return rows, memo[1]
        children = Children.of(spec.entries(node, rows))
        if source is not None:
            # Bounded by the listings that are alive: drop memos whose rows have expired.
            if len(self._children) > 4 * (self._rows.maxsize if self._rows is not None else 64):
                self._children.clear()
            self._children[key] = (rows, children)
        return rows, children
