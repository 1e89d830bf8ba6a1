"""`build_demo_site`: the demo archive the server and the tests use, built through the `Site`
mutation API. Project TEST is exactly the session of the XNAT download how-to; STUDY is a
realistic study; SECRET (private) and LOCKED (protected) are what the demo user may not read.
"""

from __future__ import annotations

import calendar
import time

from xnatfs.demo import content
from xnatfs.demo.model import Experiment, Scan, Subject
from xnatfs.demo.site import Site


def _epoch(date: str, clock: str = "12:00:00") -> float:
    return float(calendar.timegm(time.strptime(f"{date} {clock}", "%Y-%m-%d %H:%M:%S")))


DEMO_MEMBERS = frozenset({"owner"})  # users allowed into SECRET and LOCKED (not the demo user)


def _add_series(
    site: Site,
    exp: Experiment,
    scan: Scan,
    *,
    patient: str,
    slices: int,
    rows: int,
    cols: int,
    weighting: str,
    series_number: int,
    snapshot: bool = True,
) -> None:
    mtime = _epoch(exp.date, "09:45:00")
    dicom = site.add_resource(scan, "DICOM", format="DICOM", content="RAW")
    for name, data in content.mr_series(
        patient=patient,
        study_key=exp.id + exp.label,
        study_date=exp.date.replace("-", ""),
        study_description="Demo MR",
        series_number=series_number,
        series_description=scan.series_description or scan.type,
        slices=slices,
        rows=rows,
        cols=cols,
        weighting=weighting,
        mtime=mtime,
    ):
        site.add_file(dicom, name, data, content="RAW")
    if snapshot:
        snaps = site.add_resource(scan, "SNAPSHOTS", format="GIF", content="SNAPSHOTS")
        site.add_file(
            snaps, "snap.jpg", content.snapshot_file(0.0, weighting, mtime), format="JPEG"
        )


def _build_test(site: Site) -> None:
    """Project TEST exactly as in the 'Downloading Files via XNAT REST API' example."""
    site.add_project(
        "TEST",
        "Test project",
        secondary_id="TEST",
        description="The example session of the XNAT download how-to",
        pi_firstname="Ada",
        pi_lastname="Lovelace",
        insert_date="2023-01-09 10:15:00.000",
    )
    site.add_subject("TEST", "1", insert_date="2023-01-10 11:00:00.000")
    exp = site.add_experiment(
        "TEST", "1", "MR1", date="2023-01-10", insert_date="2023-01-10 11:05:12.345"
    )
    for scan_id, scan_type in (("1", "T1"), ("2", "T1"), ("3", "T2"), ("4", "T2")):
        scan = site.add_scan(exp, scan_id, scan_type)
        _add_series(
            site,
            exp,
            scan,
            patient="TEST_1",
            slices=2,
            rows=64,
            cols=64,
            weighting=scan_type,
            series_number=int(scan_id),
        )
    mtime = _epoch(exp.date, "10:30:00")
    recon = site.add_reconstruction(exp, "RECON1", "T1", base_scan_type="T1")
    # An all-digit label: addressing it as ".../resources/1" means resource ID 1 to XNAT.
    res = site.add_resource(recon, "1", format="ANALYZE")
    for name, data in content.analyze_pair("something", "T1", mtime):
        site.add_file(res, name, data)
    assessor = site.add_assessor(exp, "ASSESS1", "xnat:qcAssessmentData")
    res = site.add_resource(assessor, "TEST", format="ANALYZE")
    for name, data in content.analyze_pair("something", "T2", mtime):
        site.add_file(res, name, data)


_NOTES = {
    "protocol/readme.txt": "Session notes for {label}.\nAll series acquired axially.\n",
    "protocol/sequences/t1.txt": "T1 MPRAGE: TR 500 ms, TE 12 ms, 1 mm isotropic.\n",
    "protocol/sequences/flair.txt": "T2 FLAIR: TR 4000 ms, TE 95 ms.\n",
    "qc/report.txt": "QC passed for {label}: no motion, full coverage.\n",
    "session notes.txt": "Operator notes for {label} (a file name with a space).\n",
}


