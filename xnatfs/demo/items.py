"""Single-object documents (`GET /data/.../{object}?format=json`) and the data-type schemas.

XNAT answers a single object with an "items" document: `{"items": [{"children": [...],
"meta": {...}, "data_fields": {...}}]}`, numbers as JSON numbers (unlike table listings),
children grouped by field (`scans/scan`, `resources/resource`, ...). Clients such as xnatpy read
`data_fields`, `meta.xsi:type` and `meta.isHistory`; the demo fills in what its model knows.

The schemas (`/xapi/schemas/{name}`) are small hand-written XSDs in `assets/` that declare the
data types the demo site uses, enough for a client that builds its object model from them.
"""

from __future__ import annotations

import html
import time
from importlib import resources as importlib_resources
from typing import Any

from xnatfs.demo import listings
from xnatfs.demo.listings import Scope
from xnatfs.demo.model import Assessor, Experiment, Project, Reconstruction, Resource, Scan, Subject
from xnatfs.demo.site import Site

Doc = dict[str, Any]

SCHEMA_NAMES = ["xnat", "fs"]


def schema(name: str) -> bytes | None:
    """The XSD named `name` (`xnat`, `xnat.xsd`, `fs`, ...) from the package assets."""
    stem = name.removesuffix(".xsd")
    if stem not in SCHEMA_NAMES:
        return None
    asset = importlib_resources.files("xnatfs.demo") / "assets" / f"{stem}.xsd"
    return asset.read_bytes() if asset.is_file() else None


# Data types of the demo site: (element, singular, plural, display fields).
_ELEMENTS = (
    ("xnat:projectData", "Project", "Projects", ("ID", "NAME", "DESCRIPTION", "INSERT_DATE")),
    ("xnat:subjectData", "Subject", "Subjects", ("SUBJECT_ID", "SUBJECT_LABEL", "INSERT_DATE")),
    ("xnat:mrSessionData", "MR Session", "MR Sessions",
     ("SESSION_ID", "LABEL", "DATE", "SUBJECT_ID", "INSERT_DATE")),
    ("xnat:mrScanData", "MR Scan", "MR Scans", ("ID", "TYPE", "SERIES_DESCRIPTION")),
    ("xnat:qcAssessmentData", "QC Assessment", "QC Assessments", ("EXPT_ID", "LABEL", "DATE")),
    ("fs:fsData", "Freesurfer", "Freesurfers", ("EXPT_ID", "LABEL", "DATE")),
)  # fmt: skip


def search_elements(site: Site) -> list[dict[str, str]]:
    """Rows of `/data/search/elements` (COUNT: how many objects of that type exist)."""
    counts = {"xnat:projectData": len(site.projects),
              "xnat:subjectData": sum(1 for _ in site.subjects())}  # fmt: skip
    for e in site.experiments():
        counts[e.xsi_type] = counts.get(e.xsi_type, 0) + 1
        for scan in e.scans.values():
            counts[scan.xsi_type] = counts.get(scan.xsi_type, 0) + 1
        for a in e.assessors.values():
            counts[a.xsi_type] = counts.get(a.xsi_type, 0) + 1
    return [
        {"ELEMENT_NAME": name, "SINGULAR": singular, "PLURAL": plural, "CATEGORY": "",
         "SECURED": "true", "COUNT": str(counts.get(name, 0))}
        for name, singular, plural, _ in _ELEMENTS
    ]  # fmt: skip


def search_fields(element: str) -> list[dict[str, str]] | None:
    """Rows of `/data/search/elements/{element}`; None for an unknown data type."""
    for name, _, _, fields in _ELEMENTS:
        if name == element:
            return [
                {"FIELD_ID": f, "HEADER": f.replace("_", " ").title(), "SUMMARY": "",
                 "TYPE": "string", "REQUIRES_VALUE": "false", "DESC": "", "ELEMENT_NAME": name,
                 "SRC": "0"}
                for f in fields
            ]  # fmt: skip
    return None


