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
import stat
import subprocess
import sys
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from xnatfs.app import privacy
from xnatfs.cache.trust import file_problem, make_trusted_dir
from xnatfs.config import MountConfig
from xnatfs.errors import ConfigError, XnatfsError

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
    created (`open_log`: ConfigError when they are not ours). Raises XnatfsError with the
    child's own one-line message when the mount failed (the message is all the log would hold,
    so a log file and directories created for this attempt are removed again: a mistyped URL
    leaves nothing behind), or naming the exit status and the log file when the child ended
    without one.
    """
    log = log_path(cfg)
    created = [p for p in (log, *log.parents) if not p.exists()]
    log_fd = open_log(log, cfg.effective_cache_dir)
    read_fd, write_fd = os.pipe()
    env = dict(os.environ, **{READY_FD_ENV: str(write_fd)})
    inherited = [write_fd]
    if password is not None:
        inherited.append(privacy.pass_password(env, password))
    with os.fdopen(read_fd, "rb") as pipe:
        try:
            with os.fdopen(log_fd, "ab") as log_file:
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


def open_log(path: Path, cache_dir: Path) -> int:
    """An O_APPEND fd of the log file `path`, created 0600 where missing, in a directory made
    (0700) and checked like those above the cache directory `cache_dir` (`trust`). The file is
    opened without following a symlink and must be ours alone: a log planted by someone else
    (in a shared /tmp, say) is never written to; one of ours is made 0600. Raises ConfigError
    with one line."""
    make_trusted_dir(path.parent, cache_dir)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot write the log file {path}: {exc.strerror}") from None
    st = os.fstat(fd)
    # Ours but readable or writable by others: only the mode is wrong, and we may fix it.
    problem = file_problem(st) if st.st_uid != os.geteuid() or st.st_nlink != 1 else None
    if problem is None and not stat.S_ISREG(st.st_mode):
        problem = "is not a regular file"
    if problem is not None:
        os.close(fd)
        raise ConfigError(
            f"the log file {path} {problem}; remove it, or log elsewhere (--log-file)"
        )
    if stat.S_IMODE(st.st_mode) != 0o600:
        os.fchmod(fd, 0o600)
    return fd


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
        """The mount failed with the one-line `message`, which the parent shows as its own."""
        self._send(_ERROR + message.replace("\n", " "))

    def _send(self, line: str) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.write(fd, line.encode() + b"\n")
        with contextlib.suppress(OSError):
            os.close(fd)
