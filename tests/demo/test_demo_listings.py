"""Listings: envelopes, column sets, IDs vs labels, URIs, permissions (reference §2, §7)."""

from __future__ import annotations

import hashlib
import json

import requests

from tests.demo.conftest import get_json, rows
from xnatfs.demo import DemoServer

EXP = "/data/projects/TEST/subjects/1/experiments/MR1"


def _all_strings(result: list[dict[str, object]]) -> bool:
    return all(isinstance(v, str) for row in result for v in row.values())


def test_projects_envelope_exact_bytes_and_chunked(
    server: DemoServer, http: requests.Session
) -> None:
    resp = http.get(server.url + "/data/projects", params={"format": "json"})
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in resp.headers
    text = resp.text
    assert text.startswith('{"ResultSet":{"Result":[')
    assert text.endswith('], "totalRecords": "3"}}')  # TEST, STUDY, LOCKED; SECRET is hidden
    result = json.loads(text)["ResultSet"]["Result"]
    assert [r["ID"] for r in result] == ["TEST", "STUDY", "LOCKED"]
    assert set(result[0]) == {
        "ID",
        "secondary_ID",
        "name",
        "description",
        "pi_firstname",
        "pi_lastname",
        "URI",
    }
    assert result[0]["URI"] == "/data/projects/TEST"
    assert _all_strings(result)


def test_projects_have_no_insert_date_whatever_columns_ask(
    server: DemoServer, http: requests.Session
) -> None:
    # As real XNAT: no project date, and unknown column names are ignored (reference §11a).
    result = rows(http, server.url + "/data/projects", columns="insert_date,bogus_column")
    assert set(result[0]) == {"ID", "URI"}
    assert all("insert_date" not in r for r in rows(http, server.url + "/data/projects"))


def test_default_json_without_format_param(server: DemoServer, http: requests.Session) -> None:
    resp = http.get(server.url + "/data/projects")
    assert resp.status_code == 200 and resp.json()["ResultSet"]["totalRecords"] == "3"


def test_subjects_labels_differ_from_ids(server: DemoServer, http: requests.Session) -> None:
    result = rows(http, server.url + "/data/projects/STUDY/subjects")
    assert [r["label"] for r in result] == ["sub-01", "sub-02", "sub-03", "sub-04"]
    for r in result:
        assert r["ID"].startswith("XNAT_S") and r["ID"] != r["label"]
        assert r["URI"] == f"/data/subjects/{r['ID']}"
        assert set(r) == {"ID", "project", "label", "insert_date", "insert_user", "URI"}
    assert _all_strings(result)


def test_experiments_columns_and_same_handler_under_archive(
    server: DemoServer, http: requests.Session
) -> None:
    a = get_json(http, server.url + "/data/projects/TEST/subjects/1/experiments")
    b = get_json(http, server.url + "/data/archive/projects/TEST/subjects/XNAT_S00001/experiments")
    c = get_json(http, server.url + "/REST/projects/TEST/experiments")
    assert a == b == c
    (row,) = a["ResultSet"]["Result"]
    assert row["ID"] == "XNAT_E00001" and row["label"] == "MR1"
    assert row["xnat:subjectassessordata/id"] == row["ID"]
    assert row["URI"] == "/data/experiments/XNAT_E00001"
    assert row["xsiType"] == "xnat:mrSessionData"
    assert a["ResultSet"]["totalRecords"] == "1"


def test_site_wide_experiments_include_assessors(
    server: DemoServer, http: requests.Session
) -> None:
    data = get_json(http, server.url + "/data/experiments", project="TEST")
    assert data["ResultSet"]["title"] == "Matching experiments"
    types = {r["label"]: r["xsiType"] for r in data["ResultSet"]["Result"]}
    assert types == {"MR1": "xnat:mrSessionData", "ASSESS1": "xnat:qcAssessmentData"}


