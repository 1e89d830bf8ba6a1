"""`WalkAhead` against the demo XNAT: a walk (two sibling directories opened in a short time) is
listed ahead from where it started, never costs more requests than a walk one listing per
directory, and leaves nothing for the walker itself to ask; a person opening one directory, or
`walk_ahead` 0, lists nothing ahead."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trio

from tests.support.demo_client import Counting, demo_client, tree
from xnatfs.namespace.levels import ROOT_DIR
from xnatfs.namespace.listings import Listings
from xnatfs.namespace.values import Node, root_node
from xnatfs.namespace.walk import WalkAhead
from xnatfs.xnat.client import XnatClient


@pytest.fixture(scope="module")
def client() -> Iterator[XnatClient]:
    with demo_client() as c:
        yield c


async def settle(counting: Counting) -> None:
    """Wait until no listing request has been made for half a second."""
    with trio.fail_after(60):
        seen = -1
        while seen != len(counting.calls):
            seen = len(counting.calls)
            await trio.sleep(0.5)


async def project(lists: Listings) -> Node:
    node = await lists.lookup(root_node(ROOT_DIR), "STUDY")
    assert node is not None
    return node


async def serial_requests(client: XnatClient) -> int:
    """Listing requests of a walk of STUDY without listing ahead."""
    counting = Counting(client)
    lists = counting.listings()
    await tree(lists, await project(lists))
    return len(counting.calls)


async def test_a_walk_is_listed_ahead_and_costs_no_more_requests(client: XnatClient) -> None:
    serial = await serial_requests(client)
    counting = Counting(client)
    lists = counting.listings()
    async with trio.open_nursery() as nursery:
        walker = WalkAhead(lists, nursery, parallel=4)
        top = await project(lists)
        walker.seen(top)
        subjects = [c for c in (await lists.children(top)).ordered if c.name != "resources"]
        assert len(subjects) >= 2
        walker.seen(subjects[0])
        walker.seen(subjects[1])  # a sibling soon after: a walk from STUDY
        await settle(counting)
        ahead = len(counting.calls)
        assert walker.stats()["walks"] == 1
        shown = await tree(lists, top)  # the walker itself now asks nothing
        assert len(counting.calls) == ahead
        assert ahead <= serial
        nursery.cancel_scope.cancel()
    assert len(shown) > 50


@pytest.mark.parametrize("budget", [0, 4096])
async def test_one_directory_opened_again_or_budget_0_lists_nothing_ahead(
    client: XnatClient, budget: int
) -> None:
    counting = Counting(client)
    lists = counting.listings()
    async with trio.open_nursery() as nursery:
        walker = WalkAhead(lists, nursery, budget=budget)
        top = await project(lists)
        walker.seen(top)
        subjects = [c for c in (await lists.children(top)).ordered if c.name != "resources"]
        walker.seen(subjects[0])
        walker.seen(subjects[0])  # the same directory again: a person, not a walk
        if budget == 0:
            walker.seen(subjects[1])
        before = len(counting.calls)
        await settle(counting)
        assert len(counting.calls) == before
        assert walker.stats()["walks"] == 0
        nursery.cancel_scope.cancel()
