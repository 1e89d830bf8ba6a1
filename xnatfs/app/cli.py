"""The `xnatfs` command line: mount, umount, demo, cache, install-helper.

Parsing and dispatch only: options become a `MountConfig` (`xnatfs.config`), and the modules of
`xnatfs.app` do the work. Errors the user can fix are one line on stderr and a non-zero exit
status, never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from xnatfs import __version__
from xnatfs.app import background, fstab, privacy
from xnatfs.app.configfile import load_config_file
from xnatfs.app.logsetup import add_secret, open_log, setup_logging
from xnatfs.app.mountopts import translate_options
from xnatfs.app.mounts import unmount
from xnatfs.cache.commands import cache_clear, cache_info
from xnatfs.config import (
    COMMAND_LINE,
    CONFIG,
    MOUNTPOINT,
    OPTIONS,
    URL,
    MountConfig,
    build_config,
    default_cache_root,
    refuse_secret,
)
from xnatfs.errors import ConfigError, XnatfsError

MOUNT_EPILOG = """\
examples:
  XNATFS_USER=alice xnatfs mount https://xnat.example.org/xnat ~/xnat
  xnatfs mount https://xnat.example.org ~/xnat --project STUDY --cache-size 50G

credentials (never on the command line), the first found is used:
  --password-file FILE   a file (mode 0600) whose first line is the password
  XNATFS_PASSWORD        the password in the environment
  netrc                  ~/.netrc (or --netrc FILE, $NETRC): machine HOST login USER password PW
  the user name is --user, else XNATFS_USER, else the netrc login; none at all: anonymous.

more: docs/configuration.md (options, TOML files), docs/troubleshooting.md
"""

EXIT_USAGE = 2
EXIT_FAILED = 1


class _Parser(argparse.ArgumentParser):
    """argparse, except that a refused command line is never echoed whole: what follows a
    mistyped option may be a secret (`--passwrd hunter2`, `--passwrd=hunter2`), so only the
    option names are, without any `=value`."""

    def error(self, message: str) -> NoReturn:
        head, sep, rest = message.partition("unrecognized arguments: ")
        if sep:
            names = [word.partition("=")[0] for word in rest.split() if word.startswith("-")]
            message = head + sep + (" ".join(names) or "(values without an option)")
        elif "ignored explicit argument" in message:
            # "argument --debug: ignored explicit argument 'VALUE'"
            message = message.split(": ignored explicit argument", 1)[0] + " takes no value"
        super().error(message)


def _add_mount_options(parser: argparse.ArgumentParser) -> None:
    for spec in OPTIONS:
        flag = "--" + spec.name.replace("_", "-")
        if spec.flag:
            parser.add_argument(
                flag, dest=spec.name, action="store_const", const=True, default=None, help=spec.help
            )
        elif spec.repeat:
            parser.add_argument(
                flag, dest=spec.name, action="append", default=None, metavar="VALUE", help=spec.help
            )
        else:
            parser.add_argument(flag, dest=spec.name, default=None, metavar="VALUE", help=spec.help)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of every subcommand.

    Option names are never abbreviated: `--password` must not pass for `--password-file`.
    """
    parser = _Parser(
        prog="xnatfs",
        description="Mount an XNAT archive as a read-only filesystem.",
        allow_abbrev=False,
    )
    parser.add_argument("-V", "--version", action="version", version=f"xnatfs {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    mount = sub.add_parser(
        "mount",
        help="mount an XNAT server",
        description="Mount an XNAT archive read-only; returns once the mount answers.",
        epilog=MOUNT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    mount.add_argument("url", nargs="?", help=URL.help)
    mount.add_argument("mountpoint", nargs="?", help=MOUNTPOINT.help)
    mount.add_argument("--config", type=Path, help=CONFIG.help)
    mount.add_argument(
        "-o",
        dest="fuse_o",
        metavar="KEY=VALUE,...",
        help="options in fstab form (expanded into the options below)",
    )
    _add_mount_options(mount)

    umount = sub.add_parser("umount", help="unmount an xnatfs mount", allow_abbrev=False)
    umount.add_argument("mountpoint")
    umount.add_argument(
        "--lazy", action="store_true", help="detach now even if busy or dead (fusermount3 -uz)"
    )

    demo = sub.add_parser(
        "demo", help="start the bundled demo XNAT and mount it", allow_abbrev=False
    )
    demo.add_argument("mountpoint", nargs="?", help="where to mount (default: a new temp dir)")
    demo.add_argument(
        "--serve-only", action="store_true", help="run only the demo server, for other XNAT clients"
    )
    demo.add_argument("--port", type=int, default=0, help="demo server port (default: any)")
    demo.add_argument(
        "--latency", type=float, default=0.0, help="seconds added to every demo server response"
    )
    _add_mount_options(demo)

    prefetch = sub.add_parser(
        "prefetch",
        help="fetch mounted files into the disk cache ahead of use, with progress",
        allow_abbrev=False,
    )
    prefetch.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="a project, subject, session, scan, resource or file",
    )
    prefetch.add_argument(
        "--jobs", "-j", type=int, default=4, help="files read at a time (default 4)"
    )

    status = sub.add_parser(
        "status",
        help="what each xnatfs mount is doing: server, downloads, cache, errors",
        allow_abbrev=False,
    )
    status.add_argument("mountpoint", nargs="?", help="only this mount (default: every one)")
    status.add_argument("--json", action="store_true", help="one JSON document, for scripts")
    status.add_argument(
        "--watch",
        nargs="?",
        type=float,
        const=2.0,
        metavar="SECONDS",
        help="refresh every SECONDS (default 2) until Ctrl-C",
    )

    cache = sub.add_parser("cache", help="inspect or clear the disk cache", allow_abbrev=False)
    cache.add_argument("action", choices=["info", "clear"])
    cache.add_argument("--cache-dir", type=Path, default=None)

    helper = sub.add_parser(
        "install-helper",
        help="install mount.fuse.xnatfs so `mount -t fuse.xnatfs` works",
        allow_abbrev=False,
    )
    helper.add_argument("--target-dir", type=Path, default=Path("/sbin"))
    return parser


