"""Whether a cache directory is ours: nobody but us (and root) can change what it holds.

A cache is served from as it is found, so another local user able to write in it could swap a
cached file (served as verified), plant a symlink where the lock is (truncating whatever it
points to), or fill it. The directory is trusted only when:

- the cache directory and every directory inside it belong to us (the effective uid) and are
  writable by nobody else;
- every directory above it belongs to us or root and is writable by nobody else, unless it is
  sticky (`/tmp`: others may create there, but never rename or remove what is ours).

"Writable by nobody else" allows group write when the group is our own private group (its only
member is us, as Debian's and Ubuntu's per-user groups are), so directories made under umask
002 are not refused. The checks follow no symlink: paths are resolved first and each component
is looked at with `lstat`.
"""

from __future__ import annotations

import functools
import grp
import os
import pwd
import stat
from pathlib import Path

from xnatfs.errors import ConfigError


def make_trusted_dir(path: Path, root: Path) -> None:
    """Create `path` as 0700 where it (or a parent) is missing, then check it and every
    directory above it; `root` is the cache directory (`path` itself or one above it): from
    there down, directories must be ours.

    Raises ConfigError, one line naming the cache, the offending directory and what to do.
    """
    real = Path(os.path.realpath(path))
    inside_from = Path(os.path.realpath(root))
    for current in (*reversed(real.parents), real):
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            try:
                os.mkdir(current, 0o700)
            except FileExistsError:
                pass
            except OSError as exc:
                raise ConfigError(f"cannot use cache directory {root}: {exc}") from None
            st = os.lstat(current)
        if not stat.S_ISDIR(st.st_mode):
            raise ConfigError(f"cannot use cache directory {root}: {current} is not a directory")
        inside = current == inside_from or inside_from in current.parents
        problem = dir_problem(st, inside=inside)
        if problem is not None:
            raise untrusted(root, current, problem, inside=inside)


def dir_problem(st: os.stat_result, *, inside: bool) -> str | None:
    """Why a directory with status `st` lets someone else change it, or None. `inside`: the
    cache directory or one in it (ours only, sticky or not); else one above (ours or root's,
    sticky allowed)."""
    me = os.geteuid()
    owners = (me,) if inside else (me, 0)
    if st.st_uid not in owners:
        return f"belongs to {user_name(st.st_uid)}"
    sticky = not inside and st.st_mode & stat.S_ISVTX
    if sticky:
        return None
    mode = stat.S_IMODE(st.st_mode)
    if mode & stat.S_IWOTH:
        return f"is writable by every user (mode {mode:04o})"
    if mode & stat.S_IWGRP and not private_group(st.st_gid, st.st_uid):
        return f"is writable by group {group_name(st.st_gid)} (mode {mode:04o})"
    return None


def file_problem(st: os.stat_result) -> str | None:
    """Why a file of the cache with status `st` (from a descriptor opened without following a
    symlink) is not ours alone, or None."""
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    if st.st_uid != os.geteuid():
        return f"belongs to {user_name(st.st_uid)}"
    if st.st_nlink != 1:
        return "has other names (hard links)"
    if stat.S_IMODE(st.st_mode) & (stat.S_IWGRP | stat.S_IWOTH):
        return f"is writable by others (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def untrusted(root: Path, path: Path, problem: str, *, inside: bool = True) -> ConfigError:
    """The one-line refusal of cache directory `root` because `path` has `problem`."""
    if "belongs to" in problem:
        advice = "give the mount a directory of its own (--cache-dir)"
    else:
        advice = f"run chmod go-w {path}, or give the mount a directory of its own (--cache-dir)"
    what = "" if path == root else f"{path} "
    return ConfigError(
        f"cache directory {root} is not safe: {what}{problem}, so another user could change "
        f"what is served from it; {advice}"
    )


def user_name(uid: int) -> str:
    try:
        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


@functools.lru_cache(maxsize=64)
def private_group(gid: int, uid: int) -> bool:
    """Whether the only member of group `gid` is user `uid` (as primary group or listed)."""
    try:
        group = grp.getgrgid(gid)
        owner = pwd.getpwuid(uid).pw_name
    except KeyError:
        return False
    if set(group.gr_mem) - {owner}:
        return False
    primary = [p.pw_uid for p in pwd.getpwall() if p.pw_gid == gid]
    if any(u != uid for u in primary):
        return False
    return bool(primary) or group.gr_mem == [owner]
