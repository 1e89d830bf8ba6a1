"""`xnatfs demo`: start the bundled demo XNAT and mount it in the foreground.

The demo server runs in this process on loopback; the mount uses its own cache directory
(`demo` under the default cache root) unless one is given, and a temporary mount point unless
one is given (removed again when it is still empty). Ctrl-C unmounts and stops the server.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from collections.abc import Mapping
from typing import Any

from xnatfs.app import mount
from xnatfs.app.logsetup import setup_logging
from xnatfs.config import build_config, default_cache_root
from xnatfs.demo import DEMO_PASSWORD, DEMO_USER, DemoServer, build_demo_site
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
    status; raises what `build_config` and `xnatfs.app.mount.run` raise.
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
        options = dict(values)
        options.setdefault("cache_dir", str(default_cache_root() / "demo"))
        options["foreground"] = True
        created = None if mountpoint else tempfile.mkdtemp(prefix="xnatfs-demo-")
        where = mountpoint or str(created)
        cfg = build_config(server.url, where, options)
        setup_logging(debug=cfg.debug)
        print(f"mount point: {where}")
        print(f"try:         ls {where}/TEST/1/MR1/scans/T1/DICOM   (Ctrl-C unmounts)", flush=True)
        try:
            return mount.run(cfg, Credentials(DEMO_USER, DEMO_PASSWORD))
        finally:
            if created is not None:
                with contextlib.suppress(OSError):
                    os.rmdir(created)  # only the empty directory made above
    finally:
        server.stop()
