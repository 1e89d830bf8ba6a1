"""The mapping rules (tree, hierarchy, filedirs): listing rows -> named entries, and the
requests behind each directory."""

from __future__ import annotations

from xnatfs.namespace.files import FilesDir, GroupedFilesDir
from xnatfs.namespace.levels import ROOT_DIR, ExperimentDir, RootDir
from xnatfs.namespace.owners import CollectionDir, OwnerDir, SelectorDir
from xnatfs.namespace.rules import SLASH_STANDIN, display_name, parse_time_ns
from xnatfs.namespace.values import (
    Children,
    FilesContext,
    Listing,
    Node,
    Rows,
    Source,
    file_key,
    root_node,
    sort_nodes,
    unique,
)

E = "XNAT_E00001"


def node(d: object, path: tuple[str, ...] = ("TEST", "1", "MR1", "scans")) -> Node:
    """A directory node for `d` at `path` (its ancestors stand in as plain directories)."""
    n = root_node(ROOT_DIR, 1)
    for name in path[:-1]:
        n = n.child(name, dir=ROOT_DIR)
    return n.child(path[-1], dir=d)  # type: ignore[arg-type]


def L(rows: Rows, source: Source | None = None) -> Listing:
    """A fetched listing of `rows`."""
    return Listing(source, rows)


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
    got = Children.of(d.entries(node(d), L(scan_rows())))
    # Scan IDs, types that are not also IDs (type "1" loses to scan 1), ALL; "/" shown as ∕.
    assert sorted(got.by_name) == sorted(
        ["1", "2", "3", "4", "5", "T1", f"T2{SLASH_STANDIN}FLAIR", "ALL"]
    )
    assert got.by_name["1"].dir == OwnerDir(E, "scans", "1", links=3)  # scans/1, T1/, ALL/
    assert got.by_name["3"].dir == OwnerDir(E, "scans", "3", links=3)
    assert got.by_name["4"].dir == OwnerDir(E, "scans", "4", links=2)  # type "1" is not listed
    assert got.by_name["5"].dir == OwnerDir(E, "scans", "5", links=2)  # no type
    assert got.by_name["T1"].dir == SelectorDir(E, "scans", ("T1",))
    assert got.by_name[f"T2{SLASH_STANDIN}FLAIR"].dir == SelectorDir(E, "scans", ("T2/FLAIR",))


def test_comma_lists_resolve_without_being_listed() -> None:
    d = CollectionDir(E, "scans")
    parent = node(d)
    sel = d.resolve(parent, f"1,T2{SLASH_STANDIN}FLAIR", L(scan_rows()))
    assert sel is not None and sel.dir == SelectorDir(E, "scans", ("1", "T2/FLAIR"))
    assert sel.dir.source().path == f"/data/experiments/{E}/scans/1,T2%5BSLASH%5DFLAIR/resources"
    assert d.resolve(parent, "nope", L(scan_rows())) is None
    assert d.resolve(parent, "1,", L(scan_rows())) is None
    # Selector directories that are listed resolve by name too (needed when they are hidden).
    hidden = CollectionDir(E, "scans", selectors=False)
    assert "T1" not in Children.of(hidden.entries(parent, L(scan_rows()))).by_name
    found = hidden.resolve(parent, "T1", L(scan_rows()))
    assert found is not None and found.dir == SelectorDir(E, "scans", ("T1",))
    assert hidden.resolve(parent, "ALL", L(scan_rows())) is not None


def test_single_scan_keeps_only_its_own_resources() -> None:
    d = OwnerDir(E, "scans", "1")
    rows = [
        {"xnat_abstractresource_id": "11", "label": "DICOM", "cat_id": "1"},
        {"xnat_abstractresource_id": "44", "label": "DICOM", "cat_id": "4"},  # type "1" matched
        {"xnat_abstractresource_id": "12", "label": "", "cat_id": "1"},
    ]
    got = d.entries(node(d), L(rows))
    assert names(got) == ["DICOM", "12"]
    assert got[0].dir == FilesDir(Source(f"/data/experiments/{E}/scans/1/resources/11/files"))
    assert got[0].dir.source().context == FilesContext("scans", {"11": "1"}, links={"1": 1})


def test_resource_labelled_with_digits_is_requested_by_id() -> None:
    d = OwnerDir(E, "reconstructions", "RECON1")
    rows = [{"xnat_abstractresource_id": "907", "label": "1", "cat_id": "RECON1"}]
    (res,) = d.entries(node(d), L(rows))
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
    top = d.entries(node(d), L(rows))
    assert names(top) == ["a.txt", "sub"]
    assert top[0].file is not None and top[0].file.size == 3
    sub = top[1]
    assert isinstance(sub.dir, FilesDir) and sub.dir.prefix == ("sub",)
    inner = sub.dir.entries(sub, L(rows))
    assert names(inner) == ["b.dcm", "deeper"]
    assert inner[0].file is not None and inner[0].file.size is None  # empty Size


