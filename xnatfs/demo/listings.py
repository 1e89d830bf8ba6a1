"""Table rows, catalog selection and archive entry paths.

Pure functions over the model (reference §2, §2.2.6, §4.2); the route handlers resolve the request
path into a `Scope` and call these with `Site.lock` held. The ResultSet envelope around the rows
is written by `routes/tables.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from xnatfs.demo import selectors
from xnatfs.demo.model import (
    Assessor,
    CatalogEntry,
    Experiment,
    Project,
    Reconstruction,
    Resource,
    Scan,
    Subject,
)

Row = dict[str, str]
OwnerKind = Literal["project", "subject", "experiment", "scan", "recon", "assessor"]

# Singular display names XNAT puts in cat_desc for assessor resources.
ASSESSOR_NAMES = {
    "xnat:qcAssessmentData": "QC Assessment",
    "xnat:qcManualAssessorData": "Manual QC",
    "fs:fsData": "Freesurfer",
}


@dataclass
class Scope:
    """What a request path names. `scans`/`recons`/`assessors` are None when the path does not
    go down to that level, and a (possibly empty) list of matches when it does."""

    project: Project | None = None
    subject: Subject | None = None
    experiment: Experiment | None = None
    scans: list[Scan] | None = None
    recons: list[Reconstruction] | None = None
    assessors: list[Assessor] | None = None
    direction: Literal["in", "out"] = "out"
    path_has_project: bool = False
    path_has_subject: bool = False
    all_resources: bool = False  # experiment level with all=true


@dataclass
class Catalog:
    """One resource together with where it hangs (for URIs, rows and archive paths)."""

    resource: Resource
    kind: OwnerKind
    base: str  # the resource owner's own ID-based URI, e.g. /data/experiments/E/scans/1
    category: str
    cat_id: str
    cat_desc: str
    owner_label: str  # scan/recon/assessor ID, or "" for project/subject/experiment level
    owner_type: str  # scan/recon type, for the default zip layout
    archive_root: str  # session label, subject label or project ID


def _experiment_catalogs(scope: Scope, exp: Experiment) -> list[Catalog]:
    base = f"/data/experiments/{exp.id}"
    out: list[Catalog] = []
    if scope.scans is not None:
        for scan in scope.scans:
            out += [
                Catalog(r, "scan", f"{base}/scans/{scan.id}", "scans", scan.id, scan.type,
                        scan.id, scan.type, exp.label)
                for r in scan.resources
            ]  # fmt: skip
        return out
    if scope.recons is not None:
        for recon in scope.recons:
            res = recon.in_resources if scope.direction == "in" else recon.out_resources
            out += [
                Catalog(r, "recon", f"{base}/reconstructions/{recon.id}/{scope.direction}",
                        "reconstructions", recon.id, recon.type, recon.id, recon.type, exp.label)
                for r in res
            ]  # fmt: skip
        return out
    if scope.assessors is not None:
        for a in scope.assessors:
            res = a.in_resources if scope.direction == "in" else a.out_resources
            out += [
                Catalog(r, "assessor", f"{base}/assessors/{a.id}/{scope.direction}", "assessors",
                        a.id, ASSESSOR_NAMES.get(a.xsi_type, a.xsi_type), a.id, "", exp.label)
                for r in res
            ]  # fmt: skip
        return out
    desc = "" if scope.all_resources else " "
    out = [
        Catalog(r, "experiment", base, "resources", exp.id, desc, "", "", exp.label)
        for r in exp.resources
    ]
    if scope.all_resources:
        out += _experiment_catalogs(Scope(scans=list(exp.scans.values())), exp)
        out += _experiment_catalogs(Scope(recons=list(exp.reconstructions.values())), exp)
        out += _experiment_catalogs(Scope(assessors=list(exp.assessors.values())), exp)
    return out


def catalogs(scope: Scope) -> list[Catalog]:
    """Every resource the scope covers, before any resource selector is applied."""
    if scope.experiment is not None:
        return _experiment_catalogs(scope, scope.experiment)
    if scope.subject is not None:
        s = scope.subject
        base = f"/data/projects/{s.project}/subjects/{s.id}"
        return [
            Catalog(r, "subject", base, "resources", "", " ", "", "", s.label) for r in s.resources
        ]
    assert scope.project is not None
    p = scope.project
    return [
        Catalog(r, "project", f"/data/projects/{p.id}", "resources", "", " ", "", "", p.id)
        for r in p.resources
    ]


def selected_catalogs(scope: Scope, resource_selector: str | None) -> list[Catalog]:
    """The catalogs of `scope` whose resource `resource_selector` (the `{RES}` path segment,
    reference §3) names, in listing order; every catalog when there is no selector."""
    cats = catalogs(scope)
    if resource_selector is None:
        return cats
    chosen = {
        id(r) for r in selectors.match_resources([c.resource for c in cats], resource_selector)
    }
    return [c for c in cats if id(c.resource) in chosen]


def single_catalog_base(scope: Scope, cat: Catalog) -> str:
    """The owner part of file URIs when exactly one catalog is listed (handleSingleCatalog):
    project/subject prefix only when the request path had both, IDs of *all* matched scans
    (recons, assessors) comma-joined."""
    prefix = "/data"
    if scope.path_has_project and scope.path_has_subject and scope.subject is not None:
        prefix += f"/projects/{scope.subject.project}/subjects/{scope.subject.id}"
    exp = scope.experiment
    if cat.kind == "scan" and exp is not None and scope.scans is not None:
        return f"{prefix}/experiments/{exp.id}/scans/{','.join(s.id for s in scope.scans)}"
    if cat.kind == "recon" and exp is not None and scope.recons is not None:
        ids = ",".join(r.id for r in scope.recons)
        return f"{prefix}/experiments/{exp.id}/reconstructions/{ids}/{scope.direction}"
    if cat.kind == "assessor" and exp is not None and scope.assessors is not None:
        ids = ",".join(a.id for a in scope.assessors)
        return f"{prefix}/experiments/{exp.id}/assessors/{ids}/{scope.direction}"
    if cat.kind == "experiment" and exp is not None:
        return f"{prefix}/experiments/{exp.id}"
    if cat.kind == "subject" and scope.subject is not None:
        if scope.path_has_project:
            return prefix  # already /data/projects/P/subjects/S
        return f"/data/subjects/{scope.subject.id}"
    return cat.base


# --- rows ---------------------------------------------------------------------------------------


def project_row(p: Project) -> Row:
    # Real XNAT sends no insert date for projects, whatever `columns=` asks (reference §11a).
    return {
        "ID": p.id,
        "secondary_ID": p.secondary_id,
        "name": p.name,
        "description": p.description,
        "pi_firstname": p.pi_firstname,
        "pi_lastname": p.pi_lastname,
        "URI": f"/data/projects/{p.id}",
    }


PROJECT_COLUMNS = ["ID", "secondary_ID", "name", "description", "pi_firstname", "pi_lastname"]


def subject_row(s: Subject, label: str | None = None) -> Row:
    return {
        "ID": s.id,
        "project": s.project,
        "label": s.label if label is None else label,
        "insert_date": s.insert_date,
        "insert_user": s.insert_user,
        "URI": f"/data/subjects/{s.id}",
    }


SUBJECT_COLUMNS = ["ID", "project", "label", "insert_date", "insert_user"]


def experiment_row(e: Experiment, subject: Subject | None = None) -> Row:
    row = {
        "ID": e.id,
        "project": e.project,
        "date": e.date,
        "xsiType": e.xsi_type,
        "label": e.label,
        "insert_date": e.insert_date,
        "xnat:subjectassessordata/id": e.id,
        "URI": f"/data/experiments/{e.id}",
    }
    if subject is not None:
        row["subject_ID"] = subject.id
        row["subject_label"] = subject.label
    return row


EXPERIMENT_COLUMNS = ["ID", "project", "date", "xsiType", "label", "insert_date",
                      "xnat:subjectassessordata/id"]  # fmt: skip
SITE_EXPERIMENT_COLUMNS = ["ID", "project", "date", "xsiType", "label", "insert_date"]


def assessor_row(a: Assessor, session: Experiment) -> Row:
    return {
        "ID": a.id,
        "project": a.project,
        "label": a.label,
        "date": a.date,
        "xsiType": a.xsi_type,
        "insert_date": a.insert_date,
        "session_ID": session.id,
        "session_label": session.label,
        "URI": f"/data/experiments/{a.id}",
    }


ASSESSOR_COLUMNS = ["ID", "project", "label", "date", "xsiType", "insert_date",
                    "session_ID", "session_label"]  # fmt: skip


def scan_row(s: Scan, e: Experiment) -> Row:
    return {
        "xnat_imagescandata_id": str(s.pk),
        "ID": s.id,
        "type": s.type,
        "quality": s.quality,
        "xsiType": s.xsi_type,
        "note": s.note,
        "series_description": s.series_description,
        "URI": f"/data/experiments/{e.id}/scans/{s.id}",
    }


SCAN_COLUMNS = ["xnat_imagescandata_id", "ID", "type", "quality", "xsiType", "note",
                "series_description"]  # fmt: skip


def recon_row(r: Reconstruction, e: Experiment) -> Row:
    return {
        "xnat_reconstructedimagedata_id": str(r.pk),
        "ID": r.id,
        "type": r.type,
        "baseScanType": r.base_scan_type,
        # Not a default column; returned when asked for with columns= (xnatpy asks for it).
        "xsiType": "xnat:reconstructedImageData",
        "URI": f"/data/experiments/{e.id}/reconstructions/{r.id}",
    }


RECON_COLUMNS = ["xnat_reconstructedimagedata_id", "ID", "type", "baseScanType"]


def resource_row(cat: Catalog) -> Row:
    r = cat.resource
    return {
        "xnat_abstractresource_id": str(r.id),
        "label": r.label,
        "element_name": r.element_name,
        "category": cat.category,
        "cat_id": cat.cat_id,
        "cat_desc": cat.cat_desc,
        "file_count": str(len(r.files)) if r.stats_known else "",
        "file_size": str(r.file_size) if r.stats_known else "",
        "tags": r.tags,
        "content": r.content,
        "format": r.format,
    }


def file_row(cat: Catalog, entry: CatalogEntry, base: str) -> Row:
    r = cat.resource
    return {
        "Name": entry.name,
        "Size": str(entry.data.size) if entry.size_known else "",
        "URI": f"{base}/resources/{r.id}/files/{entry.path}",
        "collection": r.label,
        "file_tags": "",
        "file_format": entry.format,
        "file_content": entry.content,
        "cat_ID": str(r.id),
        "digest": entry.data.md5 if entry.digest_known else "",
    }


# --- archive entry paths (reference §4.2) --------------------------------------------------------

_UNSAFE_DESC = re.compile(r'[/\\:*?"<>|]')


def archive_path(cat: Catalog, entry: CatalogEntry, structure: str, *, tar: bool = False) -> str:
    r = cat.resource
    label = r.label or str(r.id)
    if structure == "improved":
        desc = cat.cat_desc.strip()
        level = cat.cat_id
        if desc and not tar:
            level = f"{cat.cat_id}_{_UNSAFE_DESC.sub('_', desc)}"
        # Only the part after the URI's last "/files/" (FileList.getImprovedPath).
        tail = f"{r.id}/files/{entry.path}".rpartition("/files/")[2]
        parts = [cat.category, level, label, tail]
        return "/".join(p for p in parts if p)
    # Default layout: the owner's URI below the session (or subject/project), resource ID
    # replaced by its label, scan IDs suffixed with their type.
    if cat.kind in ("scan", "recon", "assessor", "experiment"):
        tail = cat.base.split("/", 4)[4] if cat.base.count("/") >= 4 else ""
        owner = f"{cat.archive_root}/{tail}".rstrip("/")
    else:
        owner = cat.archive_root
    path = f"{owner}/resources/{label}/files/{entry.path}"
    if structure == "simplified":
        return path.replace("/resources", "").replace("/files", "")
    if cat.kind == "scan" and cat.owner_type:
        suffix = re.sub(r"\W", "_", cat.owner_type)
        path = path.replace(f"/{cat.owner_label}/", f"/{cat.owner_label}-{suffix}/")
    return path