def test_paging_drops_total_records(server: DemoServer, http: requests.Session) -> None:
    data = get_json(http, server.url + "/data/projects/STUDY/subjects", limit="2", offset="1")
    assert "totalRecords" not in data["ResultSet"]
    assert [r["label"] for r in data["ResultSet"]["Result"]] == ["sub-02", "sub-03"]


def test_sort_by(server: DemoServer, http: requests.Session) -> None:
    result = rows(
        http, server.url + "/data/projects/STUDY/subjects", sortBy="label", sortOrder="DESC"
    )
    assert [r["label"] for r in result] == ["sub-04", "sub-03", "sub-02", "sub-01"]


def test_scans_listing(server: DemoServer, http: requests.Session) -> None:
    data = get_json(http, server.url + EXP + "/scans")
    result = data["ResultSet"]["Result"]
    assert data["ResultSet"]["totalRecords"] == "4" and "title" not in data["ResultSet"]
    assert [(r["ID"], r["type"]) for r in result] == [
        ("1", "T1"),
        ("2", "T1"),
        ("3", "T2"),
        ("4", "T2"),
    ]
    assert set(result[0]) == {
        "xnat_imagescandata_id",
        "ID",
        "type",
        "quality",
        "xsiType",
        "note",
        "series_description",
        "URI",
    }
    assert result[0]["URI"] == "/data/experiments/XNAT_E00001/scans/1"
    assert _all_strings(result)


def test_reconstructions_and_assessors(server: DemoServer, http: requests.Session) -> None:
    (recon,) = rows(http, server.url + EXP + "/reconstructions")
    assert recon["ID"] == "RECON1" and recon["type"] == "T1"
    assert recon["URI"] == "/data/experiments/XNAT_E00001/reconstructions/RECON1"
    assert set(recon) == {"xnat_reconstructedimagedata_id", "ID", "type", "baseScanType", "URI"}
    (assessor,) = rows(http, server.url + EXP + "/assessors")
    assert assessor["label"] == "ASSESS1" and assessor["ID"] != "ASSESS1"
    assert assessor["xsiType"] == "xnat:qcAssessmentData"
    assert assessor["URI"] == f"/data/experiments/{assessor['ID']}"
    assert assessor["session_ID"] == "XNAT_E00001"


def test_resources_envelope(server: DemoServer, http: requests.Session) -> None:
    resp = http.get(server.url + EXP + "/scans/1/resources", params={"format": "json"})
    assert resp.text.endswith(', "totalRecords": "2","title": "Resources"}}')
    result = resp.json()["ResultSet"]["Result"]
    assert [r["label"] for r in result] == ["DICOM", "SNAPSHOTS"]
    assert set(result[0]) == {
        "xnat_abstractresource_id",
        "label",
        "element_name",
        "category",
        "cat_id",
        "cat_desc",
        "file_count",
        "file_size",
        "tags",
        "content",
        "format",
    }
    assert "ID" not in result[0] and "URI" not in result[0]
    assert result[0]["category"] == "scans" and result[0]["cat_id"] == "1"
    assert result[0]["cat_desc"] == "T1" and result[0]["file_count"] == "2"
    assert _all_strings(result)


def test_resource_cat_desc_is_a_space_at_owner_levels(
    server: DemoServer, http: requests.Session
) -> None:
    (proto,) = rows(http, server.url + "/data/projects/STUDY/resources")
    assert proto["category"] == "resources" and proto["cat_id"] == "" and proto["cat_desc"] == " "
    exp_rows = rows(http, server.url + "/data/projects/STUDY/experiments/sub-01_MR1/resources")
    assert {r["cat_desc"] for r in exp_rows} == {" "}
    unlabeled = [r for r in exp_rows if r["label"] == ""]
    assert len(unlabeled) == 1 and unlabeled[0]["file_count"] == ""  # stats never computed


def test_experiment_all_true_covers_every_resource(
    server: DemoServer, http: requests.Session
) -> None:
    result = rows(http, server.url + "/data/experiments/XNAT_E00001/resources", all="true")
    assert {r["category"] for r in result} == {"scans", "reconstructions", "assessors"}
    assert len(result) == 4 * 2 + 1 + 1


