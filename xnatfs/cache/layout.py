"""The cache directory's layout, lock and private files (shared by the cache and `commands`).

    root/format          "xnatfs-cache N": the layout and admission rules the entries follow
    root/lock            exclusive flock of the mounting process; holds its pid
    root/index           the LRU order and sizes, written by a clean unmount, consumed at start
    root/stats.json      counters of the current or last mount (see `commands`)
    root/parts/*.part    downloads in progress; stray ones are removed at start
    root/data/ab/<name>  complete entries, fanned out by the first two hex digits of the name

Directories are 0700 and files 0600; nothing here ever holds credentials. Every directory is
checked to be ours (`trust`), and files are opened without following symlinks.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import json
import logging
import os
import re
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from xnatfs.cache.trust import file_problem, make_trusted_dir, untrusted
from xnatfs.errors import ConfigError
from xnatfs.fileversion import FileVersion

log = logging.getLogger(__name__)

DATA_DIR = "data"
PARTS_DIR = "parts"
LOCK_FILE = "lock"
STATS_FILE = "stats.json"
INDEX_FILE = "index"
INDEX_HEADER = "xnatfs-cache-index 1"
FORMAT_FILE = "format"
# 2: entries from archives are attributed by their full identity (owner, resource, path).
# Caches without this stamp were written by a version that could admit one scan's bytes as
# another's when the listing had no digest; their entries are dropped at first start.
CACHE_FORMAT = 2
FORMAT_TEXT = f"xnatfs-cache {CACHE_FORMAT}\n"
PART_SUFFIX = ".part"
_ENTRY_NAME = re.compile(r"[0-9a-f]{64}")  # sha256 hex digest


def is_entry_name(name: str) -> bool:
    """Whether `name` looks like a cache entry file name (64 lower-case hex digits)."""
    return _ENTRY_NAME.fullmatch(name) is not None


def entry_name(version: FileVersion) -> str:
    """Stable 64-hex-digit entry file name derived from the version's URI, size and digest.

    The digest is lower-cased first, so versions that differ only in hex case share an entry.
    Unchanged since cache format 1, so format-2 caches name entries as before.
    """
    return _entry_name(version.uri, version.size, version.digest.lower())


@functools.lru_cache(maxsize=65536)
def _entry_name(uri: str, size: int | None, digest: str) -> str:
    # Memoised: the filesystem asks for the same names on every open, claim and admission.
    canonical = json.dumps([uri, size, digest], separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def entry_path(root: Path, name: str) -> Path:
    return root / DATA_DIR / name[:2] / name


def read_private(path: Path, limit: int = 1 << 26) -> bytes:
    """The bytes of a small file of the cache, opened without following a symlink or waiting
    on a FIFO; OSError (ELOOP for a symlink) for anything but a regular file."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        chunks = []
        while (chunk := os.read(fd, 1 << 20)) and limit > 0:
            chunks.append(chunk)
            limit -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_format(root: Path) -> int | None:
    """The format number stamped in `root/format`, or None when there is no stamp."""
    try:
        text = read_private(root / FORMAT_FILE).decode("ascii", errors="replace")
    except FileNotFoundError:
        return None
    except OSError:
        return 0  # unreadable: treated as older than any format we know
    name, _, number = text.strip().partition(" ")
    if name != "xnatfs-cache" or not number.isdigit():
        return 0  # unreadable: treated as older than any format we know
    return int(number)


def read_lock_pid(root: Path) -> int | None:
    """The pid written into `root/lock` by the process that holds (or last held) the lock."""
    try:
        text = read_private(root / LOCK_FILE, 64).decode("ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def try_lock(root: Path) -> int | None:
    """Take the exclusive, non-blocking flock on `root/lock`; return its fd, or None if held.

    The lock belongs to the open file description, so it ends when the fd is closed or the
    process dies (even by SIGKILL): a crashed mount never blocks the next one. The lock is
    opened without following a symlink and must be a file of ours alone (ConfigError
    otherwise): whatever a planted `lock` points to is never created, opened or truncated.
    """
    path = root / LOCK_FILE
    try:
        fd = os.open(
            path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600
        )
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise untrusted(root, path, "is a symbolic link") from None
        raise
    try:
        problem = file_problem(os.fstat(fd))
        if problem is not None:
            raise untrusted(root, path, problem)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def in_use_message(root: Path, advice: str = "give this mount its own --cache-dir") -> str:
    """One line naming the directory, the holder's pid when known, and what to do."""
    pid = read_lock_pid(root)
    by = f" (pid {pid})" if pid is not None else ""
    return f"cache directory {root} is in use by another xnatfs process{by}; {advice}"


def iter_entries(root: Path) -> Iterator[os.DirEntry[str]]:
    """Every entry file under `root/data`, in no particular order; other files are skipped."""
    try:
        fanouts = list(os.scandir(root / DATA_DIR))
    except FileNotFoundError:
        return
    for fan in fanouts:
        if not (len(fan.name) == 2 and fan.is_dir(follow_symlinks=False)):
            continue
        try:
            files = list(os.scandir(fan.path))
        except FileNotFoundError:
            continue
        for entry in files:
            if (
                is_entry_name(entry.name)
                and entry.name.startswith(fan.name)
                and entry.is_file(follow_symlinks=False)
            ):
                yield entry


def remove_stray_parts(parts: Path) -> int:
    """Remove the part files in `parts` (left by a process that died mid-download: never
    complete, never served); returns how many."""
    removed = 0
    for entry in os.scandir(parts):
        if entry.name.endswith(PART_SUFFIX) and entry.is_file(follow_symlinks=False):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed += 1
    return removed


def write_private_json(path: Path, data: object) -> None:
    """Atomically replace `path` with `data` as JSON, mode 0600."""
    write_private_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def write_private_text(path: Path, text: str) -> None:
    """Atomically replace `path` with `text`, mode 0600."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def make_private_dir(path: Path, root: Path) -> None:
    """Create `path` (and missing parents) as 0700 and check that it is trusted (see
    `trust.make_trusted_dir`: ConfigError otherwise); `root` is the cache directory. A
    directory inside the cache (not the cache directory itself, whose mode is the user's
    choice) is made 0700 if it is ours but readable by others."""
    make_trusted_dir(path, root)
    if path != root:
        st = os.lstat(path)
        if stat.S_IMODE(st.st_mode) != 0o700:
            os.chmod(path, 0o700)


def drop_older_formats(root: Path) -> None:
    """Drop entries an earlier cache format admitted under weaker rules; stamp ours.

    Format 1 (no stamp) could admit an archive entry of one scan as another scan's file when the
    listing had no digest. Which entries came from archives was not recorded, so all of them go:
    they are downloaded again when read. Raises ConfigError for a format newer than ours.
    """
    found = read_format(root)
    if found == CACHE_FORMAT:
        return
    if found is not None and found > CACHE_FORMAT:
        raise ConfigError(
            f"cache directory {root} has format {found}, newer than this xnatfs "
            f"understands ({CACHE_FORMAT}); use another --cache-dir or a newer xnatfs"
        )
    dropped = 0
    for entry in iter_entries(root):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(entry.path)
            dropped += 1
    with contextlib.suppress(FileNotFoundError):
        (root / INDEX_FILE).unlink()
    if dropped:
        log.warning(
            "cache %s was written by an earlier xnatfs whose archive prefetch could store "
            "one scan's bytes as another's; dropped its %d entries (they are fetched again)",
            root,
            dropped,
        )
    write_private_text(root / FORMAT_FILE, FORMAT_TEXT)
