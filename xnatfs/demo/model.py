"""The in-memory archive the demo server serves: projects down to catalog entries.

Plain mutable dataclasses; `Site` (site.py) owns them, hands out IDs and serialises changes with
its lock. Dictionaries keep insertion order, which is the order listings use (XNAT's row order is
unspecified, so clients must not rely on it anyway).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from xnatfs.demo.content import DemoFile

Access = Literal["public", "protected", "private"]


@dataclass
class CatalogEntry:
    """One file of a resource. `path` is relative to the resource and may contain `/`."""

    path: str
    data: DemoFile
    format: str = ""
    content: str = ""
    # Catalog metadata that real archives sometimes lack: Size "" and digest "" in listings.
    size_known: bool = True
    digest_known: bool = True

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass
class Resource:
    id: int  # xnat_abstractresource_id
    label: str  # "" for an unlabeled resource
    format: str = ""
    content: str = ""
    tags: str = ""
    element_name: str = "xnat:resourceCatalog"
    stats_known: bool = True  # file_count/file_size "" when False (never computed)
    files: dict[str, CatalogEntry] = field(default_factory=dict)

    @property
    def file_size(self) -> int:
        return sum(e.data.size for e in self.files.values())


@dataclass
class Scan:
    id: str
    type: str
    pk: int  # xnat_imagescandata_id
    xsi_type: str = "xnat:mrScanData"
    quality: str = "usable"
    series_description: str = ""
    note: str = ""
    resources: list[Resource] = field(default_factory=list)


@dataclass
class Reconstruction:
    id: str
    type: str
    pk: int  # xnat_reconstructedimagedata_id
    base_scan_type: str = ""
    out_resources: list[Resource] = field(default_factory=list)
    in_resources: list[Resource] = field(default_factory=list)


@dataclass
class Assessor:
    id: str  # accession ID (XNAT_E...)
    label: str
    xsi_type: str
    project: str
    date: str = ""
    insert_date: str = ""
    out_resources: list[Resource] = field(default_factory=list)
    in_resources: list[Resource] = field(default_factory=list)


@dataclass
class Experiment:
    id: str
    label: str
    project: str
    subject_id: str
    xsi_type: str = "xnat:mrSessionData"
    date: str = ""
    insert_date: str = ""
    scans: dict[str, Scan] = field(default_factory=dict)
    reconstructions: dict[str, Reconstruction] = field(default_factory=dict)
    assessors: dict[str, Assessor] = field(default_factory=dict)  # by accession ID
    resources: list[Resource] = field(default_factory=list)


@dataclass
class Subject:
    id: str
    label: str
    project: str
    insert_date: str = ""
    insert_user: str = "admin"
    experiments: dict[str, Experiment] = field(default_factory=dict)  # by accession ID
    resources: list[Resource] = field(default_factory=list)


@dataclass
class Project:
    id: str
    name: str
    secondary_id: str = ""
    description: str = ""
    pi_firstname: str = ""
    pi_lastname: str = ""
    insert_date: str = ""
    insert_user: str = "admin"
    access: Access = "public"
    members: frozenset[str] = frozenset()  # users who may read a protected/private project
    subjects: dict[str, Subject] = field(default_factory=dict)  # by accession ID
    resources: list[Resource] = field(default_factory=list)

    def visible_to(self, user: str) -> bool:
        return self.access != "private" or user in self.members

    def readable_by(self, user: str) -> bool:
        return self.access == "public" or user in self.members


Owner = Project | Subject | Experiment | Scan | Reconstruction | Assessor
