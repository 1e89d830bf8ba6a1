"""`xnatfs cache info` and `xnatfs cache clear`: look at and empty disk caches.

`root` is either one server's cache directory (what `--cache-dir` names, or what a mount uses)
or the default root, `xnatfs.config.default_cache_root()`, which holds one sub-directory per
server; the commands then handle every server's cache in it.

`cache_info` takes no lock and changes nothing, so it works while a mount is using the cache.
`cache_clear` takes each cache's lock first and refuses while a mount holds it. Only files that
the cache itself creates are removed, so pointing either command at an unrelated directory does
no harm.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from xnatfs.cache.layout import (
    DATA_DIR,
    INDEX_FILE,
    LOCK_FILE,
    PART_SUFFIX,
    PARTS_DIR,
    STATS_FILE,
    in_use_message,
    iter_entries,
    read_lock_pid,
    try_lock,
)
from xnatfs.cache.metadata import stored_files
from xnatfs.config import default_cache_root
from xnatfs.errors import ConfigError


def cache_info(root: Path | None = None) -> str:
    """A human-readable report: entries, bytes, limit, last mount's counters, whether in use."""
    root = default_cache_root() if root is None else Path(root)
    caches = _caches_under(root)
    if not caches:
        if not root.exists():
            return f"{root}: no cache yet"
        return f"{root}: not an xnatfs cache directory (no cached data)"
    return "\n\n".join(_info_block(c) for c in caches)


def cache_clear(root: Path | None = None) -> str:
    """Remove every cached entry (and unfinished download) under `root`; report what went.

    Raises `ConfigError`, before removing anything, when a mount holds any of the caches.
    """
    root = default_cache_root() if root is None else Path(root)
    caches = _caches_under(root)
    if not caches:
        return f"{root}: nothing to clear"
    locks: list[int] = []
    try:
        for cache in caches:
            fd = try_lock(cache)
            if fd is None:
                raise ConfigError(in_use_message(cache, "unmount it before clearing its cache"))
            locks.append(fd)
        return "\n".join(_clear_one(cache) for cache in caches)
    finally:
        for fd in locks:
            os.close(fd)


def is_cache_dir(path: Path) -> bool:
    """Whether `path` is one server's cache directory (as `DiskCache` lays it out)."""
    return (path / DATA_DIR).is_dir() and (path / LOCK_FILE).is_file()


def lock_holder(root: Path) -> int | None:
    """Pid of the process holding `root`'s cache lock, or None; never takes the lock itself.

    `DiskCache` writes its pid into the lock file and empties it at close, so a pid there means
    a running mount or one that died; /proc/locks (or, lacking it, the pid's existence) tells
    the two apart.
    """
    pid = read_lock_pid(root)
    if pid is None:
        return None
    try:
        ino = os.stat(root / LOCK_FILE).st_ino
        table = Path("/proc/locks").read_text(encoding="ascii", errors="replace")
    except OSError:
        return pid if _pid_exists(pid) else None
    for line in table.splitlines():
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 5246 fe:00:2147122 0 EOF"; waiters have a "->" field.
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[-1] == str(ino):
            holder = int(fields[4]) if fields[4].isdigit() else 0
            return holder or pid
    return None


# -- helpers ------------------------------------------------------------------------------


def _caches_under(root: Path) -> list[Path]:
    """`root` itself if it is a cache, then every server cache directly below it."""
    caches = [root] if is_cache_dir(root) else []
    try:
        children = sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())
    except OSError:
        return caches
    return caches + [p for p in children if is_cache_dir(p)]


def _info_block(cache: Path) -> str:
    count = total = 0
    for entry in iter_entries(cache):
        try:
            total += entry.stat(follow_symlinks=False).st_size
        except FileNotFoundError:
            continue
        count += 1
    parts, part_bytes = _parts_in(cache)
    stats = _read_stats(cache)
    lines = [str(cache), f"  entries:    {count:,} files, {_human(total)} ({total:,} bytes)"]
    limit = stats.get("limit")
    lines.append(f"  limit:      {_human(limit) if isinstance(limit, int) else 'unknown'}")
    counters = [stats.get(k) for k in ("hits", "misses", "evictions", "rejected")]
    if all(isinstance(c, int) for c in counters):
        hits, misses, evictions, rejected = counters
        saved = stats.get("updated")
        when = (
            time.strftime(" (saved %Y-%m-%d %H:%M:%S)", time.localtime(saved))
            if isinstance(saved, int | float)
            else ""
        )
        lines.append(
            f"  last mount: {hits:,} hits, {misses:,} misses, {evictions:,} evictions, "
            f"{rejected:,} rejected{when}"
        )
    else:
        lines.append("  last mount: no statistics saved")
    stores = stored_files(cache)
    if stores:
        size = sum(_size(p) for files in stores.values() for p in files)
        lines.append(f"  listings:   kept for {len(stores)} user(s), {_human(size)}")
    holder = lock_holder(cache)
    lines.append(f"  in use:     {'yes, by pid ' + str(holder) if holder else 'no'}")
    if parts:
        state = "being written" if holder else "left by an interrupted mount"
        lines.append(f"  downloads:  {parts} unfinished ({_human(part_bytes)}), {state}")
    return "\n".join(lines)


def _clear_one(cache: Path) -> str:
    count = total = 0
    for entry in iter_entries(cache):
        try:
            size = entry.stat(follow_symlinks=False).st_size
            os.unlink(entry.path)
        except FileNotFoundError:
            continue
        count += 1
        total += size
    data = cache / DATA_DIR
    for fan in os.scandir(data):
        if len(fan.name) == 2 and fan.is_dir(follow_symlinks=False):
            with contextlib.suppress(OSError):  # not empty: holds files we did not create
                os.rmdir(fan.path)
    parts, _ = _parts_in(cache)
    for entry in _part_entries(cache):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(entry.path)
    for name in (STATS_FILE, INDEX_FILE):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(cache / name)
    stores = stored_files(cache)
    for files in stores.values():
        for path in files:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    text = f"{cache}: removed {count:,} entries ({_human(total)})"
    if parts:
        text += f", {parts} unfinished download(s)"
    if stores:
        text += f", the listings kept for {len(stores)} user(s)"
    return text


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _part_entries(cache: Path) -> list[os.DirEntry[str]]:
    try:
        return [
            e
            for e in os.scandir(cache / PARTS_DIR)
            if e.name.endswith(PART_SUFFIX) and e.is_file(follow_symlinks=False)
        ]
    except FileNotFoundError:
        return []


def _parts_in(cache: Path) -> tuple[int, int]:
    count = total = 0
    for entry in _part_entries(cache):
        try:
            total += entry.stat(follow_symlinks=False).st_size
        except FileNotFoundError:
            continue
        count += 1
    return count, total


def _read_stats(cache: Path) -> dict[str, Any]:
    try:
        data = json.loads((cache / STATS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _human(n: int) -> str:
    """Bytes in binary units: `512 B`, `1.5 KiB`, `10.0 GiB`."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
