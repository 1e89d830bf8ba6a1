"""`xnatfs prefetch`'s walk, on a local tree carrying the mount's extended attributes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from xnatfs.app.fetch import _walk


def tree(root: Path, spec: dict[str, dict[str, str]]) -> None:
    """Directories (with their user.* attributes) and files (a name ending in .dcm)."""
    for rel, attrs in spec.items():
        path = root / rel
        if rel.endswith(".dcm"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x")
            continue
        path.mkdir(parents=True, exist_ok=True)
        for name, value in attrs.items():
            os.setxattr(path, name, value.encode())


def test_selector_directories_are_skipped_but_folders_named_like_collections_are_not(
    tmp_path: Path,
) -> None:
    try:
        os.setxattr(tmp_path, "user.probe", b"1")
    except OSError:
        pytest.skip("no user xattrs on this file system")
    e = "/data/experiments/E"
    tree(
        tmp_path,
        {
            "s/scans": {"user.xnat.uri": f"{e}/scans"},
            "s/scans/1": {"user.xnat.uri": f"{e}/scans/1", "user.xnat.id": "1"},
            "s/scans/1/DICOM/1.dcm": {},
            "s/scans/ALL": {"user.xnat.uri": f"{e}/scans/ALL"},
            "s/scans/ALL/DICOM/1/1.dcm": {},
            # A resource folder that happens to be called scans: walked whole.
            "s/resources/R": {"user.xnat.uri": f"{e}/resources/9", "user.xnat.id": "9"},
            "s/resources/R/scans": {"user.xnat.uri": f"{e}/resources/9/files/scans"},
            "s/resources/R/scans/x/2.dcm": {},
        },
    )
    errors: list[str] = []
    found = sorted(os.path.relpath(e.path, tmp_path) for e in _walk(str(tmp_path / "s"), errors))
    assert found == ["s/resources/R/scans/x/2.dcm", "s/scans/1/DICOM/1.dcm"]
    assert errors == []
