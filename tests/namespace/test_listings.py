"""Listings over an in-memory remote (behind the real thread boundary): how many listing requests
each access costs (TTL, single-flight, clear, TTL 0), empty selectors, and lookups of listed and
resolvable names."""

from __future__ import annotations

import ast
import logging
from collections.abc import Awaitable
from pathlib import Path

import pytest
import trio
import trio.testing

from tests.support.core import boundary
from tests.support.fake_remote import FILES, E, FakeRemote
from xnatfs.cache.metadata import ListingStore
from xnatfs.errors import NotCached, NotFound, Unavailable
from xnatfs.namespace.files import FilesDir
from xnatfs.namespace.levels import ROOT_DIR, ExperimentDir, ProjectDir, SubjectDir
from xnatfs.namespace.listings import OFF_LOOP_ROWS, Listings, estimate_bytes
from xnatfs.namespace.owners import CollectionDir, OwnerDir, SelectorDir
from xnatfs.namespace.values import (
    LISTING_COLUMNS,
    Children,
    Dir,
    Listing,
    Node,
    Source,
    root_node,
)

REPO = Path(__file__).resolve().parents[2]

SCANS = f"/data/experiments/{E}/scans"
SUBJECTS = "/data/projects/TEST/subjects"


def listings(remote: FakeRemote, ttl: float = 60) -> Listings:
    return Listings(boundary(remote), ttl)


def requests(lists: Listings) -> object:
    return lists.stats()["listing_requests"]


async def first_request_out(remote: FakeRemote) -> None:
    """Wait until a listing request waits at the closed gate and every task is blocked."""
    with trio.fail_after(10):
        while not remote.list_calls:
            await trio.sleep(0.01)
    await trio.testing.wait_all_tasks_blocked()


def at(path: tuple[str, ...], spec: Dir) -> Node:
    """A directory node for `spec` at `path` (its ancestors stand in as plain directories)."""
    node = root_node(ROOT_DIR, 1)
    for name in path[:-1]:
        node = node.child(name, dir=ROOT_DIR)
    return node.child(path[-1], dir=spec)


def scans() -> Node:
    return at(("TEST", "1", "MR1", "scans"), CollectionDir(E, "scans"))


def project() -> Node:
    return at(("TEST",), ProjectDir("TEST"))


@pytest.fixture
def remote() -> FakeRemote:
    remote = FakeRemote()
    remote.listings[SCANS] = [
        {"ID": "1", "type": "T1"},
        {"ID": "2", "type": "T1"},
        {"ID": "3", "type": "T2"},
    ]
    return remote


async def test_one_request_per_listing_within_the_ttl(remote: FakeRemote) -> None:
    lists = listings(remote)
    first = await lists.rows(Source(SCANS))
    assert [r["ID"] for r in first] == ["1", "2", "3"]
    assert await lists.rows(Source(SCANS)) is first
    children = await lists.children(scans())
    # Children are computed once per listing, not once per lookup.
    assert await lists.children(scans()) is children
    assert [n.name for n in children.ordered] == ["1", "2", "3", "ALL", "T1", "T2"]
    for name in ("1", "T2", "ALL"):
        assert await lists.lookup(scans(), name) is children.by_name[name]
    assert remote.list_calls == [SCANS]
    assert requests(lists) == 1
    # Another query of the same path is another listing.
    await lists.rows(Source(SCANS, (("columns", "ID"),)))
    assert remote.list_calls == [SCANS, SCANS] and requests(lists) == 2


async def test_concurrent_callers_share_one_request(remote: FakeRemote) -> None:
    lists = listings(remote)
    remote.list_gate.clear()
    results: list[object] = []

    async def rows() -> None:
        results.append(await lists.rows(Source(SCANS)))

    async def lookup() -> None:
        child = await lists.lookup(scans(), "2")
        assert child is not None and child.name == "2"

    async with trio.open_nursery() as nursery:
        try:
            for _ in range(5):
                nursery.start_soon(rows)
                nursery.start_soon(lookup)
            await first_request_out(remote)
            # Ten callers are waiting, and only one request is out.
            assert remote.list_calls == [SCANS]
        finally:
            remote.list_gate.set()
    assert len(results) == 5 and all(r is results[0] for r in results)
    assert remote.list_calls == [SCANS] and requests(lists) == 1