def _option_values(args: argparse.Namespace) -> dict[str, Any]:
    return {
        spec.name: getattr(args, spec.name)
        for spec in OPTIONS
        if getattr(args, spec.name, None) is not None
    }


def mount_config(args: argparse.Namespace) -> MountConfig:
    """Config file values, then `-o` values, then command-line options, later ones winning.

    Raises ConfigError for a bad value (naming where it was written) or a missing URL or
    mount point.
    """
    values: dict[str, Any] = {}
    url, mountpoint = args.url, args.mountpoint
    if args.config is not None:
        file_url, file_mnt, file_values = load_config_file(args.config)
        values.update(file_values)
        url = url or file_url
        mountpoint = mountpoint or file_mnt
    values.update(_option_values(args))
    if not url or not mountpoint:
        raise ConfigError("give a URL and a mount point (or a --config file naming them)")
    return build_config(url, mountpoint, values)


def cmd_mount(args: argparse.Namespace) -> int:
    """`xnatfs mount`: in the background (return once the mount answers) or in the foreground
    (serve until unmounted).

    Once the options are read, the process that will hold the password is made undumpable, and
    `$XNATFS_PASSWORD` leaves its environment (a background child gets it through a pipe).
    """
    cfg = mount_config(args)
    privacy.make_undumpable()
    env_password = privacy.take_env_password()
    if env_password is not None:
        add_secret(env_password, user=os.environ.get("XNATFS_USER"))
    if not cfg.foreground and not background.is_child():
        setup_logging(debug=cfg.debug)
        started = background.start(cfg, args.argv, password=env_password)
        print(
            f"xnatfs: mounted {cfg.url} on {cfg.mountpoint} "
            f"(pid {started.pid}, log {started.log_path})"
        )
        return 0
    # In the child of a background mount, this tells the waiting parent how it went: every
    # failure the user can act on reaches their terminal as the parent's own one line.
    readiness = background.Readiness.from_environ()
    try:
        # The child's stderr is the log file already.
        log_file = cfg.log_file if cfg.foreground else None
        setup_logging(debug=cfg.debug, stream=open_log(log_file) if log_file else None)
        return _run_mount(cfg, readiness, env_password)
    except XnatfsError as exc:
        readiness.failed(str(exc))
        raise


def _run_mount(cfg: MountConfig, readiness: background.Readiness, env_password: str | None) -> int:
    # Imported here: requests, trio and pyfuse3 take about half a second to load, and only the
    # process that serves the mount needs them (not the parent of a background mount, nor the
    # other subcommands).
    from xnatfs.app import mount
    from xnatfs.app.credentials import cleartext_warning, resolve_credentials

    environ = dict(os.environ)
    if env_password is not None:
        environ[privacy.PASSWORD_ENV] = env_password
    credentials = resolve_credentials(
        cfg.url,
        user=cfg.user,
        password_file=cfg.password_file,
        netrc_path=cfg.netrc,
        environ=environ,
    )
    if credentials is not None:
        add_secret(credentials.password, user=credentials.user)
    warning = cleartext_warning(cfg.url, credentials)
    if warning is not None:
        logging.getLogger("xnatfs.app.mount").warning("%s", warning)
    return mount.run(cfg, credentials, readiness.ready)


