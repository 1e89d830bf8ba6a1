"""URL pieces: percent-encoding, selectors, file URIs."""

from __future__ import annotations

import pytest

from xnatfs.errors import ProtocolError
from xnatfs.xnat.paths import (
    canonical_file_uri,
    file_url_path,
    quote_segment,
    relative_file_path,
    scan_id_from_uri,
    selector,
    split_file_uri,
)


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("plain_ID-1.dcm", "plain_ID-1.dcm"),
        ("a b", "a%20b"),
        ("a+b", "a%2Bb"),
        ("a/b", "a%2Fb"),
        ("50%", "50%25"),
        ("x;jsessionid=1", "x%3Bjsessionid=1"),
        ("q?#", "q%3F%23"),
        ("[SLASH]", "%5BSLASH%5D"),
        ("fs:fsData", "fs:fsData"),
        ("1,2", "1,2"),
        ("é", "%C3%A9"),
        ("\udcff.dcm", "%FF.dcm"),  # a byte that was not UTF-8 in the listing goes back as is
    ],
)
def test_quote_segment(value: str, encoded: str) -> None:
    assert quote_segment(value) == encoded


def test_text_without_bytes_cannot_be_a_path() -> None:
    with pytest.raises(UnicodeEncodeError):
        quote_segment("\ud800")


def test_selector_joins_and_escapes_like_xnat() -> None:
    assert selector(["1", "2"]) == "1,2"
    assert selector(["ALL"]) == "ALL"
    assert selector(["T1/FLAIR"]) == "T1%5BSLASH%5DFLAIR"
    assert selector(["a,b", "c d"]) == "a%5BCOMMA%5Db,c%20d"
    assert selector(["T1+C"]) == "T1%2BC"


def test_selector_needs_a_token() -> None:
    with pytest.raises(ValueError):
        selector([])


def test_file_url_path_encodes_each_segment_and_keeps_slashes() -> None:
    uri = "/data/experiments/E1/scans/1/resources/7/files/sub dir/a+b #1.dcm"
    assert file_url_path(uri) == (
        "/data/experiments/E1/scans/1/resources/7/files/sub%20dir/a%2Bb%20%231.dcm"
    )


def test_file_url_path_refuses_relative_uri() -> None:
    with pytest.raises(ProtocolError):
        file_url_path("data/x")


@pytest.mark.parametrize(
    ("uri", "relative"),
    [
        ("/data/experiments/E/scans/1/resources/7/files/1.dcm", "1.dcm"),
        ("/data/projects/P/resources/9/files/sub/dir/a.txt", "sub/dir/a.txt"),
        ("/data/experiments/E/assessors/A/out/resources/3/files/x.nii", "x.nii"),
        # a sub-folder that looks like a resource path stays part of the name
        ("/data/projects/P/resources/9/files/d/resources/x/files/f", "d/resources/x/files/f"),
        ("/data/projects/resources/resources/5/files/f", "f"),
    ],
)
def test_relative_file_path(uri: str, relative: str) -> None:
    assert relative_file_path(uri) == relative


@pytest.mark.parametrize("uri", ["/data/experiments/E/scans/1", "/data/x/resources/7/files/"])
def test_relative_file_path_refuses_non_file_uri(uri: str) -> None:
    with pytest.raises(ProtocolError):
        relative_file_path(uri)


def test_scan_id_from_uri() -> None:
    base = "/data/experiments/E1"
    assert scan_id_from_uri(f"{base}/scans/3/resources/7/files/a.dcm") == "3"
    assert scan_id_from_uri(f"{base}/scans/1,2/resources/7/files/a.dcm") == "1,2"
    long = "/data/projects/P/subjects/S/experiments/E/scans/T 1/resources/7/files/x/scans/9/a"
    assert scan_id_from_uri(long) == "T 1"
    assert scan_id_from_uri(f"{base}/resources/7/files/a.dcm") is None
    recon = f"{base}/reconstructions/R1/out/resources/4/files/a.img"
    assert scan_id_from_uri(recon, "reconstructions") == "R1"
    assessor = f"{base}/assessors/A_1/in/resources/4/files/a.img"
    assert scan_id_from_uri(assessor, "assessors") == "A_1"
    assert scan_id_from_uri(assessor) is None


def test_split_file_uri() -> None:
    assert split_file_uri("/data/experiments/E1/scans/1/resources/7/files/sub/a.dcm") == (
        "/data/experiments/E1/scans/1",
        "7",
        "sub/a.dcm",
    )
    # A sub-folder that looks like an owner path stays in the path inside the resource.
    assert split_file_uri("/data/experiments/E1/resources/3/files/scans/1/resources/2/files/a")[
        2
    ] == ("scans/1/resources/2/files/a")
    assert split_file_uri("/data/experiments/E1/scans/1") is None


def test_canonical_file_uri_names_the_one_owner_of_a_comma_list() -> None:
    uri = "/data/experiments/E1/scans/2,11/resources/7/files/a.dcm"
    assert canonical_file_uri(uri, "scans", "11") == (
        "/data/experiments/E1/scans/11/resources/7/files/a.dcm"
    )
    # An owner that is not in the list, or a URI without a list, is left alone.
    assert canonical_file_uri(uri, "scans", "3") == uri
    plain = "/data/experiments/E1/scans/2/resources/7/files/a,b.dcm"
    assert canonical_file_uri(plain, "scans", "2") == plain
