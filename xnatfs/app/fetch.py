"""`xnatfs prefetch PATH...`: fetch everything below mounted paths into the disk cache, ahead.

It works through the mount as any program does: it walks the paths, then reads every file that
is not cached yet (`user.xnat.cached`), in name order, `jobs` at a time. The mount then does
what it does for every reader: its series prefetch turns the walk of a resource into one zip
download, and every file is verified against its listing before it is cached. Nothing here
talks to the server.

Selector directories (`scans/ALL`, `scans/T1`, ...) lead to the same files as the scans
themselves, so inside `scans/`, `reconstructions/` and `assessors/` only the owners'
directories (those with a `user.xnat.id`) are walked, and every file is counted once (by
inode). Sizes come from the listings (`st_size`), so the totals are known before anything is
read. The progress bar is tqdm's: files and bytes done of the total, rate and ETA; it is drawn
only on a terminal.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Never, TextIO

from tqdm import tqdm

from xnatfs.app.mounts import FSTYPE, read_mounts
from xnatfs.app.status import human_bytes
from xnatfs.errors import ConfigError

CHUNK = 1 << 20  # bytes read at a time
# A session's scans/, reconstructions/ and assessors/ (not a folder that happens to be named so).
_COLLECTION = re.compile(r"/data/experiments/[^/]+/(?:scans|reconstructions|assessors)")


@dataclass(frozen=True)
class Target:
    """One file to fetch: its path in the mount and its size (from its listing)."""

    path: str
    size: int


@dataclass
class Plan:
    """What a walk found: files to fetch, and how many files and bytes are cached already."""

    todo: list[Target] = field(default_factory=list)
    cached_files: int = 0
    cached_bytes: int = 0
    walk_errors: list[str] = field(default_factory=list)

    @property
    def todo_bytes(self) -> int:
        return sum(t.size for t in self.todo)


@dataclass
class Outcome:
    """What a fetch did: files and bytes fetched, and the failures (path, reason)."""

    fetched: int = 0
    fetched_bytes: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


def mount_of(path: str) -> str:
    """The mount point of the xnatfs mount that holds `path`; ConfigError when none does."""
    target = os.path.abspath(path)
    best = ""
    for entry in read_mounts():
        mnt = entry.mountpoint
        if entry.fstype == FSTYPE and (target == mnt or target.startswith(mnt.rstrip("/") + "/")):
            best = max(best, mnt, key=len)
    if not best:
        raise ConfigError(f"{target} is not inside an xnatfs mount")
    return best


def _xattr(path: str, name: str) -> str | None:
    try:
        return os.getxattr(path, name, follow_symlinks=False).decode()
    except OSError:
        return None


def _walk(top: str, errors: list[str]) -> Iterator[os.DirEntry[str]]:
    """Every file below `top` (name order), skipping selector directories (see module docs)."""
    try:
        with os.scandir(top) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        errors.append(f"{top}: {exc.strerror or exc}")
        return
    selectors_here = _COLLECTION.fullmatch(_xattr(top, "user.xnat.uri") or "") is not None
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if selectors_here and _xattr(entry.path, "user.xnat.id") is None:
                continue  # ALL, a type, a comma list: the same files as the owners'
            yield from _walk(entry.path, errors)
        elif entry.is_file(follow_symlinks=False):
            yield entry


def plan(paths: Sequence[str]) -> Plan:
    """Walk `paths` (files or directories in xnatfs mounts); ConfigError for a path outside
    one or missing."""
    out = Plan()
    seen: set[tuple[int, int]] = set()
    for path in paths:
        mount_of(path)
        try:
            st = os.stat(path)
        except OSError as exc:
            raise ConfigError(f"{path}: {exc.strerror or exc}") from None
        files: Iterator[tuple[str, os.stat_result]] = iter([(path, st)])
        if os.path.isdir(path):
            files = ((e.path, e.stat(follow_symlinks=False)) for e in _walk(path, out.walk_errors))
        for file_path, fst in files:
            key = (fst.st_dev, fst.st_ino)
            if key in seen:
                continue
            seen.add(key)
            if _xattr(file_path, "user.xnat.cached") == "yes":
                out.cached_files += 1
                out.cached_bytes += fst.st_size
            else:
                out.todo.append(Target(file_path, fst.st_size))
    return out


def cache_room(mountpoint: str) -> tuple[int, int] | None:
    """(bytes cached, cache limit) of the mount at `mountpoint`, or None when it does not say."""
    raw = _xattr(mountpoint, "user.xnatfs.stats")
    if raw is None:
        return None
    try:
        cache = json.loads(raw)["cache"]
        return int(cache["bytes"]), int(cache["limit"])
    except (ValueError, KeyError, TypeError):
        return None


def fetch(todo: Sequence[Target], jobs: int, bar: tqdm[Never]) -> Outcome:
    """Read every file of `todo` to its end, `jobs` at a time, in order; advance `bar` by the
    bytes read and name the files done in its description."""
    out = Outcome()
    lock = threading.Lock()
    total = len(todo)

    def done_file(path: str, size: int, error: str | None) -> None:
        with lock:
            if error is None:
                out.fetched += 1
                out.fetched_bytes += size
            else:
                out.failed.append((path, error))
                bar.write(f"xnatfs prefetch: {path}: {error}", file=sys.stderr)
            bar.set_description(f"{out.fetched + len(out.failed)}/{total} files", refresh=False)

    def one(target: Target) -> None:
        read = 0
        try:
            with open(target.path, "rb", buffering=0) as f:
                while chunk := f.read(CHUNK):
                    read += len(chunk)
                    bar.update(len(chunk))
        except OSError as exc:
            bar.update(max(0, target.size - read))  # the bar's total stays honest
            done_file(target.path, read, exc.strerror or str(exc))
            return
        done_file(target.path, read, None)

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        for future in [pool.submit(one, t) for t in todo]:
            future.result()
    return out


def _fixed_width() -> int | None:
    """None to follow the terminal's size; 100 columns (and 24 rows) for a terminal that
    reports none (a pseudo-terminal nobody sized), where tqdm would draw nothing."""
    try:
        return None if os.get_terminal_size(sys.stderr.fileno()).columns else 100
    except (OSError, ValueError):
        return None


def run(paths: Sequence[str], *, jobs: int, out: TextIO | None = None) -> int:
    """`xnatfs prefetch`: plan, warn when the cache cannot hold it all, fetch with a progress
    bar, print a summary. Returns 0, or 1 when any file (or directory) failed. Raises
    ConfigError for a path that is not in an xnatfs mount."""
    stream = sys.stdout if out is None else out
    work = plan(paths)
    for error in work.walk_errors:
        print(f"xnatfs prefetch: {error}", file=sys.stderr)
    need = work.todo_bytes
    room = cache_room(mount_of(paths[0]))
    if room is not None and need > room[1]:
        print(
            f"xnatfs prefetch: warning: {human_bytes(need)} to fetch, more than the cache holds "
            f"({human_bytes(room[1])}): the first files will be evicted before the last are "
            "fetched; give the mount a larger --cache-size",
            file=sys.stderr,
        )
    width = _fixed_width()
    with tqdm(
        total=need,
        desc=f"0/{len(work.todo)} files",
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        disable=None,  # drawn on a terminal only
        file=sys.stderr,
        ncols=width,
        nrows=None if width is None else 24,
        dynamic_ncols=width is None,
    ) as bar:
        done = fetch(work.todo, jobs, bar)
    failed = len(done.failed) + len(work.walk_errors)
    print(
        f"fetched {done.fetched:,} files ({human_bytes(done.fetched_bytes)}), "
        f"already cached {work.cached_files:,} ({human_bytes(work.cached_bytes)}), "
        f"failed {failed:,}",
        file=stream,
    )
    return 1 if failed else 0