def test_selector_groups_files_by_scan_in_one_listing() -> None:
    sel = SelectorDir(E, "scans", ("T1",))
    res_rows = [
        {"xnat_abstractresource_id": "11", "label": "DICOM", "cat_id": "1"},
        {"xnat_abstractresource_id": "21", "label": "DICOM", "cat_id": "2"},
        {"xnat_abstractresource_id": "12", "label": "SNAPSHOTS", "cat_id": "1"},
    ]
    got = Children.of(sel.entries(node(sel), L(res_rows)))
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
    groups = dicom.dir.entries(dicom, L(files, dicom.dir.source()))
    assert names(groups) == ["1", "2"]
    g2 = groups[1]
    assert isinstance(g2.dir, GroupedFilesDir)
    (f,) = g2.dir.entries(g2, L(files, dicom.dir.source()))
    assert f.name == "1.dcm" and f.file is not None and f.file.size == 20
    assert f.file.uri.endswith("/scans/2/resources/21/files/1.dcm")


def test_selector_comma_joined_uri_names_the_owner_of_its_resource() -> None:
    members = (("11", "1"),)
    context = FilesContext("scans", dict(members))
    d = GroupedFilesDir(Source("/x", context=context), "scans")
    files = [
        {
            "Name": "1.dcm",
            "Size": "1",
            "URI": f"/data/experiments/{E}/scans/1,2/resources/11/files/1.dcm",
            "cat_ID": "11",
        }
    ]
    (group,) = d.entries(node(d), L(files, d.source()))
    assert group.name == "1"
    assert group.dir is not None
    (f,) = group.dir.entries(group, L(files, d.source()))
    # One URI whatever path reaches the file: one cache entry, and a GET of exactly it.
    assert f.file is not None
    assert f.file.uri == f"/data/experiments/{E}/scans/1/resources/11/files/1.dcm"


def test_an_owners_files_listing_knows_its_owner() -> None:
    d = OwnerDir(E, "scans", "2")
    rows = [{"xnat_abstractresource_id": "21", "label": "DICOM", "cat_id": "2"}]
    (res,) = d.entries(node(d), L(rows))
    assert isinstance(res.dir, FilesDir)
    files = [
        {
            "Name": "a",
            "Size": "1",
            "URI": f"/data/experiments/{E}/scans/2,9/resources/21/files/a",
            "cat_ID": "21",
        }
    ]
    (f,) = res.dir.entries(res, L(files, res.dir.source()))
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


def test_root_lists_projects_whose_time_comes_from_their_subjects() -> None:
    # Real XNAT sends no project date: a project's time comes from its own subjects' listing.
    root = root_node(ROOT_DIR)
    got = ROOT_DIR.entries(root, L([{"ID": "TEST"}, {"ID": "B"}]))
    assert names(got) == ["TEST", "B"]
    assert all(n.mtime_ns == 0 for n in got)
    subjects = [
        {"ID": "S1", "insert_date": "2024-01-02 03:04:05.0"},
        {"ID": "S2", "insert_date": "2023-01-02 03:04:05.0"},
        {"ID": "S3", "insert_date": ""},
    ]
    assert got[0].dir is not None
    assert got[0].dir.time(L(subjects)) == parse_time_ns("2024-01-02 03:04:05.0")
    assert got[0].dir.time(L([])) is None
    # `--project`: only those, and the root's time is the newest of theirs.
    only = RootDir(projects=("B",))
    assert names(only.entries(root, L([{"ID": "TEST"}, {"ID": "B"}]))) == ["B"]
    assert only.time_source() is None and ROOT_DIR.time_source() is not None


def test_names_and_sorting() -> None:
    assert display_name("a/b") == f"a{SLASH_STANDIN}b"
    assert display_name("..") is None and display_name("") is None
    root = root_node(ROOT_DIR)
    nodes = [root.child(n, dir=ROOT_DIR) for n in ["10.dcm", "2.dcm", "1.dcm"]]
    assert names(sort_nodes(nodes)) == ["1.dcm", "2.dcm", "10.dcm"]


# --- names no file system can show ----------------------------------------------------------


def test_names_without_bytes_get_keys_and_are_left_out() -> None:
    parent = root_node(ROOT_DIR, 1)
    lone = parent.child("\ud800", dir=ROOT_DIR)
    assert lone.key != parent.child("\ud801", dir=ROOT_DIR).key
    assert file_key("/data/files/\ud800") != file_key("/data/files/\ud801")
    kept = unique([lone, parent.child("ok", dir=ROOT_DIR), parent.child("n" * 256, dir=ROOT_DIR)])
    assert [n.name for n in kept] == ["ok"]


def test_a_name_is_kept_as_the_text_its_bytes_decode_to() -> None:
    parent = root_node(ROOT_DIR, 1)
    escaped = parent.child("\udcc3\udca9", dir=ROOT_DIR)  # the bytes of "é", escaped
    plain = parent.child("é", dir=ROOT_DIR)
    (kept,) = unique([escaped, plain])
    # The first wins, under the name a lookup of those bytes asks for, with its own key.
    assert kept.name == "é" and kept.key == escaped.key == plain.key
    assert Children.of([kept]).by_name["é"] is kept
    (raw,) = unique([parent.child("\udcff", dir=ROOT_DIR)])
    assert raw.name == "\udcff"  # a byte that is not UTF-8 stays escaped: fsdecode's own form