def cmd_umount(args: argparse.Namespace) -> int:
    """`xnatfs umount [--lazy] MOUNTPOINT`: fusermount's complaint and a hint on failure."""
    try:
        unmount(args.mountpoint, lazy=args.lazy)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise ConfigError(exc.strerror or str(exc)) from None
        hint = "" if args.lazy else " (busy? close files there, or use --lazy)"
        print(f"xnatfs: {exc.strerror}{hint}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """`xnatfs demo`: see `xnatfs.app.demo`."""
    # Imported here: the demo server and the mount stack take about half a second to load,
    # and no other subcommand needs the demo server.
    from xnatfs.app import demo

    return demo.run(
        args.mountpoint,
        _option_values(args),
        port=args.port,
        latency=args.latency,
        serve_only=args.serve_only,
    )


def cmd_prefetch(args: argparse.Namespace) -> int:
    """`xnatfs prefetch PATH... [--jobs N]`: see `xnatfs.app.fetch`."""
    from xnatfs.app import fetch

    if args.jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, not {args.jobs}")
    return fetch.run(args.paths, jobs=args.jobs)


def cmd_status(args: argparse.Namespace) -> int:
    """`xnatfs status [MOUNTPOINT] [--json] [--watch [SECONDS]]`: see `xnatfs.app.status`."""
    from xnatfs.app import status

    if args.watch is not None and args.watch <= 0:
        raise ConfigError(f"--watch takes a positive number of seconds, not {args.watch:g}")
    return status.run(args.mountpoint, as_json=args.json, watch=args.watch)


def cmd_cache(args: argparse.Namespace) -> int:
    """`xnatfs cache info|clear`: see `xnatfs.cache.commands`."""
    root = args.cache_dir or default_cache_root()
    print(cache_info(root) if args.action == "info" else cache_clear(root))
    return 0


def cmd_install_helper(args: argparse.Namespace) -> int:
    """`xnatfs install-helper`: symlink `mount.fuse.xnatfs` into `--target-dir` (/sbin)."""
    print(f"installed {fstab.install_helper(args.target_dir)}")
    return 0


COMMANDS = {
    "mount": cmd_mount,
    "umount": cmd_umount,
    "demo": cmd_demo,
    "prefetch": cmd_prefetch,
    "status": cmd_status,
    "cache": cmd_cache,
    "install-helper": cmd_install_helper,
}


def expand_o_options(argv: Sequence[str]) -> list[str]:
    """`-o cache_size=10G,allow_other` -> `--cache-size=10G --allow-other` (fstab form).

    Raises ConfigError for what `translate_options` refuses.
    """
    out: list[str] = []
    items = list(argv)
    i = 0
    while i < len(items):
        item = items[i]
        if item == "-o" and i + 1 < len(items):
            out.extend(translate_options(items[i + 1]).args)
            i += 2
            continue
        if item.startswith("-o") and len(item) > 2 and not item.startswith("--"):
            out.extend(translate_options(item[2:]).args)
        else:
            out.append(item)
        i += 1
    return out


def refuse_secret_options(argv: Sequence[str]) -> None:
    """Raise ConfigError for `--password` and the like, before argparse could echo the value."""
    for item in argv:
        if item.startswith("--"):
            refuse_secret(item.partition("=")[0], COMMAND_LINE)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `xnatfs`; returns the exit status (2 for a usage or configuration error,
    1 for a failure, 130 after Ctrl-C)."""
    raw = list(sys.argv[1:] if argv is None else argv)
    if raw and "://" in raw[0]:
        # Without /sbin/mount.fuse.xnatfs, mount(8) falls back to fuse3's mount.fuse3, which
        # runs `xnatfs URL MOUNTPOINT -o OPTIONS`: that is the mount helper's command line.
        return fstab.main(raw)
    try:
        refuse_secret_options(raw)
        args = build_parser().parse_args(expand_o_options(raw) if raw[:1] == ["mount"] else raw)
        # A background mount runs this same command line again in its child.
        args.argv = raw
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"xnatfs: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except XnatfsError as exc:
        print(f"xnatfs: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BaseExceptionGroup as group:
        first = group.exceptions[0]
        if isinstance(first, XnatfsError):
            print(f"xnatfs: {first}", file=sys.stderr)
            return EXIT_FAILED
        raise
