"""One version of one XNAT file, and the one check that bytes are that version.

A `FileVersion` is what a files listing row says about a file: its canonical, ID-based URI, its
`Size` and its MD5 `digest`. The namespace puts it on file nodes, the data path downloads and
verifies it, and the disk cache keys entries by it; a file that changes on the server shows a new
size or digest, so it is a new version. `verify_part` is the only place where downloaded bytes
are compared with a version; the disk cache admits only the `Verified` value it returns.
"""

from __future__ import annotations

from dataclasses import dataclass

from xnatfs.errors import IntegrityError


@dataclass(frozen=True, slots=True)
class FileVersion:
    """`uri`: canonical file URI from the listing (not percent-encoded, as XNAT writes it);
    `size`: its `Size` in bytes, None when the listing had none; `digest`: its MD5 hex, "" when
    the server keeps no checksum (REST reference §2.2.6)."""

    uri: str
    size: int | None
    digest: str

    def mismatch(self, size: int, md5_hex: str) -> str | None:
        """Why `size` bytes with MD5 `md5_hex` are not this version, or None when they are.
        Hex case does not matter."""
        if self.size is not None and size != self.size:
            return f"downloaded {size} bytes, the listing says {self.size}"
        if self.digest and md5_hex.lower() != self.digest.lower():
            return f"MD5 {md5_hex.lower()} differs from the listing's digest {self.digest.lower()}"
        return None


@dataclass(frozen=True, slots=True)
class Verified:
    """A complete part file (`part_path`, `size` bytes) proven to hold `version`.

    Made only by `verify_part`; the disk cache admits nothing else.
    """

    version: FileVersion
    part_path: str
    size: int


def verify_part(
    version: FileVersion,
    part_path: str,
    size: int,
    md5_hex: str,
    *,
    learned_size: int | None = None,
) -> Verified:
    """`Verified` when `size` bytes with MD5 `md5_hex` are `version`; else IntegrityError naming
    the URI and the difference. `learned_size`: for a version whose listing has no size, the
    size it was found to have before (and reported as), which the bytes must have too."""
    expected = version
    if version.size is None and learned_size is not None:
        expected = FileVersion(version.uri, learned_size, version.digest)
    problem = expected.mismatch(size, md5_hex)
    if problem is not None:
        raise IntegrityError(f"{version.uri}: {problem}")
    return Verified(version, part_path, size)
