"""A demo XNAT server: a real HTTP server on loopback that speaks the part of XNAT's REST API a
filesystem uses, over a generated archive with real DICOM, JPEG and Analyze contents.

It is the test double of the xnatfs suite and the server behind `xnatfs demo`. Standard library
only. See docs/demo-server.md.

    with DemoServer() as server:              # build_demo_site() unless a Site is given
        requests.get(server.url + "/data/projects", auth=(DEMO_USER, DEMO_PASSWORD))
        server.faults.latency = 0.02          # switches: see xnatfs.demo.faults
        assert server.log.count(kind="listing") == 1
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Mapping
from types import TracebackType

from xnatfs.demo.app import DemoApp
from xnatfs.demo.auth import AuthStore
from xnatfs.demo.demo_site import build_demo_site
from xnatfs.demo.faults import Faults, LogEntry, RequestLog
from xnatfs.demo.server import DemoHTTPServer
from xnatfs.demo.site import Site

DEMO_USER = "demo"
DEMO_PASSWORD = "demo"

__all__ = [
    "DEMO_PASSWORD",
    "DEMO_USER",
    "DemoServer",
    "Faults",
    "LogEntry",
    "RequestLog",
    "Site",
    "build_demo_site",
    "serve_forever",
]


def _normalise_context(path: str) -> str:
    path = path.strip().strip("/")
    return f"/{path}" if path else ""


class DemoServer:
    """The demo XNAT in a background thread. A context manager: start on enter, stop on exit."""

    def __init__(
        self,
        site: Site | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        context_path: str = "",
        users: Mapping[str, str] | None = None,
        faults: Faults | None = None,
    ) -> None:
        self.site = site if site is not None else build_demo_site()
        self.faults = faults if faults is not None else Faults()
        self.log = RequestLog()
        self.host = host
        self.port = port
        self.context_path = _normalise_context(context_path)
        self.auth = AuthStore(users if users is not None else {DEMO_USER: DEMO_PASSWORD})
        self.app = DemoApp(self.site, self.faults, self.log, self.auth, self.context_path)
        self._httpd: DemoHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL including the context path, e.g. `http://127.0.0.1:PORT/xnat`."""
        if self._httpd is None:
            raise RuntimeError("the demo server is not running")
        return f"http://{self.host}:{self.port}{self.context_path}"

    def start(self) -> None:
        if self._httpd is not None:
            return
        self._httpd = DemoHTTPServer((self.host, self.port), self.app)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"xnatfs-demo-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop listening and close every open connection; returns promptly."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        httpd.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> DemoServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_forever(
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    context_path: str = "",
    latency: float = 0.0,
    bandwidth: int = 0,
    big_file_size: int = 0,
    ready: threading.Event | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Run the demo server in the foreground until SIGINT/SIGTERM (or `stop` is set); print its
    URL and the demo credentials first. Returns the exit status (0)."""
    faults = Faults()
    faults.latency = latency
    faults.bandwidth = bandwidth
    server = DemoServer(
        build_demo_site(big_file_size=big_file_size),
        host=host,
        port=port,
        context_path=context_path,
        faults=faults,
    )
    done = stop if stop is not None else threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: done.set())
    server.start()
    try:
        print(f"demo XNAT at {server.url}", flush=True)
        print(f"user {DEMO_USER}, password {DEMO_PASSWORD} (public demo account)", flush=True)
        if ready is not None:
            ready.set()
        while not done.wait(0.5):
            pass
    finally:
        server.stop()
    print("demo XNAT stopped", file=sys.stderr, flush=True)
    return 0