async def test_callers_share_a_failure_that_is_not_remembered(remote: FakeRemote) -> None:
    lists = listings(remote)
    remote.list_gate.clear()
    failures: list[BaseException] = []

    async def rows() -> None:
        try:
            await lists.rows(Source("/data/projects/GONE/subjects"))
        except NotFound as exc:
            failures.append(exc)

    async with trio.open_nursery() as nursery:
        try:
            for _ in range(3):
                nursery.start_soon(rows)
            await first_request_out(remote)
        finally:
            remote.list_gate.set()
    assert len(failures) == 3 and remote.list_calls == ["/data/projects/GONE/subjects"]
    # The next caller asks again: the project may exist by now.
    remote.listings["/data/projects/GONE/subjects"] = []
    assert await lists.rows(Source("/data/projects/GONE/subjects")) == ()
    assert requests(lists) == 2


async def test_ttl_zero_always_asks(remote: FakeRemote) -> None:
    lists = listings(remote, ttl=0)
    await lists.rows(Source(SCANS))
    await lists.rows(Source(SCANS))
    first = await lists.children(scans())
    second = await lists.children(scans())
    assert remote.list_calls == [SCANS] * 4
    # What the second listing said is what the directory shows.
    remote.listings[SCANS] = [{"ID": "7", "type": "DWI"}]
    assert [n.name for n in (await lists.children(scans())).ordered] == ["7", "ALL", "DWI"]
    assert [n.name for n in first.ordered] == [n.name for n in second.ordered]


async def test_clear_forgets_every_listing(remote: FakeRemote) -> None:
    lists = listings(remote)
    before = await lists.children(scans())
    await lists.rows(Source(SUBJECTS))
    remote.listings[SCANS] = remote.listings[SCANS][:1]
    assert await lists.children(scans()) is before  # still cached
    lists.clear()
    after = await lists.children(scans())
    assert [n.name for n in after.ordered] == ["1", "ALL", "T1"]
    await lists.rows(Source(SUBJECTS))
    assert remote.list_calls == [SCANS, SUBJECTS, SCANS, SUBJECTS]


async def test_a_missing_ok_source_that_is_not_found_is_an_empty_listing(
    remote: FakeRemote,
) -> None:
    lists = listings(remote)
    empty_selector = Source(f"{SCANS}/NONE/resources", missing_ok=True)
    assert await lists.rows(empty_selector) == ()
    assert await lists.rows(empty_selector) == ()  # the empty answer is cached like any other
    assert requests(lists) == 1
    strict = Source(f"{SCANS}/NONE/resources")
    for _ in range(2):
        with pytest.raises(NotFound):
            await lists.rows(strict)
    assert requests(lists) == 3
    selector = at((*scans().path, "NONE"), SelectorDir(E, "scans", ("NONE",)))
    assert (await lists.children(selector)).ordered == ()


async def test_lookup_answers_listed_and_resolvable_names_from_one_listing(
    remote: FakeRemote,
) -> None:
    # Even without caching, a lookup costs one listing, whether the name is listed or not.
    lists = listings(remote, ttl=0)
    listed = await lists.lookup(scans(), "1")
    assert listed is not None and listed.dir == OwnerDir(E, "scans", "1", links=3)
    assert len(remote.list_calls) == 1
    chosen = await lists.lookup(scans(), "1,3")
    assert chosen is not None and chosen.path == (*scans().path, "1,3")
    assert chosen.dir == SelectorDir(E, "scans", ("1", "3"))
    assert len(remote.list_calls) == 2
    assert await lists.lookup(scans(), "9") is None
    assert await lists.lookup(scans(), "1,") is None
    assert len(remote.list_calls) == 4

    # A subject's accession ID is not listed under the project, but it resolves, to the same
    # directory as the subject's label.
    alias = await lists.lookup(project(), "XNAT_S00001")
    label = await lists.lookup(project(), "1")
    assert alias is not None and label is not None
    assert alias.name == "XNAT_S00001" and alias.dir == label.dir == SubjectDir("TEST", alias.name)
    assert remote.list_calls[-2:] == [SUBJECTS, SUBJECTS]


