"""The mapping rules (tree, hierarchy, filedirs): listing rows -> named entries, and the
requests behind each directory."""

from __future__ import annotations

from xnatfs.namespace.files import FilesDir, GroupedFilesDir
from xnatfs.namespace.levels import ROOT_DIR, CollectionDir, ExperimentDir, OwnerDir, SelectorDir
from xnatfs.namespace.rules import SLASH_STANDIN, display_name, parse_time_ns
from xnatfs.namespace.values import (
    Children,
    Node,
    Source,
    sort_nodes,
)

E = "XNAT_E00001"


def node(d: object, path: tuple[str, ...] = ("TEST", "1", "MR1", "scans")) -> Node:
    return Node(name=path[-1], path=path, mtime_ns=1, dir=d)  # type: ignore[arg-type]


def names(nodes: list[Node]) -> list[str]:
    return [n.name for n in nodes]


def scan_rows() -> list[dict[str, str]]:
    return [
        {"ID": "1", "type": "T1", "URI": f"/data/experiments/{E}/scans/1"},
        {"ID": "2", "type": "T1", "URI": f"/data/experiments/{E}/scans/2"},
        {"ID": "3", "type": "T2/FLAIR", "URI": f"/data/experiments/{E}/scans/3"},
        {"ID": "4", "type": "1", "URI": f"/data/experiments/{E}/scans/4"},
        {"ID": "5", "type": "", "URI": f"/data/experiments/{E}/scans/5"},
    ]


def test_scans_listing_ids_types_and_all() -> None:
    d = CollectionDir(E, "scans")
    assert d.source().path == f"/data/experiments/{E}/scans"
    got = Children.of(d.entries(node(d), scan_rows()))
    # Scan IDs, types that are not also IDs (type "1" loses to scan 1), ALL; "/" shown as ∕.
    assert sorted(got.by_name) == sorted(
        ["1", "2", "3", "4", "5", "T1", f"T2{SLASH_STANDIN}FLAIR", "ALL"]
    )
    assert got.by_name["1"].dir == OwnerDir(E, "scans", "1")
    assert got.by_name["T1"].dir == SelectorDir(E, "scans", ("T1",))
    assert got.by_name[f"T2{SLASH_STANDIN}FLAIR"].dir == SelectorDir(E, "scans", ("T2/FLAIR",))


def test_comma_lists_resolve_without_being_listed() -> None:
    d = CollectionDir(E, "scans")
    parent = node(d)
    sel = d.resolve(parent, f"1,T2{SLASH_STANDIN}FLAIR", scan_rows())
    assert sel is not None and sel.dir == SelectorDir(E, "scans", ("1", "T2/FLAIR"))
    assert sel.dir.source().path == f"/data/experiments/{E}/scans/1,T2%5BSLASH%5DFLAIR/resources"
    assert d.resolve(parent, "nope", scan_rows()) is None
    assert d.resolve(parent, "1,", scan_rows()) is None


def test_single_scan_keeps_only_its_own_resources() -> None:
    d = OwnerDir(E, "scans", "1")
    rows = [
        {"xnat_abstractresource_id": "11", "label": "DICOM", "cat_id": "1"},
        {"xnat_abstractresource_id": "44", "label": "DICOM", "cat_id": "4"},  # type "1" matched
        {"xnat_abstractresource_id": "12", "label": "", "cat_id": "1"},
    ]
    got = d.entries(node(d), rows)
    assert names(got) == ["DICOM", "12"]
    assert got[0].dir == FilesDir(Source(f"/data/experiments/{E}/scans/1/resources/11/files"))


def test_resource_labelled_with_digits_is_requested_by_id() -> None:
    d = OwnerDir(E, "reconstructions", "RECON1")
    rows = [{"xnat_abstractresource_id": "907", "label": "1", "cat_id": "RECON1"}]
    (res,) = d.entries(node(d), rows)
    assert res.name == "1"
    assert isinstance(res.dir, FilesDir)
    assert res.dir.source().path == (
        f"/data/experiments/{E}/reconstructions/RECON1/out/resources/907/files"
    )


def test_files_with_subfolders() -> None:
    base = f"/data/experiments/{E}/resources/5/files"
    d = FilesDir(Source(base))
    rows = [
        {"Name": "a.txt", "Size": "3", "URI": f"{base}/a.txt", "digest": "x"},
        {"Name": "b.dcm", "Size": "", "URI": f"{base}/sub/b.dcm", "digest": ""},
        {"Name": "c.dcm", "Size": "7", "URI": f"{base}/sub/deeper/c.dcm", "digest": ""},
    ]
    top = d.entries(node(d), rows)
    assert names(top) == ["a.txt", "sub"]
    assert top[0].file is not None and top[0].file.size == 3
    sub = top[1]
    assert isinstance(sub.dir, FilesDir) and sub.dir.prefix == ("sub",)
    inner = sub.dir.entries(sub, rows)
    assert names(inner) == ["b.dcm", "deeper"]
    assert inner[0].file is not None and inner[0].file.size is None  # empty Size


