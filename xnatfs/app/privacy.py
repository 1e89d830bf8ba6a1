"""Keeping the password where only the mount can use it: no core dumps, nothing in the
environment that `/proc/PID/environ` shows, and a private hand-over to a background child.

A long-lived mount holds the password in memory for as long as it runs (every request carries
it). What can be kept from others is every copy it does not need:

- `make_undumpable`: the process is not dumpable (`PR_SET_DUMPABLE` 0: no core file, no ptrace
  attach by the same user, `/proc/PID/` files owned by root) and its core size limit is 0;
- `take_env_password`: `XNATFS_PASSWORD` is removed from the environment once read, and its
  bytes are overwritten in the environment block the kernel shows as `/proc/PID/environ`
  (removing the variable alone leaves them there);
- `pass_password`: a background mount's child gets the password through an inherited pipe,
  whose number is in `$XNATFS_PASSWORD_FD`, never through its environment or its arguments.

Linux only (prctl, /proc); elsewhere the first two do what they can and say nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import resource
from collections.abc import MutableMapping

log = logging.getLogger(__name__)

PASSWORD_ENV = "XNATFS_PASSWORD"
PASSWORD_FD_ENV = "XNATFS_PASSWORD_FD"
_PR_SET_DUMPABLE = 4
_MAX_PASSWORD = 64 * 1024


def make_undumpable() -> bool:
    """No core dumps of this process, and no ptrace or /proc access by its own user; True when
    the kernel agreed to both."""
    done = True
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError) as exc:
        log.debug("could not set the core size limit to 0: %s", exc)
        done = False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE) failed")
    except (OSError, AttributeError) as exc:
        log.debug("could not make the process undumpable: %s", exc)
        done = False
    return done


def take_env_password(environ: MutableMapping[str, str] | None = None) -> str | None:
    """The password handed to this process, taken out of where others could read it.

    From the pipe named by `$XNATFS_PASSWORD_FD` (a background child: read to its end and
    closed), else from `$XNATFS_PASSWORD`, which is removed from `environ` (os.environ by
    default) and overwritten in this process's initial environment. None when neither is set.
    Raises nothing: a pipe that cannot be read gives None.
    """
    env = os.environ if environ is None else environ
    fd_text = env.pop(PASSWORD_FD_ENV, None)
    password = env.pop(PASSWORD_ENV, None)
    if environ is None:
        _wipe_environ_entry(PASSWORD_ENV)
        _wipe_environ_entry(PASSWORD_FD_ENV)
    if fd_text is not None and fd_text.isdigit():
        password = _read_pipe(int(fd_text))
    return password or None


def pass_password(env: MutableMapping[str, str], password: str) -> int:
    """Prepare `env`, the environment of a child about to be started, to receive `password`
    through a pipe instead of `$XNATFS_PASSWORD`; returns the pipe's read end, which the child
    must inherit (`pass_fds`) and the caller closes once the child is started. The password is
    written at once (it fits in the pipe's buffer)."""
    data = password.encode("utf-8")
    if len(data) > _MAX_PASSWORD:
        raise ValueError("password too long")
    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, data)
    finally:
        os.close(write_fd)
    env.pop(PASSWORD_ENV, None)
    env[PASSWORD_FD_ENV] = str(read_fd)
    return read_fd


def _read_pipe(fd: int) -> str | None:
    chunks = []
    try:
        while chunk := os.read(fd, 4096):
            chunks.append(chunk)
            if sum(map(len, chunks)) > _MAX_PASSWORD:
                return None
    except OSError:
        return None
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        return None


def _wipe_environ_entry(name: str) -> None:
    """Overwrite every `NAME=value` in the environment block this process started with, which is
    what `/proc/PID/environ` shows (its bounds are fields 50 and 51 of `/proc/self/stat`). Call
    it once the variable is out of the C `environ` array (`os.environ.pop` does that), so that
    nothing points to the bytes overwritten."""
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        start, end = int(fields[47]), int(fields[48])
    except (OSError, IndexError, ValueError):
        return
    if not 0 < start < end:
        return
    block = ctypes.string_at(start, end - start)
    prefix = name.encode() + b"="
    offset = 0
    for entry in block.split(b"\0"):
        if entry.startswith(prefix):
            ctypes.memset(start + offset, 0, len(entry))
        offset += len(entry) + 1