def test_files_listing_single_catalog_uri_keeps_project_subject(
    server: DemoServer, http: requests.Session
) -> None:
    data = get_json(http, server.url + EXP + "/scans/1/resources/DICOM/files")
    rs = data["ResultSet"]
    assert rs["Columns"] == [{"key": "URI", "serverRoot": ""}]
    assert rs["title"] == "Files" and "totalRecords" not in rs
    res_id = rs["Result"][0]["cat_ID"]
    assert rs["Result"][0]["URI"] == (
        f"/data/projects/TEST/subjects/XNAT_S00001/experiments/XNAT_E00001/scans/1/resources/"
        f"{res_id}/files/1.dcm"
    )
    assert set(rs["Result"][0]) == {
        "Name",
        "Size",
        "URI",
        "collection",
        "file_tags",
        "file_format",
        "file_content",
        "cat_ID",
        "digest",
    }
    assert _all_strings(rs["Result"])


def test_files_digest_and_size_match_the_bytes(server: DemoServer, http: requests.Session) -> None:
    for row in rows(http, server.url + "/data/experiments/XNAT_E00001/scans/3/files"):
        body = http.get(server.url + row["URI"]).content
        assert row["Size"] == str(len(body))
        assert row["digest"] == hashlib.md5(body).hexdigest()


def test_multi_scan_listing_duplicate_names_distinct_uris(
    server: DemoServer, http: requests.Session
) -> None:
    result = rows(http, server.url + EXP + "/scans/T1/resources/DICOM/files")
    assert sorted(r["Name"] for r in result) == ["1.dcm", "1.dcm", "2.dcm", "2.dcm"]
    uris = {r["URI"] for r in result}
    assert len(uris) == 4
    assert {u.split("/scans/")[1].split("/")[0] for u in uris} == {"1", "2"}
    assert all(u.startswith("/data/experiments/XNAT_E00001/scans/") for u in uris)


def test_type_selector_single_resource_joins_scan_ids(
    server: DemoServer, http: requests.Session
) -> None:
    """§3.5 quirk: several scans match, only one has the resource -> one catalog, ids joined."""
    site = server.site
    exp = site.experiment_by_id("XNAT_E00001")
    assert exp is not None
    res = site.add_resource(exp.scans["2"], "EXTRA")
    site.add_file(res, "x.txt", b"extra")
    (row,) = rows(http, server.url + EXP + "/scans/T1/resources/EXTRA/files")
    assert row["URI"] == (
        f"/data/projects/TEST/subjects/XNAT_S00001/experiments/XNAT_E00001/scans/1,2/resources/"
        f"{res.id}/files/x.txt"
    )


def test_files_shortcut_and_subfolders(server: DemoServer, http: requests.Session) -> None:
    result = rows(
        http, server.url + "/data/projects/STUDY/experiments/sub-01_MR1/resources/NOTES/files"
    )
    by_name = {r["Name"]: r for r in result}
    assert "sequences" not in "".join(by_name)  # Name is the basename only
    t1 = by_name["t1.txt"]
    assert t1["URI"].endswith("/files/protocol/sequences/t1.txt")
    assert by_name["report.txt"]["Size"] == ""  # a catalog entry without size
    body = http.get(server.url + t1["URI"]).text
    assert body.startswith("T1 MPRAGE")
    shortcut = rows(http, server.url + "/data/projects/STUDY/experiments/sub-01_MR1/files")
    assert {r["collection"] for r in shortcut} == {"NOTES", ""}


def test_project_files_without_digest(server: DemoServer, http: requests.Session) -> None:
    result = rows(http, server.url + "/data/projects/STUDY/resources/PROTOCOL/files")
    assert len(result) == 3 and {r["digest"] for r in result} == {""}
    assert all(r["URI"].startswith("/data/projects/STUDY/resources/") for r in result)


