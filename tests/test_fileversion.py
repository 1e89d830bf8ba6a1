"""The one check that downloaded bytes are the version a listing describes."""

from __future__ import annotations

import hashlib

import pytest

from xnatfs.errors import IntegrityError
from xnatfs.fileversion import FileVersion, Verified, verify_part


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_matching_bytes_are_verified() -> None:
    v = FileVersion("/data/f", 7, md5(b"payload"))
    assert verify_part(v, "/p", 7, md5(b"payload")) == Verified(v, "/p", 7)


def test_digest_mismatch_is_refused_naming_the_file() -> None:
    v = FileVersion("/data/f", 7, md5(b"something else"))
    with pytest.raises(IntegrityError, match="/data/f: MD5 .* differs"):
        verify_part(v, "/p", 7, md5(b"payload"))


def test_size_mismatch_is_refused_even_when_md5_agrees() -> None:
    v = FileVersion("/data/f", 6, md5(b"short"))
    with pytest.raises(IntegrityError, match="downloaded 5 bytes, the listing says 6"):
        verify_part(v, "/p", 5, md5(b"short"))


def test_digest_comparison_ignores_hex_case() -> None:
    v = FileVersion("/data/f", 7, md5(b"payload").upper())
    assert v.mismatch(7, md5(b"payload")) is None


def test_without_digest_only_the_size_counts_and_without_size_nothing() -> None:
    assert FileVersion("/data/f", 7, "").mismatch(7, md5(b"anything")) is None
    assert FileVersion("/data/f", 7, "").mismatch(8, md5(b"anything")) is not None
    assert FileVersion("/data/f", None, "").mismatch(123, md5(b"anything")) is None
