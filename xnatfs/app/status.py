"""`xnatfs status [MOUNTPOINT]`: what every xnatfs mount (or the one named) is doing now.

Mounts are found in `/proc/self/mountinfo` (type `fuse.xnatfs`); each one is asked for its
live counters through the root's `user.xnatfs.stats` extended attribute (JSON), the one channel
a mount reports through. The question runs in a daemon thread with a time limit, so a mount
that does not answer is reported as such instead of hanging the command.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from xnatfs.app.mounts import DEAD_ERRNOS, FSTYPE, read_mounts
from xnatfs.errors import ConfigError

STATS_XATTR = "user.xnatfs.stats"
ASK_TIMEOUT = 5.0  # seconds a mount may take to answer before it is reported as not answering


@dataclass(frozen=True)
class MountStatus:
    """One mount: where, its source (the URL), and its counters or why there are none."""

    mountpoint: str
    source: str
    stats: Mapping[str, Any] | None
    problem: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mountpoint": self.mountpoint, "source": self.source}
        if self.stats is not None:
            out["stats"] = self.stats
        if self.problem is not None:
            out["problem"] = self.problem
        return out


def ask(
    mountpoint: str, timeout: float = ASK_TIMEOUT
) -> tuple[Mapping[str, Any] | None, str | None]:
    """The counters of the mount at `mountpoint`, or None and why not (dead, not answering)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = os.getxattr(mountpoint, STATS_XATTR)
        except OSError as exc:
            box["error"] = exc

    worker = threading.Thread(target=run, name="xnatfs-status", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        return None, f"not answering within {timeout:g} s"
    error = box.get("error")
    if isinstance(error, OSError):
        if error.errno in DEAD_ERRNOS:
            return None, "dead (its process has ended): xnatfs umount --lazy " + mountpoint
        return None, f"cannot ask it: {error.strerror}"
    try:
        stats = json.loads(box["value"])
    except ValueError:
        return None, "its counters are not JSON"
    return (stats, None) if isinstance(stats, dict) else (None, "its counters are not an object")


def collect(mountpoint: str | None = None) -> list[MountStatus]:
    """Every xnatfs mount this process sees, or only the one at `mountpoint`.

    Raises ConfigError when `mountpoint` is given and is not an xnatfs mount.
    """
    entries = [e for e in read_mounts() if e.fstype == FSTYPE]
    if mountpoint is not None:
        target = os.path.abspath(mountpoint)
        entries = [e for e in entries if e.mountpoint == target]
        if not entries:
            raise ConfigError(f"{target} is not an xnatfs mount")
    out = []
    for entry in entries:
        stats, problem = ask(entry.mountpoint)
        out.append(MountStatus(entry.mountpoint, entry.source, stats, problem))
    return out


def human_bytes(n: float) -> str:
    """`512 B`, `1.5 KiB`, `10.0 GiB` (binary units)."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_duration(seconds: float) -> str:
    """`42 s`, `3 min 5 s`, `2 h 3 min`, `4 d 1 h`."""
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def _ago(when: object, now: float) -> str:
    return f"{human_duration(max(0.0, now - when))} ago" if isinstance(when, int | float) else ""


def _server_line(server: Mapping[str, Any], now: float) -> str:
    answers = server.get("answers")
    if answers is None:
        return "not asked anything yet"
    if answers:
        return f"answers (last reply {_ago(server.get('last_answer'), now)})"
    return (
        f"NOT ANSWERING: {server.get('last_failure')} ({_ago(server.get('last_failure_at'), now)})"
    )


def _table(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def format_status(status: MountStatus, now: float | None = None) -> str:
    """A few lines for people: server, uptime, downloads, prefetches, cache, listings, errors."""
    now = time.time() if now is None else now
    s = status.stats
    if s is None:
        return f"{status.mountpoint}\n  {status.problem}"
    server = _table(s.get("server"))
    cache = _table(s.get("cache"))
    head = f"{status.mountpoint}  {server.get('url') or status.source}"
    lines = [f"{head}  (pid {s.get('pid', '?')}, xnatfs {s.get('version', '?')})"]
    if s.get("offline"):
        lines.append("  server:     offline (--offline): nothing is asked of it")
    else:
        lines.append(f"  server:     {_server_line(server, now)}")
    lines.append(f"  uptime:     {human_duration(float(s.get('uptime', 0)))}")
    transfers = s.get("transfers") or []
    lines.append(
        f"  downloads:  {s.get('in_flight', 0)} in flight, {s.get('downloads', 0):,} so far"
    )
    for t in transfers:
        total = t.get("total")
        of = f" of {human_bytes(total)}" if isinstance(total, int) else ""
        done, rate = human_bytes(t.get("done", 0)), human_bytes(t.get("rate", 0))
        lines.append(f"              {done}{of} at {rate}/s  {t.get('uri', '')}")
    lines.append(
        f"  prefetches: {s.get('prefetches_running', 0)} running, {s.get('prefetches', 0):,} so far"
    )
    used, limit = cache.get("bytes", 0), cache.get("limit", 0)
    share = f" ({100 * used / limit:.0f}%)" if limit else ""
    entries = cache.get("entries", 0)
    lines.append(
        f"  cache:      {human_bytes(used)} of {human_bytes(limit)}{share} in "
        f"{entries:,} file{'' if entries == 1 else 's'}; {cache.get('hits', 0):,} hits, "
        f"{cache.get('misses', 0):,} misses"
    )
    stored = s.get("stored_listings")
    on_disk = f", {stored:,} on disk" if isinstance(stored, int) else ""
    stale = s.get("stale_listings_served", 0)
    lines.append(
        f"  listings:   {s.get('listings_cached', 0):,} in memory "
        f"({human_bytes(s.get('listing_bytes', 0))}){on_disk}; "
        f"{s.get('listing_requests', 0):,} requests, {s.get('listings_ahead', 0):,} listed ahead "
        f"of walks, {stale:,} served stale"
    )
    errors = s.get("errors") or []
    if not errors:
        lines.append("  errors:     none")
    for i, e in enumerate(errors[-5:]):
        label = "last errors:" if i == 0 else ""
        when = time.strftime("%H:%M:%S", time.localtime(e.get("time", 0)))
        lines.append(f"  {label:<11} {when} {e.get('level', '')} {e.get('message', '')}")
    return "\n".join(lines)


def run(
    mountpoint: str | None, *, as_json: bool, watch: float | None, out: TextIO | None = None
) -> int:
    """Print the status of every xnatfs mount (or the one at `mountpoint`) once, or every
    `watch` seconds until interrupted. Returns 0 when every mount answered, 1 otherwise (also
    when there is none). Raises ConfigError for a `mountpoint` that is not an xnatfs mount."""
    stream = sys.stdout if out is None else out
    while True:
        statuses = collect(mountpoint)
        if as_json:
            text = json.dumps([st.as_json() for st in statuses], indent=1, sort_keys=True)
        elif statuses:
            text = "\n\n".join(format_status(st) for st in statuses)
        else:
            text = "no xnatfs mounts"
        if watch is not None and stream.isatty():
            stream.write("\x1b[H\x1b[2J")  # home and clear: the view is redrawn in place
        print(text, file=stream, flush=True)
        if watch is None:
            return 0 if statuses and all(st.stats is not None for st in statuses) else 1
        time.sleep(watch)