def test_unknown_resource_label_is_empty_200(server: DemoServer, http: requests.Session) -> None:
    data = get_json(http, server.url + EXP + "/scans/1/resources/NOPE/files")
    assert data["ResultSet"]["Result"] == []


def _restricted_ids(server: DemoServer, project_id: str) -> tuple[str, str]:
    project = server.site.project(project_id)
    assert project is not None
    (subject,) = project.subjects.values()
    (experiment,) = subject.experiments.values()
    return subject.id, experiment.id


def test_private_project_invisible_everywhere(server: DemoServer, http: requests.Session) -> None:
    s_id, e_id = _restricted_ids(server, "SECRET")
    for path in (
        "/data/projects/SECRET",
        "/data/projects/SECRET/subjects",
        "/data/projects/SECRET/resources",
        "/data/projects/SECRET/resources/DOCS/files",
        f"/data/subjects/{s_id}",
        f"/data/experiments/{e_id}",
        f"/data/experiments/{e_id}/scans",
        f"/data/experiments/{e_id}/scans/1/files/1.dcm",
    ):
        assert http.get(server.url + path, params={"format": "json"}).status_code == 404, path
    assert all(r["project"] != "SECRET" for r in rows(http, server.url + "/data/experiments"))


def test_protected_project_listed_but_data_forbidden(
    server: DemoServer, http: requests.Session
) -> None:
    assert http.get(server.url + "/data/projects/LOCKED", params={"format": "json"}).ok
    s_id, e_id = _restricted_ids(server, "LOCKED")
    for path in (
        "/data/projects/LOCKED/subjects",
        "/data/projects/LOCKED/experiments",
        "/data/projects/LOCKED/subjects/locked-01/experiments",
        f"/data/subjects/{s_id}",
        f"/data/experiments/{e_id}/scans",
        f"/data/experiments/{e_id}/scans/1/resources/DICOM/files/1.dcm",
        "/data/projects/LOCKED/resources",
        "/data/projects/LOCKED/resources/DOCS/files/readme.txt",
    ):
        resp = http.get(server.url + path, params={"format": "json"})
        assert resp.status_code == 403, path
        assert "<h3>" in resp.text


def test_member_reads_restricted_projects() -> None:
    from xnatfs.demo import build_demo_site

    with DemoServer(build_demo_site(), users={"owner": "pw"}) as srv, requests.Session() as s:
        s.auth = ("owner", "pw")
        projects = {r["ID"] for r in rows(s, srv.url + "/data/projects")}
        assert {"SECRET", "LOCKED"} <= projects
        assert rows(s, srv.url + "/data/projects/SECRET/subjects")[0]["label"] == "secret-01"


def test_unknown_routes_and_version(server: DemoServer, http: requests.Session) -> None:
    assert http.get(server.url + "/data/version").status_code == 404
    assert http.get(server.url + "/data/projects/NOPE/subjects").status_code == 404
    assert http.get(server.url + "/data/projects/TEST/subjects/NOPE/experiments").status_code == 404
    assert http.get(server.url + "/data/experiments/NOPE/scans").status_code == 404


def test_item_documents(server: DemoServer, http: requests.Session) -> None:
    doc = get_json(http, server.url + "/data/projects/TEST/subjects/1/experiments/MR1")
    (item,) = doc["items"]
    assert item["meta"]["xsi:type"] == "xnat:mrSessionData" and item["meta"]["isHistory"] is False
    assert item["data_fields"]["ID"] == "XNAT_E00001"
    fields = {child["field"] for child in item["children"]}
    assert {"scans/scan", "reconstructions/reconstructedImage", "assessors/assessor"} <= fields
    scan = get_json(http, server.url + "/data/experiments/XNAT_E00001/scans/2")["items"][0]
    assert scan["data_fields"]["type"] == "T1" and scan["meta"]["xsi:type"] == "xnat:mrScanData"
