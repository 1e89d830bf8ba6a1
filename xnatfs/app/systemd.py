"""The two pieces of systemd integration xnatfs needs, without a dependency on libsystemd.

`notify` speaks the sd_notify(3) datagram protocol to `$NOTIFY_SOCKET` (a `Type=notify` unit
waits for `READY=1` before it counts as started, so units ordered after the mount see a live
tree). `under_systemd` tells the logging setup whether stderr ends up in the journal.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Mapping
from typing import TextIO

log = logging.getLogger(__name__)


def _socket_address(value: str) -> str | bytes | None:
    """`$NOTIFY_SOCKET` as an AF_UNIX address; `@name` is an abstract socket (leading NUL).

    Other address families that newer systemd versions may hand out (`vsock:...`) are not
    supported and give None.
    """
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None


def notify(state: str, *, environ: Mapping[str, str] | None = None) -> bool:
    """Send `state` (e.g. "READY=1", "STOPPING=1", "STATUS=...") to the service manager.

    Returns True when the message was sent, False when there is no `$NOTIFY_SOCKET` (not run by
    systemd as a notify service: a no-op) or when sending failed (logged as a warning; a unit
    that never gets READY=1 fails by its start timeout, which is the visible symptom).
    The environment variable is left in place: the process may notify more than once.
    """
    env = os.environ if environ is None else environ
    value = env.get("NOTIFY_SOCKET", "")
    if not value:
        return False
    address = _socket_address(value)
    if address is None:
        log.warning("NOTIFY_SOCKET %r is not a unix socket address; not notifying", value)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("could not notify systemd (%s): %s", state.split("=", 1)[0], exc)
        return False
    return True


def journal_stream_matches(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """True when `stream` is the journal connection systemd set up (`$JOURNAL_STREAM=dev:ino`).

    This is the check systemd.exec(5) recommends: the variable alone is inherited by children
    whose stderr was redirected elsewhere, so the device and inode must match the stream's fd.
    """
    env = os.environ if environ is None else environ
    value = env.get("JOURNAL_STREAM", "")
    dev, sep, ino = value.partition(":")
    if not sep:
        return False
    try:
        st = os.fstat(stream.fileno())
        return st.st_dev == int(dev) and st.st_ino == int(ino)
    except (OSError, ValueError):
        return False


def under_systemd(
    *, environ: Mapping[str, str] | None = None, stream: TextIO | None = None
) -> bool:
    """True when this process was started by systemd (as a service, or a mount unit's helper).

    Either stderr is systemd's journal stream, or `$INVOCATION_ID` is set and stderr is not a
    terminal. The terminal check matters because some desktop sessions leak INVOCATION_ID into
    interactive shells, and a person at a terminal wants timestamps.
    """
    env = os.environ if environ is None else environ
    err = sys.stderr if stream is None else stream
    if journal_stream_matches(err, env):
        return True
    if not env.get("INVOCATION_ID"):
        return False
    try:
        return not err.isatty()
    except (AttributeError, ValueError):
        return True