def test_selector_groups_files_by_scan_in_one_listing() -> None:
    sel = SelectorDir(E, "scans", ("T1",))
    res_rows = [
        {"xnat_abstractresource_id": "11", "label": "DICOM", "cat_id": "1"},
        {"xnat_abstractresource_id": "21", "label": "DICOM", "cat_id": "2"},
        {"xnat_abstractresource_id": "12", "label": "SNAPSHOTS", "cat_id": "1"},
    ]
    got = Children.of(sel.entries(node(sel), res_rows))
    assert list(got.by_name) == ["DICOM", "SNAPSHOTS"]
    dicom = got.by_name["DICOM"]
    assert isinstance(dicom.dir, GroupedFilesDir)
    assert dicom.dir.source().path == f"/data/experiments/{E}/scans/T1/resources/11,21/files"
    files = [
        {
            "Name": "1.dcm",
            "Size": "10",
            "URI": f"/data/experiments/{E}/scans/1/resources/11/files/1.dcm",
        },
        {
            "Name": "1.dcm",
            "Size": "20",
            "URI": f"/data/experiments/{E}/scans/2/resources/21/files/1.dcm",
        },
    ]
    groups = dicom.dir.entries(dicom, files)
    assert names(groups) == ["1", "2"]
    g2 = groups[1]
    assert isinstance(g2.dir, GroupedFilesDir)
    (f,) = g2.dir.entries(g2, files)
    assert f.name == "1.dcm" and f.file is not None and f.file.size == 20
    assert f.file.uri.endswith("/scans/2/resources/21/files/1.dcm")


def test_selector_comma_joined_uri_names_the_owner_of_its_resource() -> None:
    members = (("11", "1"),)
    d = GroupedFilesDir(Source("/x", collection="scans", owners=members), "scans", members)
    files = [
        {
            "Name": "1.dcm",
            "Size": "1",
            "URI": f"/data/experiments/{E}/scans/1,2/resources/11/files/1.dcm",
            "cat_ID": "11",
        }
    ]
    (group,) = d.entries(node(d), files)
    assert group.name == "1"
    assert group.dir is not None
    (f,) = group.dir.entries(group, files)
    # One URI whatever path reaches the file: one cache entry, and a GET of exactly it.
    assert f.file is not None
    assert f.file.uri == f"/data/experiments/{E}/scans/1/resources/11/files/1.dcm"


def test_an_owners_files_listing_knows_its_owner() -> None:
    d = OwnerDir(E, "scans", "2")
    rows = [{"xnat_abstractresource_id": "21", "label": "DICOM", "cat_id": "2"}]
    (res,) = d.entries(node(d), rows)
    assert isinstance(res.dir, FilesDir)
    files = [
        {
            "Name": "a",
            "Size": "1",
            "URI": f"/data/experiments/{E}/scans/2,9/resources/21/files/a",
            "cat_ID": "21",
        }
    ]
    (f,) = res.dir.entries(res, files)
    assert (
        f.file is not None and f.file.uri == f"/data/experiments/{E}/scans/2/resources/21/files/a"
    )


def test_experiment_has_exactly_the_fixed_children() -> None:
    d = ExperimentDir(E)
    assert d.source() is None
    assert names(d.entries(node(d, ("TEST", "1", "MR1")), [])) == [
        "scans",
        "reconstructions",
        "assessors",
        "resources",
    ]


def test_root_lists_projects_with_their_insert_date() -> None:
    rows = [{"ID": "TEST", "insert_date": "2024-01-02 03:04:05.0"}, {"ID": "B", "insert_date": ""}]
    root = Node(name="", path=(), mtime_ns=5, dir=ROOT_DIR)
    got = ROOT_DIR.entries(root, rows)
    assert names(got) == ["TEST", "B"]
    assert got[0].mtime_ns == parse_time_ns("2024-01-02 03:04:05.0") != 5
    assert got[1].mtime_ns == 5


def test_names_and_sorting() -> None:
    assert display_name("a/b") == f"a{SLASH_STANDIN}b"
    assert display_name("..") is None and display_name("") is None
    nodes = [Node(n, (n,), 0) for n in ["10.dcm", "2.dcm", "1.dcm"]]
    assert names(sort_nodes(nodes)) == ["1.dcm", "2.dcm", "10.dcm"]
