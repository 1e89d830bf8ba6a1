"""One cache directory held by this process: trusted, locked, laid out, and where downloads get
their part files, also when the directory goes away or turns read-only while mounted.

- At start the directory and everything above it must be trusted (`trust`: ConfigError), its
  lock is taken (ConfigError naming the holder when another process has it) and our pid
  written in it, then `data/`, `parts/` and the format stamp are made and stray parts removed.
- A download's part is created in `parts/`. If the directory was removed, it is laid out again
  (under a new lock when the old one went with it; another mount that took the place meanwhile
  keeps it), and the owner is told (`on_laid_out`) to index what is there.
- When the directory cannot take a part (read-only, full, not recreatable), the part is an
  unlinked `Spill` file instead: served, never admitted. One warning when that starts, one
  when the directory takes parts again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from xnatfs.cache.layout import (
    DATA_DIR,
    LOCK_FILE,
    PARTS_DIR,
    drop_older_formats,
    in_use_message,
    make_private_dir,
    remove_stray_parts,
    try_lock,
)
from xnatfs.cache.spill import Spill
from xnatfs.errors import ConfigError

log = logging.getLogger(__name__)

_PART_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class CacheDir:
    """The directory `root`, held until `close()` (see the module docstring). Trio thread only.

    `on_laid_out()` is called after the directory was laid out again while in use (its index
    must be rebuilt from what is there).
    """

    def __init__(self, root: Path, on_laid_out: Callable[[], None] = lambda: None) -> None:
        self.root = root
        self.data = root / DATA_DIR
        self.parts = root / PARTS_DIR
        self._on_laid_out = on_laid_out
        self._spill = Spill()
        self._unwritable = False
        self.lock_fd: int | None = self._take()
        try:
            self._lay_out()
        except OSError as exc:
            self.close()
            raise ConfigError(f"cannot use cache directory {root}: {exc}") from None
        except BaseException:
            self.close()
            raise

    def create_part(self, name: str) -> tuple[str, int]:
        """(path, O_RDWR fd, mode 0600) of a new part file `name` (see the module docstring);
        OSError only when not even a spill file can be had."""
        try:
            try:
                fd = os.open(self.parts / name, _PART_FLAGS, 0o600)
            except FileNotFoundError:
                self._lay_out_again()
                fd = os.open(self.parts / name, _PART_FLAGS, 0o600)
        except (OSError, ConfigError) as exc:
            path, fd = self._spill.create(name)
            if not self._unwritable:
                self._unwritable = True
                log.warning(
                    "cache directory %s cannot take downloads (%s): files are read without "
                    "being cached until it can",
                    self.root,
                    exc,
                )
            return path, fd
        if self._unwritable:
            self._unwritable = False
            log.warning("cache directory %s takes downloads again: caching resumes", self.root)
        return str(self.parts / name), fd

    def spilled(self, path: str) -> bool:
        """Whether the part `path` is a spill file (never to be admitted)."""
        return self._spill.owns(path)

    def forget(self, path: str) -> None:
        """The part `path` is done with (admitted, declined or discarded)."""
        self._spill.forget(path)

    def close(self) -> None:
        """Release the lock (emptied first: nobody holds it any more). Idempotent."""
        fd, self.lock_fd = self.lock_fd, None
        self._spill.close()
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        except OSError as exc:
            log.debug("could not empty the lock of %s: %s", self.root, exc)
        finally:
            os.close(fd)

    # -- internals --------------------------------------------------------------------------

    def _take(self) -> int:
        """Make the directory (trusted: ConfigError otherwise), take its lock and write our pid
        in it; returns the lock's fd."""
        try:
            make_private_dir(self.root, self.root)
            fd = try_lock(self.root)
        except OSError as exc:
            raise ConfigError(f"cannot use cache directory {self.root}: {exc}") from None
        if fd is None:
            raise ConfigError(in_use_message(self.root))
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        except OSError as exc:
            os.close(fd)
            raise ConfigError(f"cannot use cache directory {self.root}: {exc}") from None
        return fd

    def _lay_out(self) -> None:
        make_private_dir(self.data, self.root)
        make_private_dir(self.parts, self.root)
        drop_older_formats(self.root)
        removed = remove_stray_parts(self.parts)
        if removed:
            log.info("removed %d unfinished download(s) from %s", removed, self.parts)

    def _lay_out_again(self) -> None:
        """Removed while in use: lay the directory out again, under a lock of our own."""
        assert self.lock_fd is not None
        held = os.fstat(self.lock_fd)
        try:
            st = os.lstat(self.root / LOCK_FILE)
            ours = (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino)
        except FileNotFoundError:
            ours = False
        if ours:
            make_private_dir(self.root, self.root)
        else:
            fd = self._take()
            os.close(self.lock_fd)
            self.lock_fd = fd
        self._lay_out()
        log.warning("cache directory %s was removed while mounted; laid out again", self.root)
        self._on_laid_out()
