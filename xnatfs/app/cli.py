"""The `xnatfs` command line: mount, umount, demo, cache.

Parsing only: options become a `MountConfig`, and `xnatfs.app.mount` does the work. Errors the user
can fix are one line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xnatfs import __version__
from xnatfs.app.mountopts import translate_options
from xnatfs.app.mounts import unmount
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

EXIT_USAGE = 2
EXIT_FAILED = 1
READY_FD_ENV = "XNATFS_READY_FD"


def _add_mount_options(parser: argparse.ArgumentParser) -> None:
    for spec in OPTIONS:
        flag = "--" + spec.name.replace("_", "-")
        if spec.flag:
            parser.add_argument(
                flag, dest=spec.name, action="store_const", const=True, default=None, help=spec.help
            )
        else:
            parser.add_argument(flag, dest=spec.name, default=None, metavar="VALUE", help=spec.help)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of every subcommand.

    Option names are never abbreviated: `--password` must not pass for `--password-file`.
    """
    parser = argparse.ArgumentParser(
        prog="xnatfs",
        description="Mount an XNAT archive as a read-only filesystem.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"xnatfs {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    mount = sub.add_parser("mount", help="mount an XNAT server", allow_abbrev=False)
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
    """Config file values, then `-o` values, then command-line options, later ones winning."""
    values: dict[str, Any] = {}
    url, mountpoint = args.url, args.mountpoint
    if args.config is not None:
        from xnatfs.app.configfile import load_config_file

        file_url, file_mnt, file_values = load_config_file(args.config)
        values.update(file_values)
        url = url or file_url
        mountpoint = mountpoint or file_mnt
    values.update(_option_values(args))
    if not url or not mountpoint:
        raise ConfigError("give a URL and a mount point (or a --config file naming them)")
    return build_config(url, mountpoint, values)


def _setup_logging(debug: bool) -> None:
    from xnatfs.app.logsetup import setup_logging

    setup_logging(debug=debug)


def cmd_mount(args: argparse.Namespace) -> int:
    cfg = mount_config(args)
    _setup_logging(cfg.debug)
    if not cfg.foreground and READY_FD_ENV not in os.environ:
        return _mount_in_background(args, cfg)
    from xnatfs.app.credentials import resolve_credentials

    credentials = resolve_credentials(
        cfg.url, user=cfg.user, password_file=cfg.password_file, netrc_path=cfg.netrc
    )
    if credentials is not None:
        from xnatfs.app.logsetup import add_secret

        add_secret(credentials.password, user=credentials.user)
    return _run_mount(cfg, credentials)


def _run_mount(cfg: MountConfig, credentials: Any) -> int:
    from xnatfs.app import mount

    ready_fd = os.environ.pop(READY_FD_ENV, None)

    def ready(message: str | None) -> None:
        if ready_fd is None:
            return
        try:
            os.write(int(ready_fd), (message or "ok").encode() + b"\n")
            os.close(int(ready_fd))
        except OSError:
            pass

    try:
        return mount.run(cfg, credentials, ready)
    except XnatfsError as exc:
        ready(f"error: {exc}")
        raise


def _mount_in_background(args: argparse.Namespace, cfg: MountConfig) -> int:
    """Start the mount as a detached child and return once it answers (or has failed)."""
    read_fd, write_fd = os.pipe()
    log_path = cfg.effective_cache_dir.parent / f"{cfg.effective_cache_dir.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    argv = [sys.executable, "-m", "xnatfs", *sys.argv[1:]]
    env = dict(os.environ, **{READY_FD_ENV: str(write_fd)})
    with open(log_path, "ab") as log_file:
        os.chmod(log_path, 0o600)
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            pass_fds=(write_fd,),
            env=env,
            start_new_session=True,
        )
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        answer = pipe.readline().decode(errors="replace").strip()
    if answer == "ok":
        print(f"xnatfs: mounted {cfg.url} on {cfg.mountpoint} (pid {proc.pid}, log {log_path})")
        return 0
    proc.wait()
    message = (
        answer.removeprefix("error: ")
        or f"the mount process exited ({proc.returncode}); see {log_path}"
    )
    print(f"xnatfs: {message}", file=sys.stderr)
    return EXIT_FAILED


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
    from xnatfs.demo import DEMO_PASSWORD, DEMO_USER, DemoServer, build_demo_site

    server = DemoServer(build_demo_site(), port=args.port)
    server.faults.latency = args.latency
    server.start()
    try:
        print(f"demo XNAT:   {server.url}")
        print(f"credentials: user {DEMO_USER!r}, password {DEMO_PASSWORD!r}")
        if args.serve_only:
            print("serving until Ctrl-C", flush=True)
            _wait_for_interrupt()
            return 0
        values = _option_values(args)
        values.setdefault("cache_dir", str(default_cache_root() / "demo"))
        values["foreground"] = True
        created = None if args.mountpoint else tempfile.mkdtemp(prefix="xnatfs-demo-")
        mountpoint = str(args.mountpoint or created)
        cfg = build_config(server.url, mountpoint, values)
        _setup_logging(cfg.debug)
        print(f"mount point: {mountpoint}")
        print(
            f"try:         ls {mountpoint}/TEST/1/MR1/scans/T1/DICOM   (Ctrl-C unmounts)",
            flush=True,
        )
        from xnatfs.xnat.auth import Credentials

        try:
            return _run_mount(cfg, Credentials(DEMO_USER, DEMO_PASSWORD))
        finally:
            if created is not None:
                with contextlib.suppress(OSError):
                    os.rmdir(created)  # only the empty directory made above
    finally:
        server.stop()


def _wait_for_interrupt() -> None:
    import signal

    with contextlib.suppress(KeyboardInterrupt):
        signal.sigwait({signal.SIGINT, signal.SIGTERM})


def cmd_cache(args: argparse.Namespace) -> int:
    from xnatfs.cache.commands import cache_clear, cache_info

    root = args.cache_dir or default_cache_root()
    print(cache_info(root) if args.action == "info" else cache_clear(root))
    return 0


def cmd_install_helper(args: argparse.Namespace) -> int:
    from xnatfs.app.fstab import install_helper

    print(f"installed {install_helper(args.target_dir)}")
    return 0


COMMANDS = {
    "mount": cmd_mount,
    "umount": cmd_umount,
    "demo": cmd_demo,
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
    raw = list(sys.argv[1:] if argv is None else argv)
    if raw and "://" in raw[0]:
        # Without /sbin/mount.fuse.xnatfs, mount(8) falls back to fuse3's mount.fuse3, which
        # runs `xnatfs URL MOUNTPOINT -o OPTIONS`: that is the mount helper's command line.
        from xnatfs.app.fstab import main as helper_main

        return helper_main(raw)
    parser = build_parser()
    try:
        refuse_secret_options(raw)
        args = parser.parse_args(expand_o_options(raw) if "mount" in raw[:1] else raw)
    except ConfigError as exc:
        print(f"xnatfs: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
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
