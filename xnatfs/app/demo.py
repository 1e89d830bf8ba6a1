"""`xnatfs demo`: start the bundled demo XNAT and mount it in the foreground.

The demo server runs in this process on loopback, on a free port. The mount uses a throwaway
cache directory (removed when the demo ends) unless `--cache-dir` is given, and a temporary
mount point unless one is given; a mount point that does not exist is created. Directories the
demo created are removed again at the end (a mount point only while it is empty). So several
demos can run at once, each with its own port and cache. The "try:" hint is printed once the
mount answers; Ctrl-C unmounts (printing "unmounted") and stops the server.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from xnatfs.app import mount
from xnatfs.app.logsetup import open_log, setup_logging
from xnatfs.config import build_config
from xnatfs.demo import DEMO_PASSWORD, DEMO_USER, DemoServer, build_demo_site
from xnatfs.errors import ConfigError
from xnatfs.xnat.auth import Credentials

_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def run(
    mountpoint: str | None,
    values: Mapping[str, Any],
    *,
    port: int = 0,
    latency: float = 0.0,
    serve_only: bool = False,
) -> int:
    """Serve the demo site on `port` (0: any free one), with `latency` seconds added to every
    reply, and mount it on `mountpoint` with the command-line option `values` until SIGINT or
    SIGTERM; with `serve_only`, only serve. Prints where, and how to log in. Returns the exit
    status; raises what `build_config` and `xnatfs.app.mount.run` raise, and ConfigError when
    the mount point cannot be created.
    """
    if serve_only:
        # sigwait below is only reliable for blocked signals, and blocked before the server's
        # threads start (they inherit the mask), no thread but that call takes a Ctrl-C.
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    server = DemoServer(build_demo_site(), port=port)
    server.faults.latency = latency
    server.start()
    try:
        print(f"demo XNAT:   {server.url}")
        print(f"credentials: user {DEMO_USER!r}, password {DEMO_PASSWORD!r}")
        if serve_only:
            print("serving until Ctrl-C", flush=True)
            signal.sigwait(_STOP_SIGNALS)
            return 0
        with contextlib.ExitStack() as cleanup:
            return _mount(server, mountpoint, dict(values), cleanup)
    finally:
        server.stop()


def _mount(
    server: DemoServer,
    mountpoint: str | None,
    options: dict[str, Any],
    cleanup: contextlib.ExitStack,
) -> int:
    cache_note = ""
    if "cache_dir" not in options:
        cache = tempfile.mkdtemp(prefix="xnatfs-demo-cache-")
        cleanup.callback(shutil.rmtree, cache, ignore_errors=True)
        options["cache_dir"] = cache
        cache_note = "   (throwaway: removed when the demo ends)"
    options["foreground"] = True
    if mountpoint is None:
        where = Path(tempfile.mkdtemp(prefix="xnatfs-demo-"))
        cleanup.callback(_remove_empty, [where])
    else:
        where = Path(mountpoint).absolute()
        made = [p for p in (where, *where.parents) if not p.exists()]
        try:
            where.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create mount point {where}: {exc.strerror}") from None
        cleanup.callback(_remove_empty, made)
    cfg = build_config(server.url, where, options)
    log_file = open_log(cfg.log_file) if cfg.log_file else None
    setup_logging(debug=cfg.debug, stream=log_file)
    print(f"mount point: {where}")
    print(f"cache:       {cfg.cache_dir}{cache_note}", flush=True)

    def live() -> None:
        print(f"try:         ls {where}/TEST/1/MR1/scans/T1/DICOM   (Ctrl-C unmounts)", flush=True)

    code = mount.run(cfg, Credentials(DEMO_USER, DEMO_PASSWORD), live)
    print(f"unmounted {where}", flush=True)
    return code


def _remove_empty(paths: list[Path]) -> None:
    """Remove the directories the demo made, innermost first, as long as they are empty."""
    for path in paths:
        with contextlib.suppress(OSError):
            path.rmdir()