def _java_date(date_text: str) -> str:
    """`2023-01-10 11:05:12.345` -> `Tue Jan 10 11:05:12 UTC 2023` (XNAT's meta start_date)."""
    try:
        t = time.strptime(date_text[:19], "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return ""
    return time.strftime("%a %b %d %H:%M:%S UTC %Y", t)


def _item(xsi_type: str, fields: dict[str, Any], children: list[Doc], inserted: str) -> Doc:
    meta = {"create_event_id": 1, "xsi:type": xsi_type, "isHistory": False}
    start = _java_date(inserted)
    if start:
        meta["start_date"] = start
    return {
        "children": children,
        "meta": meta,
        "data_fields": {k: v for k, v in fields.items() if v not in ("", None)},
    }


def _group(field: str, docs: list[Doc]) -> list[Doc]:
    return [{"field": field, "items": docs}] if docs else []


def resource_doc(r: Resource, inserted: str = "") -> Doc:
    fields = {
        "xnat_abstractresource_id": r.id,
        "label": r.label,
        "format": r.format,
        "content": r.content,
        "file_count": len(r.files),
        "file_size": r.file_size,
    }
    return _item(r.element_name, fields, [], inserted)


def _resources(field: str, res: list[Resource], inserted: str) -> list[Doc]:
    return _group(field, [resource_doc(r, inserted) for r in res])


def scan_doc(s: Scan, e: Experiment) -> Doc:
    fields = {
        "ID": s.id,
        "type": s.type,
        "quality": s.quality,
        "series_description": s.series_description,
        "note": s.note,
        "image_session_ID": e.id,
        "project": e.project,
        "xnat_imagescandata_id": s.pk,
    }
    return _item(s.xsi_type, fields, _resources("file", s.resources, e.insert_date), e.insert_date)


def recon_doc(r: Reconstruction, e: Experiment) -> Doc:
    fields = {"ID": r.id, "type": r.type, "baseScanType": r.base_scan_type,
              "xnat_reconstructedimagedata_id": r.pk}  # fmt: skip
    children = _resources("out/file", r.out_resources, e.insert_date) + _resources(
        "in/file", r.in_resources, e.insert_date
    )
    return _item("xnat:reconstructedImageData", fields, children, e.insert_date)


def assessor_doc(a: Assessor, e: Experiment) -> Doc:
    fields = {"ID": a.id, "label": a.label, "project": a.project, "date": a.date,
              "imageSession_ID": e.id}  # fmt: skip
    children = _resources("out/file", a.out_resources, a.insert_date) + _resources(
        "in/file", a.in_resources, a.insert_date
    )
    return _item(a.xsi_type, fields, children, a.insert_date)


def experiment_doc(e: Experiment) -> Doc:
    fields = {"ID": e.id, "label": e.label, "project": e.project, "subject_ID": e.subject_id,
              "date": e.date, "modality": "MR"}  # fmt: skip
    children = (
        _group("scans/scan", [scan_doc(s, e) for s in e.scans.values()])
        + _group("reconstructions/reconstructedImage",
                 [recon_doc(r, e) for r in e.reconstructions.values()])
        + _group("assessors/assessor", [assessor_doc(a, e) for a in e.assessors.values()])
        + _resources("resources/resource", e.resources, e.insert_date)
    )  # fmt: skip
    return _item(e.xsi_type, fields, children, e.insert_date)


def subject_doc(s: Subject) -> Doc:
    fields = {"ID": s.id, "label": s.label, "project": s.project}
    children = _resources("resources/resource", s.resources, s.insert_date)
    return _item("xnat:subjectData", fields, children, s.insert_date)


def project_doc(p: Project) -> Doc:
    fields = {"ID": p.id, "secondary_ID": p.secondary_id, "name": p.name,
              "description": p.description}  # fmt: skip
    children = _resources("resources/resource", p.resources, p.insert_date)
    if p.pi_lastname:
        pi = {"firstname": p.pi_firstname, "lastname": p.pi_lastname}
        children.append({"field": "PI", "items": [_item("xnat:investigatorData", pi, [], "")]})
    return _item("xnat:projectData", fields, children, p.insert_date)


def item_document(site: Site, scope: Scope, v: dict[str, str]) -> Doc | None:
    """The items document for the deepest object the path names (None if it names several)."""
    exp = scope.experiment
    doc: Doc | None = None
    if "RES" in v:
        cats = listings.selected_catalogs(scope, v["RES"])
        doc = resource_doc(cats[0].resource) if len(cats) == 1 else None
    elif exp is not None and scope.scans is not None:
        doc = scan_doc(scope.scans[0], exp) if len(scope.scans) == 1 else None
    elif exp is not None and scope.recons is not None:
        doc = recon_doc(scope.recons[0], exp) if len(scope.recons) == 1 else None
    elif exp is not None and scope.assessors is not None:
        doc = assessor_doc(scope.assessors[0], exp) if len(scope.assessors) == 1 else None
    elif exp is not None:
        doc = experiment_doc(exp)
    elif scope.subject is not None:
        doc = subject_doc(scope.subject)
    elif scope.project is not None:
        doc = project_doc(scope.project)
    return {"items": [doc]} if doc is not None else None


def to_xml(doc: Doc) -> bytes:
    """A flat XML rendering of an items document (XNAT sends its full XML schema instance)."""
    item = doc["items"][0]
    xsi_type = item["meta"]["xsi:type"]
    prefix, _, name = xsi_type.partition(":")
    attrs = "".join(
        f' {k}="{html.escape(str(v))}"' for k, v in item["data_fields"].items() if k != "label"
    )
    label = item["data_fields"].get("label", "")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<{prefix}:{name[0].upper() + name[1:]} xmlns:{prefix}="http://nrg.wustl.edu/{prefix}"'
        f"{attrs}{f' label={chr(34)}{html.escape(label)}{chr(34)}' if label else ''}/>\n"
    ).encode()
