"""`mount.fuse.xnatfs`: the helper mount(8) runs for `mount -t fuse.xnatfs` and fstab lines.

mount(8) (util-linux libmount, Debian 12) looks for `/sbin/mount.fuse.xnatfs` first and, when
it is missing, falls back to `/sbin/mount.fuse` (fuse3's `mount.fuse3`), which would run
`xnatfs URL MOUNTPOINT -o ...`, a command line `xnatfs` does not take. So the helper must be
installed under that name (`install_helper`, or `ln -s "$(command -v mount.fuse.xnatfs)"
/sbin/mount.fuse.xnatfs`). mount(8) calls it as

    mount.fuse.xnatfs SOURCE MOUNTPOINT [-s] [-n] [-v] [-f] [-o OPTIONS]

with `rw` in OPTIONS unless `ro` was given, with `x-*` and `noauto` already removed, and with
`user` expanded to `user,noexec,nosuid,nodev`. The helper turns OPTIONS into `xnatfs mount`
options (`xnatfs.app.mountopts`: generic mount options dropped, unknown ones refused), insists
on absolute paths and on background mode, clears a dead xnatfs mount left at MOUNTPOINT by a
crash (`xnatfs.app.mounts`), and execs `xnatfs mount`, which returns only once the mount
answers or has failed: mount(8) and systemd mount units see the real outcome.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from xnatfs.app.mountopts import Translation, translate_options
from xnatfs.app.mounts import FSTYPE, clear_stale_mount
from xnatfs.config import normalize_url
from xnatfs.errors import ConfigError

PROG = "mount.fuse.xnatfs"
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
    if translation.wanted_rw:
        print(f"{PROG}: mounting {args.mountpoint} read-only ('rw' ignored)", file=sys.stderr)
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
