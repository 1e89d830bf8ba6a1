"""`mount.fuse.xnatfs`: the helper mount(8) runs for `mount -t fuse.xnatfs` and fstab lines.

mount(8) (util-linux libmount, Debian 12) looks for `/sbin/mount.fuse.xnatfs` first and, when
it is missing, falls back to `/sbin/mount.fuse` (fuse3's `mount.fuse3`), which would run
`xnatfs URL MOUNTPOINT -o ...`, a command line `xnatfs` does not take. So the helper must be
installed under that name (`install_helper`, or `ln -s "$(command -v mount.fuse.xnatfs)"
/sbin/mount.fuse.xnatfs`). mount(8) calls it as

    mount.fuse.xnatfs SOURCE MOUNTPOINT [-s] [-n] [-v] [-f] [-o OPTIONS]

with `rw` in OPTIONS unless `ro` was given, with `x-*` and `noauto` already removed, and with
`user` expanded to `user,noexec,nosuid,nodev`. The helper turns OPTIONS into `xnatfs mount`
options (`xnatfs.app.mountopts`: generic mount options dropped, unknown ones refused),
clears a dead xnatfs mount left at MOUNTPOINT by a crash, and execs `xnatfs mount` (background
mode), which returns only once the mount answers or has failed: mount(8) and systemd mount
units see the real outcome.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from xnatfs.app.mountopts import Translation, translate_options
from xnatfs.config import normalize_url
from xnatfs.errors import ConfigError

log = logging.getLogger(__name__)

PROG = "mount.fuse.xnatfs"
FSTYPE = "fuse.xnatfs"
USAGE = f"usage: {PROG} URL MOUNTPOINT [-o OPTION[,OPTION...]] [-s] [-n] [-v] [-f]"


@dataclass(frozen=True)
class HelperArgs:
    """The helper's command line as mount(8) passes it."""

    source: str
    mountpoint: str
    options: str = ""
    sloppy: bool = False
    verbose: bool = False
    fake: bool = False


def parse_argv(argv: Sequence[str]) -> HelperArgs:
    """Parse `SOURCE MOUNTPOINT [-o OPTS] [-s] [-n] [-v] [-f] [-t TYPE]` (options in any order).

    Several `-o` are joined. `-n` (no mtab) needs nothing from us. Raises ConfigError with a
    usage message on anything else.
    """
    positional: list[str] = []
    options: list[str] = []
    sloppy = verbose = fake = False
    it = iter(argv)
    for arg in it:
        if arg == "-o" or arg == "-t":
            value = next(it, None)
            if value is None:
                raise ConfigError(f"{arg} needs a value\n{USAGE}")
            if arg == "-o":
                options.append(value)
            elif value not in (FSTYPE, "xnatfs"):
                raise ConfigError(f"this helper mounts type {FSTYPE}, not {value}")
        elif arg.startswith("-o") and len(arg) > 2:
            options.append(arg[2:])
        elif arg == "-s":
            sloppy = True
        elif arg == "-v":
            verbose = True
        elif arg == "-f":
            fake = True
        elif arg == "-n":
            pass
        elif arg in ("-h", "--help"):
            raise ConfigError(USAGE)
        elif arg.startswith("-") and arg != "-":
            raise ConfigError(f"unknown argument {arg!r}\n{USAGE}")
        else:
            positional.append(arg)
    if len(positional) != 2:
        raise ConfigError(f"expected URL and MOUNTPOINT\n{USAGE}")
    return HelperArgs(
        source=positional[0],
        mountpoint=positional[1],
        options=",".join(options),
        sloppy=sloppy,
        verbose=verbose,
        fake=fake,
    )


def build_command(args: HelperArgs, translation: Translation) -> list[str]:
    """The `xnatfs mount` command line; run with this interpreter so the same install is used."""
    url = normalize_url(args.source)
    mountpoint = os.path.abspath(args.mountpoint)
    return [sys.executable, "-m", "xnatfs", "mount", url, mountpoint, *translation.args]


# --- stale mounts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MountEntry:
    mountpoint: str
    fstype: str
    source: str


