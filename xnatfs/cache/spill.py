"""Parts for downloads the cache directory cannot take (read-only, removed and not recreatable,
taken over by another mount): files in a private temporary directory, unlinked as soon as they
are open, so reads are served from them and nothing is left behind, whatever happens to the
mount. The disk cache hands them out from `create_part` and never admits them.
"""

from __future__ import annotations

import contextlib
import os
import tempfile


class Spill:
    """Unlinked part files in a directory of our own under `$TMPDIR` (made on first use)."""

    def __init__(self) -> None:
        self._dir: str | None = None
        self._paths: set[str] = set()

    def create(self, name: str) -> tuple[str, int]:
        """(the path it had, an O_RDWR fd) of a new, already unlinked file; OSError when even the
        temporary directory cannot take it."""
        if self._dir is None or not os.path.isdir(self._dir):
            self._dir = tempfile.mkdtemp(prefix="xnatfs-uncached-")  # 0700, ours, unique
        path = os.path.join(self._dir, name)
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(path, flags, 0o600)
        with contextlib.suppress(OSError):
            os.unlink(path)
        self._paths.add(path)
        return path, fd

    def owns(self, path: str) -> bool:
        """Whether `path` was handed out here (and not forgotten yet)."""
        return path in self._paths

    def forget(self, path: str) -> None:
        self._paths.discard(path)

    def close(self) -> None:
        """Remove the (empty) directory."""
        if self._dir is not None:
            with contextlib.suppress(OSError):
                os.rmdir(self._dir)
            self._dir = None