def _study_session(
    site: Site, subject: Subject, label: str, date: str, *, dwi: bool, odd_scans: bool
) -> Experiment:
    exp = site.add_experiment(
        "STUDY", subject.id, label, date=date, insert_date=f"{date} 17:31:21.352"
    )
    patient = subject.label.upper().replace("-", "")
    loc = site.add_scan(exp, "1", "Localizer", quality="usable")
    _add_series(site, exp, loc, patient=patient, slices=3, rows=128, cols=128, weighting="T1",
                series_number=1)  # fmt: skip
    t1 = site.add_scan(exp, "2", "T1 MPRAGE", series_description="t1_mprage_sag_p2")
    _add_series(site, exp, t1, patient=patient, slices=176, rows=256, cols=256, weighting="T1",
                series_number=2)  # fmt: skip
    flair = site.add_scan(exp, "3", "T2/FLAIR", series_description="t2_flair_tra")
    _add_series(site, exp, flair, patient=patient, slices=160, rows=192, cols=192,
                weighting="T2", series_number=3)  # fmt: skip
    if dwi:
        diff = site.add_scan(exp, "4", "DWI", quality="questionable")
        _add_series(site, exp, diff, patient=patient, slices=240, rows=128, cols=256,
                    weighting="T2", series_number=4, snapshot=False)  # fmt: skip
    if odd_scans:
        # A scan whose type is another scan's ID: "scans/2" matches both scan 2 and this one.
        odd = site.add_scan(exp, "11", "2", series_description="2", quality="unusable")
        _add_series(site, exp, odd, patient=patient, slices=4, rows=64, cols=64, weighting="T1",
                    series_number=11, snapshot=False)  # fmt: skip
        # A scan without a type (matched by the NULL selector).
        untyped = site.add_scan(exp, "99", "", series_description="", quality="")
        _add_series(site, exp, untyped, patient=patient, slices=2, rows=64, cols=64,
                    weighting="T1", series_number=99, snapshot=False)  # fmt: skip
    mtime = _epoch(date, "18:00:00")
    notes = site.add_resource(exp, "NOTES", format="TXT")
    for path, text in _NOTES.items():
        site.add_file(
            notes,
            path,
            content.text_file(text.format(label=label), mtime),
            # One file the catalog has no size for, as after a manual catalog edit.
            size_known=path != "qc/report.txt",
        )
    # An unlabeled resource (shown by its numeric ID).
    misc = site.add_resource(exp, "", stats_known=False)
    site.add_file(misc, "unlabeled.txt", content.text_file("An unlabeled resource.\n", mtime))
    fs = site.add_assessor(exp, f"{label}_freesurfer", "fs:fsData")
    out = site.add_resource(fs, "DATA", format="FREESURFER")
    site.add_file(out, "stats/aseg.stats", content.text_file(_aseg(label), mtime))
    for name, data in content.analyze_pair("mri/aseg", "T1", mtime):
        site.add_file(out, name, data)
    log = site.add_resource(fs, "LOG", direction="in", format="TXT")
    site.add_file(log, "recon-all.log", content.text_file(f"recon-all -s {label}\n", mtime))
    qc = site.add_assessor(exp, f"{label}_qc", "xnat:qcAssessmentData")
    qres = site.add_resource(qc, "QC", format="TXT")
    site.add_file(qres, "qc.txt", content.text_file(f"{label}: pass\n", mtime))
    return exp


def _aseg(label: str) -> str:
    return (
        f"# Title Segmentation Statistics\n# subjectname {label}\n"
        "# ColHeaders Index SegId NVoxels Volume_mm3 StructName\n"
        "  1   4   7000   7012.5  Left-Lateral-Ventricle\n"
        "  2  17   4100   4150.0  Left-Hippocampus\n"
    )


