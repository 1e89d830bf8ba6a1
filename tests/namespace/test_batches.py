"""`CollectionDir.batches` against the demo XNAT: after one `<collection>/ALL/resources` and one
`<collection>/ALL/files` reply, a session's scans, reconstructions and assessors (their own
directories and the selector directories) show exactly the tree their own requests would have
shown, without one more request (REST reference §1.3, §2.2.6, §3)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import pytest

from xnatfs.errors import AccessDenied
from xnatfs.namespace.levels import ROOT_DIR, ExperimentDir
from xnatfs.namespace.listings import Listings
from xnatfs.namespace.owners import CollectionDir
from xnatfs.namespace.values import Listing, Node, root_node
from xnatfs.remote import AsyncXnat
from xnatfs.xnat.auth import Credentials
from xnatfs.xnat.client import XnatClient

try:
    from xnatfs.demo import DEMO_PASSWORD, DEMO_USER, DemoServer, build_demo_site
except ImportError:  # pragma: no cover - the demo package is optional for these tests
    pytest.skip("the demo XNAT server is not available", allow_module_level=True)


@pytest.fixture(scope="module")
def client() -> Iterator[XnatClient]:
    server = DemoServer(build_demo_site())
    server.start()
    c = XnatClient(server.url, Credentials(DEMO_USER, DEMO_PASSWORD), retries=0)
    try:
        yield c
    finally:
        c.close()
        server.stop()


class Counting:
    """The client, counting listing requests (the boundary runs it in threads)."""

    def __init__(self, client: XnatClient) -> None:
        self._client = client
        self.calls: list[str] = []

    def list(self, path: str, params: object = None) -> object:
        self.calls.append(path)
        return self._client.list(path, params)  # type: ignore[arg-type]


def sessions(client: XnatClient) -> list[str]:
    out = []
    for project in client.list("/data/projects"):
        try:
            subjects = client.list(f"/data/projects/{project['ID']}/subjects")
        except AccessDenied:
            continue  # listed, but not readable by the demo user
        for subject in subjects:
            path = f"/data/projects/{project['ID']}/subjects/{subject['ID']}/experiments"
            out += [e["ID"] for e in client.list(path)]
    return out


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


async def test_the_batches_fill_every_listing_below_a_session(client: XnatClient) -> None:
    compared = 0
    for experiment in sessions(client):
        shown = []
        for batched in (False, True):
            counting = Counting(client)
            lists = Listings(AsyncXnat(cast(XnatClient, counting), 4), 60)
            session = root_node(ROOT_DIR).child(experiment, dir=ExperimentDir(experiment))
            for collection in ("scans", "reconstructions", "assessors"):
                spec = CollectionDir(experiment, collection)
                listing = await lists.listing(spec.source())
                if batched:
                    for batch in spec.batches(listing):
                        await lists.batch(batch)
            before = len(counting.calls)
            shown.append(await tree(lists, session))
            if batched:
                # Only the session's own resources/ (and their files) are left to ask.
                own = f"/data/experiments/{experiment}/resources"
                assert all(c.startswith(own) for c in counting.calls[before:])
        assert shown[0] == shown[1]
        compared += len(shown[0])
    assert compared > 100


def test_no_batches_for_an_empty_collection() -> None:
    spec = CollectionDir("XNAT_E00001", "reconstructions")
    assert spec.batches(Listing(spec.source(), ())) == []