def _unescape(field_: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as `\\ooo` octal."""
    out: list[str] = []
    i = 0
    while i < len(field_):
        chunk = field_[i : i + 4]
        if len(chunk) == 4 and chunk[0] == "\\" and chunk[1:].isdigit():
            out.append(chr(int(chunk[1:], 8)))
            i += 4
        else:
            out.append(field_[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[MountEntry]:
    """The entries of /proc/self/mountinfo (see proc(5)): mount point, fs type, source."""
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


def _is_dead(path: str) -> bool:
    """True when the FUSE process behind `path` is gone.

    `statvfs` comes first because the kernel always forwards it to the process, while a `stat`
    of the mount's root may be answered from cached attributes even after the process died.
    ENOTCONN is the usual answer; ECONNABORTED when the kernel saw the connection aborted.
    """
    for probe in (os.statvfs, os.stat):
        try:
            probe(path)
        except OSError as exc:
            if exc.errno in (errno.ENOTCONN, errno.ECONNABORTED):
                return True
    return False


def fusermount_command() -> str | None:
    """`fusermount3`, else `fusermount`; also looks in /usr/bin and /bin (PATH varies in units)."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/bin", "/bin"])
    for name in ("fusermount3", "fusermount"):
        found = shutil.which(name, path=search)
        if found:
            return found
    return None


def clear_stale_mount(mountpoint: Path, *, mountinfo: Path = Path("/proc/self/mountinfo")) -> bool:
    """Detach a dead xnatfs mount (its process gone: requests fail with ENOTCONN) at `mountpoint`.

    A crashed or killed xnatfs leaves its mount in the table, and a new mount on top would
    hide nothing but confuse everyone, so both the helper and `xnatfs mount` call this first.
    Only `fuse.xnatfs` mounts that no longer answer are touched; a live mount is left alone.
    Returns True when a stale mount was cleared. Raises OSError when `fusermount3 -uz` fails.
    """
    target = os.path.abspath(mountpoint)
    try:
        entries = parse_mountinfo(mountinfo.read_text())
    except OSError:
        return False
    stale = [e for e in entries if e.mountpoint == target and e.fstype == FSTYPE]
    if not stale or not _is_dead(target):
        return False
    tool = fusermount_command()
    if tool is None:
        raise OSError(errno.ENOENT, "fusermount3 not found; cannot clear the stale mount", target)
    proc = subprocess.run([tool, "-u", "-z", target], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise OSError(
            errno.EBUSY, f"{tool} -uz failed: {proc.stderr.strip() or proc.returncode}", target
        )
    log.warning("cleared a stale xnatfs mount at %s (its process had ended)", target)
    return True


# --- install --------------------------------------------------------------------------------


def installed_script() -> Path:
    """The `mount.fuse.xnatfs` console script of this installation."""
    beside = Path(sys.executable).parent / PROG
    if beside.is_file():
        return beside
    found = shutil.which(PROG)
    if found:
        return Path(found)
    raise ConfigError(f"{PROG} is not installed next to {sys.executable} nor on PATH")


def install_helper(target_dir: Path = Path("/sbin")) -> Path:
    """Make `target_dir/mount.fuse.xnatfs` a symlink to this installation's helper script.

    An existing symlink there is replaced (atomically); an existing regular file is not
    (ConfigError: remove it first). Returns the symlink's path. Needs write access to
    `target_dir` (root for /sbin): raises OSError otherwise.
    """
    script = installed_script().absolute()
    link = target_dir / PROG
    if link.exists() and not link.is_symlink():
        raise ConfigError(f"{link} exists and is not a symlink; remove it first")
    tmp = target_dir / f".{PROG}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(script)
    try:
        os.replace(tmp, link)
    except OSError:
        tmp.unlink()
        raise
    return link


# --- main -----------------------------------------------------------------------------------


def _fail(message: str, code: int) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return code


def _exec(command: list[str]) -> NoReturn:
    os.execv(command[0], command)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `mount.fuse.xnatfs`. Exit status as mount(8) expects: 1 for a bad command
    line or option, 32 when the mount failed; otherwise `xnatfs mount`'s own (it replaces this
    process)."""
    args_in = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parse_argv(args_in)
        translation = translate_options(args.options, sloppy=args.sloppy, absolute_paths=True)
        if "--foreground" in translation.args:
            raise ConfigError(
                "option 'foreground' is not allowed here: mount(8) expects the helper to return "
                "once the mount is live; run 'xnatfs mount --foreground' or the xnatfs@.service "
                "unit instead"
            )
        command = build_command(args, translation)
    except ConfigError as exc:
        return _fail(str(exc), 1)
    for item in translation.skipped:
        print(f"{PROG}: ignoring unknown option {item!r} (-s)", file=sys.stderr)
    if args.verbose or args.fake:
        print(f"{PROG}: running: {' '.join(command)}", file=sys.stderr)
    if args.fake:
        return 0
    try:
        clear_stale_mount(Path(command[5]))
    except OSError as exc:
        return _fail(f"{command[5]}: {exc.strerror or exc}", 32)
    sys.stdout.flush()
    sys.stderr.flush()
    _exec(command)


if __name__ == "__main__":
    raise SystemExit(main())