async def test_a_fixed_directory_costs_no_request(remote: FakeRemote) -> None:
    lists = listings(remote)
    experiment = at(("TEST", "1", "MR1"), ExperimentDir(E))
    children = await lists.children(experiment)
    assert [n.name for n in children.ordered] == [
        "assessors",
        "reconstructions",
        "resources",
        "scans",
    ]
    assert await lists.lookup(experiment, "scans") == children.by_name["scans"]
    assert await lists.lookup(experiment, "nothing") is None
    assert remote.list_calls == [] and requests(lists) == 0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Flaky(FakeRemote):
    """A remote whose listings fail (server unreachable) while `down`."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def list(self, path: str, params: object = None) -> list[dict[str, str]]:
        if self.down:
            self.list_calls.append(path)
            raise Unavailable(f"cannot reach the server for {path}")
        return super().list(path, params)  # type: ignore[arg-type]


async def settle() -> None:
    await trio.sleep(0.2)  # background refreshes cross into a worker thread and back


async def test_stale_listings_are_served_at_once_and_replaced_in_the_background(
    tmp_path: Path,
) -> None:
    remote, clock = Flaky(), Clock()
    async with trio.open_nursery() as nursery:
        lists = Listings(boundary(remote), 60, clock=clock)
        lists.start(nursery)
        first = await lists.rows(Source(SUBJECTS))
        remote.listings[SUBJECTS] = [*first, {"ID": "XNAT_S00002", "label": "2"}]
        clock.now += 61
        assert await lists.rows(Source(SUBJECTS)) is first  # stale, served without waiting
        await settle()
        assert [r["label"] for r in await lists.rows(Source(SUBJECTS))] == ["1", "2"]
        assert remote.list_calls.count(SUBJECTS) == 2
        nursery.cancel_scope.cancel()


async def test_a_failing_server_is_not_asked_again_for_a_while_and_warned_about_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="xnatfs")
    remote, clock = Flaky(), Clock()
    async with trio.open_nursery() as nursery:
        lists = Listings(boundary(remote), 60, clock=clock)
        lists.start(nursery)
        subjects = await lists.rows(Source(SUBJECTS))
        scans = await lists.rows(Source(SCANS))
        remote.down = True
        clock.now += 61
        assert await lists.rows(Source(SUBJECTS)) is subjects
        await settle()  # that refresh failed: backing off
        before = len(remote.list_calls)
        for _ in range(5):
            assert await lists.rows(Source(SUBJECTS)) is subjects
            assert await lists.rows(Source(SCANS)) is scans  # stale-if-error, no request
        await settle()
        assert len(remote.list_calls) == before
        clock.now += 1.5  # past the first pause: tried again, still failing
        await lists.rows(Source(SCANS))
        await settle()
        assert len(remote.list_calls) == before + 1
        warnings = [r for r in caplog.records if r.levelname == "WARNING"]
        assert len(warnings) == 1 and "serving the last listings" in warnings[0].getMessage()
        remote.down = False
        clock.now += 2.5  # past the doubled pause: works again
        await lists.rows(Source(SCANS))
        await settle()
        assert lists.stats()["failed_refreshes"] == 2
        assert "listings are refreshed again" in caplog.text
        nursery.cancel_scope.cancel()


async def test_listings_kept_on_disk_answer_a_new_mount_and_offline(tmp_path: Path) -> None:
    remote, clock = Flaky(), Clock()
    store = ListingStore(tmp_path / "listings.db", 1 << 20)
    try:
        async with trio.open_nursery() as nursery:
            lists = Listings(boundary(remote), 60, store=store, clock=clock)
            lists.start(nursery)
            subjects = await lists.rows(Source(SUBJECTS))
            await settle()  # written to disk in the background
            nursery.cancel_scope.cancel()
        remote.down = True
        calls = len(remote.list_calls)
        offline = Listings(boundary(remote), 60, store=store, offline=True, clock=clock)
        clock.now += 3600  # long past the TTL: offline, still served
        assert await offline.rows(Source(SUBJECTS)) == subjects
        with pytest.raises(NotCached):
            await offline.rows(Source(SCANS))  # never listed
        assert len(remote.list_calls) == calls  # offline asks nothing
    finally:
        store.close()


# --- big listings, and the columns kept ---------------------------------------------------------


def big_files(remote: FakeRemote, n: int) -> Node:
    """A files listing of `n` rows (more than OFF_LOOP_ROWS) and the directory that shows it."""
    remote.listings[FILES] = [FakeRemote.row(f"{i}.dcm", b"x") for i in range(n)]
    return root_node(ROOT_DIR).child("DICOM", dir=FilesDir(Source(FILES)))


async def test_a_big_listing_is_built_off_the_loop_once_and_equal_to_a_small_build() -> None:
    remote = FakeRemote()
    node = big_files(remote, OFF_LOOP_ROWS + 1)
    lists = listings(remote)
    assert lists.peek(node) is None  # nothing is fetched or built for a peek
    await lists.listing(node.dir.source())  # type: ignore[union-attr]
    assert lists.peek(node) is None  # fetched, but its entries are not built on the loop
    got: list[object] = []
    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(lambda: _append(got, lists.children(node)))
    assert len({id(c) for c in got}) == 1  # one build, shared
    children = got[0]
    assert lists.peek(node) is children
    listing = await lists.listing(node.dir.source())  # type: ignore[union-attr]
    inline = Children.of(node.dir.entries(node, Listing(listing.source, listing.rows)))  # type: ignore[union-attr]
    assert [n.name for n in children.ordered] == [n.name for n in inline.ordered]  # type: ignore[attr-defined]
    # What the worker derived on its copy is kept: the folder tree is not computed again.
    assert listing.known("tree") is not None
    found = await lists.lookup(node, f"{OFF_LOOP_ROWS}.dcm")
    assert found is not None and found.file is not None


async def _append(out: list[object], work: Awaitable[object]) -> None:
    out.append(await work)


def test_the_estimate_of_a_big_listing_is_a_sample_scaled_up() -> None:
    rows = [{"URI": f"/data/x/{i:06d}", "Size": "100"} for i in range(100_000)]
    exact = sum(450 + sum(len(v) + 60 for v in r.values()) for r in rows) + 200
    assert abs(estimate_bytes(rows) - exact) < exact // 100
    assert estimate_bytes([]) == 200


def test_every_column_the_code_reads_is_kept() -> None:
    read = columns_read(*(REPO / "xnatfs" / p for p in ("namespace", "data", "fs", "app")))
    assert {"URI", "Size", "digest", "ID", "label", "collection", "xsiType"} <= read
    assert read <= LISTING_COLUMNS, f"read but not kept: {sorted(read - LISTING_COLUMNS)}"


def columns_read(*packages: Path) -> set[str]:
    """Listing columns the source reads: `row.get("X")`, `row["X"]`, `need(row, "X")`,
    `newest_time(rows, "X", ...)`, and `*_key = "X" if ... else "Y"` names used as keys."""
    found: set[str] = set()
    for package in packages:
        for path in package.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                found |= _columns_in(node)
    return found


def _strings(node: ast.AST) -> set[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return _strings(node.body) | _strings(node.orelse)
    return set()


def _columns_in(node: ast.AST) -> set[str]:
    rowish = ("row", "r")
    if isinstance(node, ast.Call):
        func = node.func
        if (
            isinstance(func, ast.Attribute)
            and func.attr == "get"
            and node.args
            and isinstance(func.value, ast.Name)
            and func.value.id in rowish
        ):
            return _strings(node.args[0])
        if isinstance(func, ast.Name) and func.id == "need" and len(node.args) > 1:
            return _strings(node.args[1])
        if isinstance(func, ast.Name) and func.id == "newest_time":
            return set().union(*(_strings(a) for a in node.args[1:]))
    if (
        isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Name)
        and node.value.id in rowish
    ):
        return _strings(node.slice)
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        target = node.targets[0]
        if isinstance(target, ast.Name) and target.id.endswith("_key"):
            return _strings(node.value)
    return set()
