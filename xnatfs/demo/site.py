"""`Site`: the demo archive with its ID counters, lookups and mutation API. The demo archive
itself (`build_demo_site`) is built in `demo_site.py`.

All reads and writes of the object tree happen under `Site.lock` (a re-entrant lock): the server
takes it while it computes a listing or resolves a path, tests take it implicitly through the
mutation methods. Contents (`DemoFile`) are immutable, so bytes can be streamed without the lock.

IDs follow XNAT's conventions: accession IDs `XNAT_S00001` (subjects) and `XNAT_E00001`
(experiments and assessors share one counter), numeric `xnat_abstractresource_id`s from one
site-wide counter, numeric primary keys for scans and reconstructions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any, Literal

from xnatfs.demo import content
from xnatfs.demo.content import DemoFile
from xnatfs.demo.model import (
    Access,
    Assessor,
    CatalogEntry,
    Experiment,
    Owner,
    Project,
    Reconstruction,
    Resource,
    Scan,
    Subject,
)

Direction = Literal["in", "out"]


class Site:
    """An XNAT archive in memory. Build one with `build_demo_site()` or from scratch."""

    def __init__(self, site_id: str = "XNAT") -> None:
        self.site_id = site_id
        self.lock = threading.RLock()
        self.projects: dict[str, Project] = {}
        self._subjects: dict[str, Subject] = {}
        self._experiments: dict[str, Experiment] = {}
        self._assessors: dict[str, tuple[Experiment, Assessor]] = {}
        self._next_accession: dict[str, int] = {}
        self._next_resource = 1
        self._next_scan_pk = 101
        self._next_recon_pk = 11

    # --- IDs ------------------------------------------------------------------------------------

    def _accession(self, kind: str) -> str:
        number = self._next_accession.get(kind, 1)
        self._next_accession[kind] = number + 1
        return f"{self.site_id}_{kind}{number:05d}"

    # --- lookups (call with the lock held when consistency across calls matters) ---------------

    def project(self, project_id: str) -> Project | None:
        return self.projects.get(project_id)

    def subject_by_id(self, subject_id: str) -> Subject | None:
        return self._subjects.get(subject_id)

    def experiment_by_id(self, experiment_id: str) -> Experiment | None:
        return self._experiments.get(experiment_id)

    def assessor_by_id(self, assessor_id: str) -> tuple[Experiment, Assessor] | None:
        return self._assessors.get(assessor_id)

    def find_subject(self, project: Project, ref: str) -> Subject | None:
        """A subject of `project` by label, else by accession ID (as XNAT resolves paths)."""
        for subject in project.subjects.values():
            if subject.label == ref:
                return subject
        by_id = self._subjects.get(ref)
        return by_id if by_id is not None and by_id.project == project.id else None

    def find_experiment(self, project: Project, ref: str) -> Experiment | None:
        """An experiment by accession ID (any project), else by label within `project`."""
        found = self._experiments.get(ref)
        if found is not None:
            return found
        for subject in project.subjects.values():
            for experiment in subject.experiments.values():
                if experiment.label == ref:
                    return experiment
        return None

    def experiments(self) -> Iterator[Experiment]:
        yield from self._experiments.values()

    def subjects(self) -> Iterator[Subject]:
        yield from self._subjects.values()

    # --- mutation API -----------------------------------------------------------------------------

    def add_project(
        self, project_id: str, name: str, *, access: Access = "public", **fields: Any
    ) -> Project:
        with self.lock:
            if project_id in self.projects:
                raise ValueError(f"project {project_id} exists")
            fields.setdefault("secondary_id", project_id)
            fields.setdefault("insert_date", "2023-01-09 10:15:00.000")
            project = Project(id=project_id, name=name, access=access, **fields)
            self.projects[project_id] = project
            return project

    def add_subject(self, project_id: str, label: str, **fields: Any) -> Subject:
        with self.lock:
            project = self.projects[project_id]
            if self.find_subject(project, label) is not None:
                raise ValueError(f"subject {label} exists in {project_id}")
            fields.setdefault("insert_date", project.insert_date)
            subject = Subject(id=self._accession("S"), label=label, project=project_id, **fields)
            project.subjects[subject.id] = subject
            self._subjects[subject.id] = subject
            return subject

    def add_experiment(
        self, project_id: str, subject_ref: str, label: str, **fields: Any
    ) -> Experiment:
        """Add a session to the subject with label or accession ID `subject_ref`."""
        with self.lock:
            project = self.projects[project_id]
            subject = self.find_subject(project, subject_ref)
            if subject is None:
                raise KeyError(f"no subject {subject_ref} in {project_id}")
            fields.setdefault("insert_date", subject.insert_date)
            experiment = Experiment(
                id=self._accession("E"),
                label=label,
                project=project_id,
                subject_id=subject.id,
                **fields,
            )
            subject.experiments[experiment.id] = experiment
            self._experiments[experiment.id] = experiment
            return experiment

    def add_scan(self, experiment: Experiment, scan_id: str, scan_type: str, **fields: Any) -> Scan:
        with self.lock:
            if scan_id in experiment.scans:
                raise ValueError(f"scan {scan_id} exists in {experiment.label}")
            fields.setdefault("series_description", scan_type)
            scan = Scan(id=scan_id, type=scan_type, pk=self._next_scan_pk, **fields)
            self._next_scan_pk += 1
            experiment.scans[scan_id] = scan
            return scan

    def add_reconstruction(
        self, experiment: Experiment, recon_id: str, recon_type: str, **fields: Any
    ) -> Reconstruction:
        with self.lock:
            recon = Reconstruction(id=recon_id, type=recon_type, pk=self._next_recon_pk, **fields)
            self._next_recon_pk += 1
            experiment.reconstructions[recon_id] = recon
            return recon

    def add_assessor(
        self, experiment: Experiment, label: str, xsi_type: str, **fields: Any
    ) -> Assessor:
        with self.lock:
            fields.setdefault("date", experiment.date)
            fields.setdefault("insert_date", experiment.insert_date)
            assessor = Assessor(
                id=self._accession("E"),
                label=label,
                xsi_type=xsi_type,
                project=experiment.project,
                **fields,
            )
            experiment.assessors[assessor.id] = assessor
            self._assessors[assessor.id] = (experiment, assessor)
            return assessor

    def add_resource(
        self, owner: Owner, label: str, *, direction: Direction = "out", **fields: Any
    ) -> Resource:
        """Attach a resource (folder) to any owner; `direction` matters for recons/assessors."""
        with self.lock:
            resource = Resource(id=self._next_resource, label=label, **fields)
            self._next_resource += 1
            if isinstance(owner, Reconstruction | Assessor):
                target = owner.in_resources if direction == "in" else owner.out_resources
            else:
                target = owner.resources
            target.append(resource)
            return resource

    def add_file(
        self,
        resource: Resource,
        path: str,
        data: bytes | DemoFile,
        *,
        mtime: float | None = None,
        **fields: Any,
    ) -> CatalogEntry:
        """Add (or overwrite) the file at `path` (relative, `/` for sub-folders)."""
        if not path or path.startswith("/") or "//" in path:
            raise ValueError(f"bad relative path: {path!r}")
        with self.lock:
            if isinstance(data, bytes):
                data = content.BytesFile(data, time.time() if mtime is None else mtime)
            fields.setdefault("format", resource.format)
            entry = CatalogEntry(path=path, data=data, **fields)
            resource.files[path] = entry
            return entry

    def replace_file(
        self, resource: Resource, path: str, data: bytes, *, mtime: float | None = None
    ) -> CatalogEntry:
        """New bytes (and a new mtime) for an existing file; size and digest follow."""
        with self.lock:
            old = resource.files[path]
            new_mtime = max(time.time(), old.data.mtime + 1) if mtime is None else mtime
            old.data = content.BytesFile(data, new_mtime)
            return old

    def remove_file(self, resource: Resource, path: str) -> None:
        with self.lock:
            del resource.files[path]

    def remove_experiment(self, experiment: Experiment) -> None:
        with self.lock:
            subject = self._subjects[experiment.subject_id]
            del subject.experiments[experiment.id]
            del self._experiments[experiment.id]
            for assessor_id in experiment.assessors:
                self._assessors.pop(assessor_id, None)
