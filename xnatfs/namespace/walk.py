"""Walks at the speed of the pipe: when a tree is being walked, list ahead of the walker.

`find`, `du`, `rsync` and file managers' searches open one directory after another, and each
listing costs a round trip, so a cold walk is the sum of the round trips. When two children of
one directory are opened within `window` seconds (siblings: a walk, not a person browsing), the
walk's top is found (the highest directory above them that was opened shortly before, where
`find` started) and everything below it is listed ahead of the walker, `parallel` listings at a
time and at most `budget` per walk seen. Where XNAT can answer a whole level in one request,
that is used instead (`Dir.batches`: a session's scan resources through `scans/ALL/resources`,
its scan files through `scans/ALL/files`), one reply filling many directories' listings. A
listing already cached is not asked again, so a walk never costs more requests than it has
directories.

All state here is touched only from trio tasks.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import trio

from xnatfs.errors import XnatfsError
from xnatfs.namespace.listings import Listings
from xnatfs.namespace.values import Node

log = logging.getLogger(__name__)


class WalkAhead:
    """Watches directories being opened (`seen`) and lists ahead of walks (see the module)."""

    def __init__(
        self,
        listings: Listings,
        nursery: trio.Nursery,
        *,
        window: float = 2.0,
        parallel: int = 4,
        budget: int = 4096,
        depth: int = 64,
    ) -> None:
        self._listings = listings
        self._nursery = nursery
        self.window = window
        self._limit = trio.CapacityLimiter(parallel)
        self.budget = budget
        self.depth = depth
        # parent key -> (time, first child key) of the last child of it that was opened
        self._recent: OrderedDict[int, tuple[float, int]] = OrderedDict()
        self._opened: OrderedDict[int, float] = OrderedDict()  # directory key -> last opened
        self._walked: OrderedDict[int, None] = OrderedDict()
        self._walks = 0
        self._ahead = 0

    def stats(self) -> dict[str, object]:
        """Counters for the stats xattr: walks seen, listings fetched ahead of them."""
        return {"walks": self._walks, "listings_ahead": self._ahead}

    def seen(self, node: Node) -> None:
        """Directory `node` was opened (its listing is at hand)."""
        parent = node.parent
        if parent is None or self._listings.offline or self.budget <= 0:
            return
        now = trio.current_time()
        self._opened.pop(node.key, None)
        self._opened[node.key] = now
        while len(self._opened) > 4096:
            self._opened.popitem(last=False)
        last = self._recent.pop(parent.key, None)
        self._recent[parent.key] = (now, node.key)
        while len(self._recent) > 4096:
            self._recent.popitem(last=False)
        if last is None or now - last[0] > self.window or last[1] == node.key:
            return
        top = parent
        while top.parent is not None and now - self._opened.get(top.parent.key, -1e9) < 60:
            top = top.parent  # where the walk started: opened not long before its children
        if top.key in self._walked:
            return
        self._walked[top.key] = None
        while len(self._walked) > 65536:
            self._walked.popitem(last=False)
        self._walks += 1
        self._nursery.start_soon(self._walk, top)

    async def _walk(self, top: Node) -> None:
        left = [self.budget]
        try:
            async with trio.open_nursery() as nursery:
                await self._expand(nursery, top, self.depth, left)
        except XnatfsError as exc:
            log.debug("listing ahead of a walk in %s stopped: %s", top.display(), exc)

    async def _expand(self, nursery: trio.Nursery, node: Node, depth: int, left: list[int]) -> None:
        """List the sub-directories of `node` (its batches first), and theirs down to `depth`."""
        assert node.dir is not None
        source = node.dir.source()
        if source is not None:
            listing = await self._listings.listing(source)
            for batch in node.dir.batches(listing):
                if left[0] <= 0:
                    return
                left[0] -= 1
                async with self._limit:
                    self._ahead += await self._listings.batch(batch)
        children = await self._listings.children(node)
        for child in children.ordered:
            if child.dir is None or left[0] <= 0:
                continue
            own = child.dir.source()
            if own is not None and not self._listings.is_fresh(own):
                left[0] -= 1
                nursery.start_soon(self._one, nursery, child, depth - 1, left)
            elif depth > 1:
                nursery.start_soon(self._expand, nursery, child, depth - 1, left)

    async def _one(self, nursery: trio.Nursery, node: Node, depth: int, left: list[int]) -> None:
        assert node.dir is not None
        source = node.dir.source()
        assert source is not None
        try:
            async with self._limit:
                await self._listings.listing(source)
            self._ahead += 1
            if depth > 0:
                await self._expand(nursery, node, depth, left)
        except XnatfsError as exc:
            log.debug("could not list %s ahead: %s", node.display(), exc)
