"""Inode numbers: stable, one per XNAT object, collision-checked, and memory that comes back."""

from __future__ import annotations

from xnatfs.fileversion import FileVersion
from xnatfs.fs.inodes import ROOT_INODE, InodeTable
from xnatfs.namespace.levels import RootDir
from xnatfs.namespace.values import Node, child_key, file_key, root_node


def tree() -> tuple[Node, Node, Node]:
    root = root_node(RootDir())
    project = root.child("P", dir=RootDir())
    scan_file = project.child("a.dcm", file=FileVersion("/data/experiments/E/scans/1/x", 1, ""))
    return root, project, scan_file


def test_numbers_come_from_what_the_entry_is_and_survive_forgetting() -> None:
    root, project, f = tree()
    table = InodeTable(root)
    a = table.remember(project)
    assert a == child_key(root.key, "P") and a != ROOT_INODE
    assert table.remember(project) == a and table.count(a) == 2
    table.forget([(a, 2), (ROOT_INODE, 5)])
    assert table.get(a) is None
    assert table.get(ROOT_INODE) is root and table.count(ROOT_INODE) == 1
    # Forgotten and looked up again, or on a new mount: the same number.
    assert table.remember(project) == a
    assert InodeTable(root).remember(f) == table.remember(f) == file_key(f.file.uri)  # type: ignore[union-attr]


def test_one_file_reached_through_two_paths_is_one_inode() -> None:
    root, project, f = tree()
    other = root.child("ALL", dir=RootDir()).child("a.dcm", file=f.file, links=3)
    table = InodeTable(root)
    assert table.remember(f) == table.remember(other)
    assert table.count(table.ino_of(f)) == 2


def test_a_key_collision_gets_another_number_and_keeps_it() -> None:
    root, project, f = tree()
    table = InodeTable(root)
    a = table.remember(project)
    # Another directory whose key (by a 1-in-2**63 accident) is the same number.
    impostor = Node(name="Q", parent=root, key=project.key, mtime_ns=0, dir=RootDir())
    b = table.remember(impostor)
    assert b != a and table.get(b) is impostor and table.collisions == 1
    table.forget([(a, 1)])  # its natural slot is free again, but it keeps its number
    assert table.remember(impostor) == b


def test_forget_is_batched_partial_and_tolerant() -> None:
    root, project, f = tree()
    table = InodeTable(root)
    a = table.remember(project)
    b = table.remember(f)
    table.remember(project)
    table.forget([(a, 1), (b, 1), (999, 3)])  # an unknown inode is ignored, never raised
    assert table.count(a) == 1 and table.get(b) is None
    assert table.counts() == {ROOT_INODE: 1, a: 1}
    assert len(table) == 2


def test_the_tables_shrink_once_most_inodes_are_forgotten() -> None:
    root, project, _ = tree()
    table = InodeTable(root)
    nodes = [
        project.child(f"{i}.dcm", file=FileVersion(f"/data/f/{i}", 1, "")) for i in range(20_000)
    ]
    inos = [table.remember(n) for n in nodes]
    big = table._nodes.__sizeof__()
    table.forget([(i, 1) for i in inos[:-10]])
    assert len(table) == 11 and table._nodes.__sizeof__() < big // 20


def test_pyfuse3_agrees_on_the_root_inode() -> None:
    import pyfuse3

    assert pyfuse3.ROOT_INODE == ROOT_INODE
