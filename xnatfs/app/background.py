"""Background mounts: `xnatfs mount` without `--foreground` returns once the mount answers.

The parent runs the same command line again as a detached child (a session of its own, output
to a log file next to the cache directory) and hands it the write end of a pipe, whose number
is in `$XNATFS_READY_FD`. The child writes one line: `ok` once the mount has answered a request
of its own, or `error: MESSAGE` when it failed before that. The parent reports that outcome
as its own, so mount(8), the fstab helper and scripts see whether the mount worked. A child
that dies without a word closes the pipe, which the parent reads as an empty line.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from xnatfs.app import privacy
from xnatfs.app.logsetup import scrub
from xnatfs.config import MountConfig
from xnatfs.errors import XnatfsError

READY_FD_ENV = "XNATFS_READY_FD"
_OK = "ok"
_ERROR = "error: "


@dataclass(frozen=True)
class Started:
    """A background mount that answers: its process id and the log file it writes."""

    pid: int
    log_path: Path


def log_path(cfg: MountConfig) -> Path:
    """The log file of a background mount of `cfg`: `--log-file`, else `<cache directory>.log`
    beside the cache directory."""
    if cfg.log_file is not None:
        return cfg.log_file
    cache_dir = cfg.effective_cache_dir
    return cache_dir.parent / f"{cache_dir.name}.log"


def is_child(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this process is the child of a background mount (its parent waits for a word)."""
    return READY_FD_ENV in environ


def start(cfg: MountConfig, argv: Sequence[str], *, password: str | None = None) -> Started:
    """Run `python -m xnatfs *argv` (the command line that asked for the mount of `cfg`) as a
    detached child, and wait until it answers or fails. `password` (from `$XNATFS_PASSWORD`)
    reaches the child through a pipe (`privacy.pass_password`), never its environment.

    The log file (`log_path`, mode 0600, appended to) and its directory (mode 0700) are
    created. Raises XnatfsError with the child's own one-line message when the mount failed
    (the message is all the log would hold, so a log file and directories created for this
    attempt are removed again: a mistyped URL leaves nothing behind), or naming the exit status
    and the log file when the child ended without one; OSError when the log file cannot be
    created.
    """
    log = log_path(cfg)
    created = [p for p in (log, *log.parents) if not p.exists()]
    for directory in reversed(created[1:]):  # private, like the cache directories beside it
        directory.mkdir(exist_ok=True, mode=0o700)
    read_fd, write_fd = os.pipe()
    env = dict(os.environ, **{READY_FD_ENV: str(write_fd)})
    inherited = [write_fd]
    if password is not None:
        inherited.append(privacy.pass_password(env, password))
    with os.fdopen(read_fd, "rb") as pipe:
        try:
            with open(log, "ab") as log_file:
                os.chmod(log, 0o600)
                proc = subprocess.Popen(
                    [sys.executable, "-m", "xnatfs", *argv],
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=log_file,
                    pass_fds=tuple(inherited),
                    env=env,
                    start_new_session=True,
                )
        finally:
            # Only the child may hold the write end, or the read below would not end with it.
            for fd in inherited:
                os.close(fd)
        answer = pipe.readline().decode(errors="replace").strip()
    if answer == _OK:
        return Started(pid=proc.pid, log_path=log)
    proc.wait()
    if answer.startswith(_ERROR):
        _remove_created(created)
    message = answer.removeprefix(_ERROR) or (
        f"the mount process exited ({proc.returncode}); see {log}"
    )
    raise XnatfsError(message)


def _remove_created(paths: Sequence[Path]) -> None:
    """Remove the log file and the (still empty) directories made for a failed start."""
    for path in paths:  # the file first, then its directories from the innermost out
        with contextlib.suppress(OSError):
            if path.is_dir():
                path.rmdir()
            else:
                path.unlink()


class Readiness:
    """The child's end of the pipe: tells the waiting parent how the mount went, once.

    In a process that is not a background child (a foreground mount, the demo) both methods
    do nothing. Writes to a parent that has gone away are ignored.
    """

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    @classmethod
    def from_environ(cls, environ: MutableMapping[str, str] = os.environ) -> Readiness:
        """The pipe named by `$XNATFS_READY_FD`, which is removed from `environ` so that no
        process started by the mount takes itself for a background child."""
        value = environ.pop(READY_FD_ENV, None)
        return cls(None if value is None else int(value))

    def ready(self) -> None:
        """The mount answers requests: the parent reports success and exits."""
        self._send(_OK)

    def failed(self, message: str) -> None:
        """The mount failed with the one-line `message`, which the parent shows as its own
        (scrubbed of known secrets, as log lines are)."""
        self._send(_ERROR + scrub(message).replace("\n", " "))

    def _send(self, line: str) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.write(fd, line.encode() + b"\n")
        with contextlib.suppress(OSError):
            os.close(fd)
