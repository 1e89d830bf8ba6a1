"""`CollectionDir.batches` against the demo XNAT: after one `<collection>/ALL/resources` and one
`<collection>/ALL/files` reply, a session's scans, reconstructions and assessors (their own
directories and the selector directories) show exactly the tree their own requests would have
shown, without one more request (REST reference §1.3, §2.2.6, §3)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.demo_client import Counting, demo_client, tree
from xnatfs.errors import AccessDenied
from xnatfs.namespace.levels import ROOT_DIR, ExperimentDir
from xnatfs.namespace.owners import CollectionDir
from xnatfs.namespace.values import Listing, root_node
from xnatfs.xnat.client import XnatClient


@pytest.fixture(scope="module")
def client() -> Iterator[XnatClient]:
    with demo_client() as c:
        yield c


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


async def test_the_batches_fill_every_listing_below_a_session(client: XnatClient) -> None:
    compared = 0
    for experiment in sessions(client):
        shown = []
        for batched in (False, True):
            counting = Counting(client)
            lists = counting.listings()
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
