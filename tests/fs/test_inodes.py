from __future__ import annotations

from xnatfs.fs.inodes import ROOT_INODE, InodeTable


def test_root_is_pinned_and_numbers_are_never_reused() -> None:
    table: InodeTable[str] = InodeTable("root", ("",))
    a = table.remember(("a",), "A")
    assert a != ROOT_INODE and table.remember(("a",), "A2") == a
    assert table.get(a) == "A2" and table.count(a) == 2
    table.forget([(a, 2), (ROOT_INODE, 5)])
    assert table.get(a) is None and table.peek(("a",)) is None
    assert table.get(ROOT_INODE) == "root" and table.count(ROOT_INODE) == 1
    again = table.remember(("a",), "A")
    assert again not in (a, ROOT_INODE)


def test_forget_is_batched_partial_and_tolerant() -> None:
    table: InodeTable[str] = InodeTable("root", ("",))
    a = table.remember(("a",), "A")
    b = table.remember(("b",), "B")
    table.remember(("a",), "A")
    table.forget([(a, 1), (b, 1), (999, 3)])  # an unknown inode is ignored, never raised
    assert table.count(a) == 1 and table.get(b) is None
    assert table.counts() == {ROOT_INODE: 1, a: 1}
    assert len(table) == 2


def test_pyfuse3_agrees_on_the_root_inode() -> None:
    import pyfuse3

    assert pyfuse3.ROOT_INODE == ROOT_INODE
