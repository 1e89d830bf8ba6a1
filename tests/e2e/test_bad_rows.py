"""One bad row never hides its neighbours, on a real mount of a server whose listings hold names
no file system can show, sizes no file can have, rows that are not rows, and names that clash
once encoded: `ls` lists exactly the entries that can be represented, each once, and every
listed name can be looked up, stat'ed and read.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from tests.support.hostile import HostileXnat, file_reply, files_listing, md5, raw_listing
from tests.support.mounting import Mount, tmp_mounted
from tests.support.xnat_stub import json_reply

pytestmark = pytest.mark.fuse

RAW_FF = "@RAW-FF@"  # stands for the invalid UTF-8 byte 0xff in the body


def body_of(rows: list[object]) -> bytes:
    """A listing body whose RAW_FF markers are raw 0xff bytes (not valid UTF-8)."""
    text = json.dumps({"ResultSet": {"Result": rows}})  # lone surrogates become \\udXXX escapes
    return text.encode("ascii").replace(RAW_FF.encode(), b"\xff")


def test_bad_rows_leave_their_neighbours_listed_and_readable(tmp_path: Path) -> None:
    a, b, ff, huge = b"a" * 100, b"b" * 200, b"f" * 300, b"h" * 400
    first, second = b"first of two" * 10, b"second" * 10
    with HostileXnat() as xnat:
        rows: list[object] = [
            xnat.row("a.dcm", a),
            # A lone surrogate: text that has no bytes at all.
            xnat.row("\ud800.dcm", b"lone"),
            # Raw bytes that are not UTF-8: a valid Linux name, b"\xff.dcm"; also without a
            # Size (learned with a request, and kept with the stored listings).
            xnat.row(f"{RAW_FF}.dcm", ff),
            xnat.row(f"{RAW_FF}-nosize.dcm", None, digest=md5(ff)),
            # A size no file can have: unknown, learned from the server (HEAD).
            xnat.row("huge.dcm", None, Size=str(2**63), digest=md5(huge)),
            # Two names that are the same bytes (escaped bytes of "é", then "é"): the first wins.
            xnat.row("\udcc3\udca9.dcm", first),
            xnat.row("é.dcm", second),
            # Longer than a name may be.
            xnat.row("x" * 296 + ".dcm", b"long"),
            # Rows that are not rows, or carry no usable URI or Size.
            "not a row",
            xnat.row("nested.dcm", None, Size={"a": 1}),
            {"Name": "nouri.dcm", "Size": "3"},
            xnat.row("b.dcm", b),
        ]
        xnat.files(raw_listing(body_of(rows)))
        for name, data in (("a.dcm", a), ("b.dcm", b), ("huge.dcm", huge), ("é.dcm", first)):
            xnat.serve(name, data)
        for sent in ("%FF.dcm", "%FF-nosize.dcm"):  # the raw bytes, as they came
            xnat.route(files_listing() + "/" + sent, file_reply(ff))
        # Subjects with names that cannot be shown, beside one that can.
        xnat.route(
            f"/data/projects/{xnat.PROJECT}/subjects",
            json_reply(
                [
                    {"ID": "XNAT_S1", "label": "good"},
                    {"ID": "XNAT_S2", "label": "\ud800"},
                    {"ID": "XNAT_S3", "label": "s" * 300},
                ]
            ),
        )
        xnat.route(f"/data/projects/{xnat.PROJECT}/subjects/XNAT_S1/experiments", json_reply([]))
        with tmp_mounted(xnat.url, tmp_path, user=xnat.user, password=xnat.password) as m:
            assert isinstance(m, Mount)
            resource = os.fsencode(m.path / xnat.RESOURCE)
            listed = sorted(os.listdir(resource))
            expected = {
                b"a.dcm": a,
                b"b.dcm": b,
                b"\xff.dcm": ff,
                b"\xff-nosize.dcm": ff,
                b"huge.dcm": huge,
                "é.dcm".encode(): first,
            }
            assert listed == sorted(expected)
            for name, data in expected.items():
                path = os.path.join(resource, name)
                assert os.stat(path).st_size == len(data), name
                with open(path, "rb") as f:
                    assert f.read() == data, name
            # Names that are not listed are not there, the over-long one included.
            for absent in (b"nouri.dcm", b"nested.dcm", b"x" * 296 + b".dcm"):
                with pytest.raises(OSError) as info:
                    os.stat(os.path.join(resource, absent))
                assert info.value.errno == errno.ENOENT, absent
            project = m.path / xnat.PROJECT
            assert sorted(os.listdir(project)) == ["good", "resources"]
            assert (project / "good").is_dir()
            log = m.log()
            assert "leaving out 2 row(s)" in log
            assert "cannot be encoded" in log and "over 255 bytes" in log