def _build_study(site: Site, big_file_size: int) -> None:
    site.add_project(
        "STUDY",
        "Ageing Brain Study",
        secondary_id="ABS",
        description="A longitudinal MR study of healthy ageing (demo data).",
        pi_firstname="Grace",
        pi_lastname="Hopper",
        insert_date="2023-02-01 09:00:00.000",
    )
    proto = site.add_resource(site.projects["STUDY"], "PROTOCOL", format="PDF")
    mtime = _epoch("2023-02-01")
    for path, text in (
        ("study_protocol.txt", "Ageing Brain Study protocol, version 3.\n"),
        ("forms/intake.txt", "Intake form template.\n"),
        ("forms/consent_template.txt", "Consent form template.\n"),
    ):
        # Files uploaded before checksums were enabled on the site: no digest.
        site.add_file(proto, path, content.text_file(text, mtime), digest_known=False)
    sessions = (
        ("sub-01", ("sub-01_MR1", "2023-03-14", True, True),
                   ("sub-01_MR2", "2024-03-19", False, False)),
        ("sub-02", ("sub-02_MR1", "2023-04-02", False, True)),
        ("sub-03", ("sub-03_MR1", "2023-05-21", False, False)),
        ("sub-04",),  # enrolled, not scanned yet
    )  # fmt: skip
    first: Experiment | None = None
    for subject_label, *visits in sessions:
        assert isinstance(subject_label, str)
        subject = site.add_subject("STUDY", subject_label, insert_date="2023-03-01 08:00:00.000")
        consent = site.add_resource(subject, "CONSENT", format="TXT")
        site.add_file(
            consent,
            "consent.txt",
            content.text_file(f"Signed consent of {subject_label}.\n", mtime),
        )
        for visit in visits:
            assert isinstance(visit, tuple)
            label, date, dwi, odd = visit
            exp = _study_session(site, subject, label, date, dwi=dwi, odd_scans=odd)
            first = first or exp
    if big_file_size and first is not None:
        raw = site.add_resource(first, "RAW", format="DAT")
        site.add_file(
            raw,
            "raw/kspace.dat",
            content.PatternFile(big_file_size, seed=1, mtime=_epoch(first.date, "09:50:00")),
        )


def _build_restricted(site: Site) -> None:
    for project_id, access in (("SECRET", "private"), ("LOCKED", "protected")):
        site.add_project(
            project_id,
            f"{project_id.title()} project",
            access=access,  # type: ignore[arg-type]
            members=DEMO_MEMBERS,
            description=f"A {access} project the demo user cannot read.",
        )
        subject = site.add_subject(project_id, f"{project_id.lower()}-01")
        exp = site.add_experiment(
            project_id, subject.id, f"{project_id.lower()}-01_MR1", date="2023-06-01",
            insert_date="2023-06-01 12:00:00.000",
        )  # fmt: skip
        scan = site.add_scan(exp, "1", "T1")
        _add_series(site, exp, scan, patient=project_id, slices=2, rows=64, cols=64,
                    weighting="T1", series_number=1, snapshot=False)  # fmt: skip
        res = site.add_resource(site.projects[project_id], "DOCS", format="TXT")
        site.add_file(res, "readme.txt", content.text_file(f"{project_id} data\n", 0.0))


def build_demo_site(*, big_file_size: int = 0) -> Site:
    """The demo archive: TEST (the how-to example), STUDY (a realistic study), SECRET (private)
    and LOCKED (protected). Cheap to call: contents are generated lazily on first read.

    `big_file_size` > 0 adds `STUDY/sub-01/sub-01_MR1` resource `RAW` with `raw/kspace.dat` of
    that many bytes (pseudo-random, generated per offset)."""
    site = Site()
    _build_test(site)
    _build_study(site, big_file_size)
    _build_restricted(site)
    return site
