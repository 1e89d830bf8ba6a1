"""The real filesystem core over an in-memory XNAT: `Filesystem` over `Listings`, a
`Prefetcher` and `Downloads`, all talking to a `FakeRemote` through the real `AsyncXnat`
thread boundary. No mount, no HTTP."""

from __future__ import annotations

from typing import cast

import trio

from tests.support.fake_remote import FakeRemote
from xnatfs.cache.disk import DiskCache
from xnatfs.data.downloads import Downloads
from xnatfs.data.prefetch import Prefetcher
from xnatfs.fs.filesystem import Filesystem
from xnatfs.fs.inodes import ROOT_INODE
from xnatfs.namespace.listings import Listings
from xnatfs.remote import AsyncXnat
from xnatfs.xnat.client import XnatClient


def boundary(remote: FakeRemote, max_connections: int = 8) -> AsyncXnat:
    """The real thread boundary around the fake (which has the client's methods)."""
    return AsyncXnat(cast(XnatClient, remote), max_connections)


def make_fs(
    remote: FakeRemote,
    cache: DiskCache,
    nursery: trio.Nursery,
    ttl: float = 60,
    prefetch: str = "off",
) -> Filesystem:
    """The core as `xnatfs.app.mount` composes it, with `ttl` as --metadata-ttl."""
    xnat = boundary(remote)
    listings = Listings(xnat, ttl)
    listings.start(nursery)
    prefetcher = Prefetcher(xnat, listings.rows, nursery, mode=prefetch)
    store = Downloads(xnat, cache, nursery, on_miss=prefetcher.note_miss)
    prefetcher.bind(store)
    return Filesystem(listings, store, reporters=(prefetcher.stats, cache.report))


async def walk(fs: Filesystem, *names: str) -> int:
    """Look up a path name by name from the root (one kernel reference each); its inode."""
    ino = ROOT_INODE
    for name in names:
        ino = (await fs.lookup(ino, name)).ino
    return ino
