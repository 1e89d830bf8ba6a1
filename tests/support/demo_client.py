"""A blocking client of a fresh demo XNAT, counting its listing requests, and a walk of what
`Listings` shows below a node: for tests of the namespace against what a server really lists."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import cast

from xnatfs.namespace.listings import Listings
from xnatfs.namespace.values import Node
from xnatfs.remote import AsyncXnat
from xnatfs.xnat.auth import Credentials
from xnatfs.xnat.client import XnatClient


@contextlib.contextmanager
def demo_client() -> Iterator[XnatClient]:
    """An `XnatClient` logged in to a demo XNAT server that runs for the block."""
    from xnatfs.demo import DEMO_PASSWORD, DEMO_USER, DemoServer, build_demo_site

    server = DemoServer(build_demo_site())
    server.start()
    client = XnatClient(server.url, Credentials(DEMO_USER, DEMO_PASSWORD), retries=0)
    try:
        yield client
    finally:
        client.close()
        server.stop()


class Counting:
    """`client`, counting listing requests (`calls`: their paths, in order)."""

    def __init__(self, client: XnatClient) -> None:
        self._client = client
        self.calls: list[str] = []

    def list(self, path: str, params: object = None) -> object:
        self.calls.append(path)
        return self._client.list(path, params)  # type: ignore[arg-type]

    def listings(self, ttl: float = 60) -> Listings:
        """`Listings` over this counting client, behind the real thread boundary."""
        return Listings(AsyncXnat(cast(XnatClient, self), 4), ttl)


async def tree(lists: Listings, node: Node) -> list[tuple[str, ...]]:
    """Every path below `node`, with each file's URI, size, digest and link count."""
    out: list[tuple[str, ...]] = []
    for child in (await lists.children(node)).ordered:
        path = "/".join(child.path)
        if child.dir is not None:
            out.append((path,))
            out += await tree(lists, child)
        else:
            assert child.file is not None
            f = child.file
            out.append((path, f.uri, str(f.size), f.digest, str(child.links)))
    return out
