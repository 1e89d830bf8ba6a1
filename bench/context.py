"""What every scenario shares: options, the demo server, mounts, direct downloads, cold caches.

`Bench` owns one demo server for the whole run (scenarios change its latency and bandwidth
between measurements), one work directory (mount points, fresh cache directories, copies), and
the `Results`. Direct downloads (the baselines) use requests exactly as a careful script would:
a logged-in Session, streamed bodies written in 1 MiB pieces.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bench.results import Results
from bench.site import BenchSite, Sizes
from tests.support.mounting import Mount, MountSpec, mounted

CHUNK = 1 << 20
DEFAULT_PREFETCH = "default"  # no --prefetch option: whatever the filesystem defaults to


@dataclass(frozen=True)
class Options:
    runs: int
    latencies_ms: tuple[float, ...]
    bandwidths: tuple[int, ...]  # caps (bytes/s) for the series scenarios; 0 = none
    big_caps: tuple[int, ...]  # caps for the large file; 0 = none
    prefetch_modes: tuple[str, ...]
    scenarios: tuple[str, ...]
    sizes: Sizes
    smoke: bool = False
    quick: bool = False


@dataclass(frozen=True)
class Condition:
    latency_ms: float
    cap: int = 0  # bytes/s per response, 0 = unlimited

    @property
    def label(self) -> str:
        text = f"{self.latency_ms:g} ms"
        if self.cap:
            text += f", {self.cap / 1e6:g} MB/s"
        return text


@dataclass
class FileRef:
    url: str  # absolute
    name: str
    size: int


@dataclass
class Bench:
    options: Options
    server: Any  # xnatfs.demo.DemoServer
    site: BenchSite
    spec: MountSpec
    results: Results
    workdir: Path
    dropped_caches: bool = False
    _counter: int = 0
    _local: threading.local = field(default_factory=threading.local)

    # --- conditions ----------------------------------------------------------------------------

    def apply(self, cond: Condition) -> None:
        """Set the server's per-request latency and bandwidth cap for what follows."""
        self.server.faults.latency = cond.latency_ms / 1000.0
        self.server.faults.bandwidth = cond.cap

    def series_conditions(self) -> list[Condition]:
        return [
            Condition(lat, cap)
            for lat in self.options.latencies_ms
            for cap in self.options.bandwidths
        ]

    # --- scratch space -------------------------------------------------------------------------

    def fresh_dir(self, prefix: str) -> Path:
        self._counter += 1
        path = self.workdir / f"{prefix}-{self._counter}"
        path.mkdir(parents=True)
        return path

    @contextlib.contextmanager
    def scratch(self, prefix: str) -> Iterator[Path]:
        """A new empty directory, removed afterwards."""
        path = self.fresh_dir(prefix)
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def drop_caches(self) -> None:
        """Write back dirty pages and drop the page, dentry and inode caches (root only)."""
        os.sync()
        if os.geteuid() != 0:
            return
        try:
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3\n")
            self.dropped_caches = True
        except OSError:
            pass

    # --- mounts --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def mount(
        self,
        scenario: str,
        cache_dir: Path,
        *,
        prefetch: str = DEFAULT_PREFETCH,
        options: Sequence[str] = (),
    ) -> Iterator[Mount]:
        """A fresh mount process; its peak RSS is recorded for `scenario` when the block ends."""
        opts = list(options)
        if prefetch != DEFAULT_PREFETCH:
            opts += ["--prefetch", prefetch]
        with mounted(self.spec, cache_dir, options=opts) as m:
            try:
                yield m
            finally:
                rss = m.peak_rss()
                if rss is not None:
                    self.results.sample("g", f"peak RSS {scenario}", "any", rss / 1e6)

    # --- what the server saw ---------------------------------------------------------------------

    @contextlib.contextmanager
    def traffic(
        self, scenario: str, what: str, condition: str, mount: Mount | None = None
    ) -> Iterator[None]:
        """Record what the block cost under `details[scenario][condition][what]` (the last
        run wins): the requests (by kind) and body megabytes the server sent, the CPU seconds
        of the mount process and of this process (the demo server runs here)."""
        before = len(self.server.log.entries())
        mount_cpu = mount.cpu() if mount is not None else None
        own_cpu = _own_cpu()
        try:
            yield
        finally:
            entries = self.server.log.entries()[before:]
            kinds: dict[str, int] = {}
            for e in entries:
                kinds[e.kind] = kinds.get(e.kind, 0) + 1
            info: dict[str, Any] = {
                "requests": kinds,
                "MB sent": round(sum(e.bytes_sent for e in entries) / 1e6, 1),
                "server CPU s": round(_own_cpu() - own_cpu, 2),
            }
            end_cpu = mount.cpu() if mount is not None else None
            if mount_cpu is not None and end_cpu is not None:
                info["mount CPU s"] = round(end_cpu - mount_cpu, 2)
            by_cond = self.results.details.setdefault(scenario, {}).setdefault(condition, {})
            by_cond[what] = info

    # --- direct HTTP ---------------------------------------------------------------------------

    def session(self) -> requests.Session:
        """A new logged-in Session (the login request is not part of any timing)."""
        s = requests.Session()
        s.auth = (self.spec.user, self.spec.password)
        r = s.get(f"{self.spec.url}/data/projects", params={"format": "json"}, timeout=60)
        r.raise_for_status()
        return s

    def thread_session(self) -> requests.Session:
        s: requests.Session | None = getattr(self._local, "session", None)
        if s is None:
            s = self.session()
            self._local.session = s
        return s

    def resource_url(self, scan_id: str) -> str:
        exp = self.site.big_session
        res = self.site.resource(scan_id)
        return f"{self.spec.url}/data/experiments/{exp.id}/scans/{scan_id}/resources/{res.id}/files"

    def big_file_url(self) -> str:
        from bench.site import BIG_FILE_PATH

        exp = self.site.big_session
        raw = exp.resources[0]
        return f"{self.spec.url}/data/experiments/{exp.id}/resources/{raw.id}/files/{BIG_FILE_PATH}"

    def list_files(self, session: requests.Session, scan_id: str) -> list[FileRef]:
        r = session.get(self.resource_url(scan_id), params={"format": "json"}, timeout=60)
        r.raise_for_status()
        rows = r.json()["ResultSet"]["Result"]
        refs = [
            FileRef(self.spec.url + row["URI"], row["Name"], int(row["Size"] or 0)) for row in rows
        ]
        return sorted(refs, key=lambda f: f.name)

    def download(self, session: requests.Session, url: str, dest: Path | None) -> int:
        """Stream one GET to `dest` (or nowhere); the number of body bytes."""
        total = 0
        with session.get(url, stream=True, timeout=120) as r:
            r.raise_for_status()
            if dest is None:
                for chunk in r.iter_content(CHUNK):
                    total += len(chunk)
                return total
            with open(dest, "wb") as f:
                for chunk in r.iter_content(CHUNK):
                    f.write(chunk)
                    total += len(chunk)
        return total


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def timed_run(
    argv: Sequence[str], **kwargs: Any
) -> tuple[float, subprocess.CompletedProcess[bytes]]:
    """Run a command to completion; (seconds, completed process). A failure raises."""
    start = time.perf_counter()
    proc = subprocess.run(list(argv), capture_output=True, **kwargs)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()[-500:]
        raise RuntimeError(f"{' '.join(map(str, argv))} failed ({proc.returncode}): {err}")
    return elapsed, proc


def tree_bytes(root: Path) -> tuple[int, int]:
    """(files, bytes) under `root`."""
    files = size = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            files += 1
            size += os.lstat(os.path.join(dirpath, name)).st_size
    return files, size
