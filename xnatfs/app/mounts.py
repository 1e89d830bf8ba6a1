"""The mount table: what is mounted where, dead mounts, unmounting, and mount-point checks.

A FUSE mount whose process has ended (killed, crashed) stays in the kernel's table, and every
access to it fails with ENOTCONN (ECONNABORTED once the connection was aborted), while
`os.path.ismount` may report nothing mounted. So dead mounts are found in
`/proc/self/mountinfo` and probed, and cleared with `fusermount3 -uz`. `xnatfs mount`, the
`mount.fuse.xnatfs` helper and `xnatfs umount` all use this module.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from xnatfs.errors import ConfigError

log = logging.getLogger(__name__)

FSTYPE = "fuse.xnatfs"
MOUNTINFO = Path("/proc/self/mountinfo")
# What the kernel answers for a FUSE mount whose process is gone.
DEAD_ERRNOS = frozenset({errno.ENOTCONN, errno.ECONNABORTED})


@dataclass(frozen=True)
class MountEntry:
    """One line of mountinfo: where, which filesystem type (`fuse.xnatfs`), and its source."""

    mountpoint: str
    fstype: str
    source: str


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as `\\ooo` octal."""
    out: list[str] = []
    i = 0
    while i < len(field):
        chunk = field[i : i + 4]
        if len(chunk) == 4 and chunk[0] == "\\" and chunk[1:].isdigit():
            out.append(chr(int(chunk[1:], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[MountEntry]:
    """The entries of a mountinfo file (see proc(5)), in order; malformed lines are skipped."""
    entries = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if sep < 5 or len(fields) < sep + 3:
            continue
        entries.append(
            MountEntry(
                mountpoint=_unescape(fields[4]),
                fstype=fields[sep + 1],
                source=_unescape(fields[sep + 2]),
            )
        )
    return entries


def read_mounts(mountinfo: Path = MOUNTINFO) -> list[MountEntry]:
    """The mounts this process sees. Raises OSError when `mountinfo` cannot be read."""
    return parse_mountinfo(mountinfo.read_text())


def is_dead(path: str | os.PathLike[str]) -> bool:
    """True when `path` is a FUSE mount whose process is gone.

    `statvfs` comes first because the kernel always forwards it to the process, while a `stat`
    of the mount's root may be answered from cached attributes even after the process died.
    """
    for probe in (os.statvfs, os.stat):
        try:
            probe(path)
        except OSError as exc:
            if exc.errno in DEAD_ERRNOS:
                return True
    return False


def fusermount_command() -> str | None:
    """The path of `fusermount3`, else `fusermount`, or None when neither is installed.

    /usr/bin and /bin are searched after `$PATH`, because the PATH of systemd units and of
    mount(8)'s helpers varies.
    """
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/bin", "/bin"])
    for name in ("fusermount3", "fusermount"):
        found = shutil.which(name, path=search)
        if found:
            return found
    return None


def unmount(mountpoint: str | os.PathLike[str], *, lazy: bool = False) -> None:
    """Unmount the FUSE mount at `mountpoint` with `fusermount3 -u` (`-uz` with `lazy`: detach
    now even if busy or dead).

    Raises FileNotFoundError when no fusermount is installed, and OSError (EBUSY) whose
    `strerror` is fusermount's last line of complaint when it fails (busy, not mounted, not
    allowed).
    """
    tool = fusermount_command()
    if tool is None:
        raise FileNotFoundError(
            errno.ENOENT, "fusermount3 not found (install the fuse3 package)", os.fspath(mountpoint)
        )
    command = [tool, "-u", *(["-z"] if lazy else []), os.fspath(mountpoint)]
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        detail = lines[-1] if lines else f"{Path(tool).name} failed (exit status {proc.returncode})"
        raise OSError(errno.EBUSY, detail, os.fspath(mountpoint))


def clear_stale_mount(mountpoint: Path, *, mountinfo: Path = MOUNTINFO) -> bool:
    """Detach a dead xnatfs mount (its process gone: requests fail with ENOTCONN) at `mountpoint`.

    A crashed or killed xnatfs leaves its mount in the table, and a new mount on top would
    hide nothing but confuse everyone, so both the helper and `xnatfs mount` call this first.
    Only `fuse.xnatfs` mounts that no longer answer are touched; a live mount, a mount of
    another type and an unreadable `mountinfo` are left alone. Returns True when a stale mount
    was cleared. Raises OSError as `unmount` does when it cannot be cleared.
    """
    target = os.path.abspath(mountpoint)
    try:
        entries = read_mounts(mountinfo)
    except OSError:
        return False
    ours = any(e.mountpoint == target and e.fstype == FSTYPE for e in entries)
    if not ours or not is_dead(target):
        return False
    unmount(target, lazy=True)
    log.warning("cleared a stale xnatfs mount at %s (its process had ended)", target)
    return True


def top_mount(path: str, mountinfo: Path = MOUNTINFO) -> MountEntry | None:
    """The mount on top at `path` (the last one mounted there), or None."""
    try:
        entries = parse_mountinfo(mountinfo.read_text())
    except OSError:
        return None
    found = [e for e in entries if e.mountpoint == path]
    return found[-1] if found else None


def check_mountpoint(path: str | os.PathLike[str], *, allow_non_empty: bool = False) -> None:
    """Make sure a new mount can go on `path`, clearing a dead xnatfs mount left there.

    Mounting over an automount trigger (an `autofs` mount, as systemd's `x-systemd.automount`
    and `.automount` units set up) is what the trigger is for, so it is allowed and nothing
    inside it is looked at (that would trigger it). Raises ConfigError with a one-line reason
    when `path` does not exist, is not a directory, is already a mount point, holds entries
    that the mount would hide (unless `allow_non_empty`), is a dead mount that cannot be
    cleared here (another filesystem type, or fusermount failed), or (for users other than
    root) is not writable.
    """
    p = os.path.abspath(os.fspath(path))
    try:
        # A crashed or killed mount leaves a dead entry behind; a restart must not trip on it.
        clear_stale_mount(Path(p))
    except OSError as exc:
        raise ConfigError(
            f"mount point {p} is a dead mount that could not be cleared ({exc.strerror}); "
            f"try: xnatfs umount --lazy {p}"
        ) from None
    try:
        os.stat(p)  # stat never triggers an automount
    except FileNotFoundError:
        raise ConfigError(f"mount point {p} does not exist") from None
    except OSError as exc:
        if exc.errno in DEAD_ERRNOS:
            raise ConfigError(
                f"mount point {p} is a dead mount; clear it with: xnatfs umount --lazy {p}"
            ) from None
        raise ConfigError(f"mount point {p}: {exc.strerror}") from None
    if not os.path.isdir(p):
        raise ConfigError(f"mount point {p} is not a directory")
    top = top_mount(p)
    if top is not None and top.fstype == "autofs":
        return
    if os.path.ismount(p):
        raise ConfigError(f"{p} is already a mount point")
    if not allow_non_empty:
        with os.scandir(p) as entries:
            if next(entries, None) is not None:
                raise ConfigError(
                    f"mount point {p} is not empty: the mount would hide what is there; "
                    "use another directory, or --allow-non-empty to mount over it"
                )
    if not os.access(p, os.W_OK) and os.getuid() != 0:
        raise ConfigError(f"mount point {p} is not writable by you (FUSE needs that)")
