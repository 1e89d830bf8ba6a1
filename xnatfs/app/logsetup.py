"""Logging to stderr in the form that suits where stderr goes.

When stderr is the journal (a systemd service), journald adds timestamps itself and reads a
`<N>` syslog priority prefix on each line (sd-daemon(3)), so each line is `<N>logger: message`.
Elsewhere (a terminal, a log file) each line is
`2024-05-01 12:00:00 WARNING xnatfs.fs.filesystem: message`.

Defence in depth for credentials: every formatted line is scrubbed of known secrets (the
password from `$XNATFS_PASSWORD`, and any value passed to `add_secret`) before it is written.
Code must still never log a credential; the scrubber only limits the damage of a mistake.
"""

from __future__ import annotations

import base64
import collections
import logging
import os
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO
from urllib.parse import quote

from xnatfs.app.systemd import journal_stream_matches
from xnatfs.errors import ConfigError

# A password shorter than this is not scrubbed: masking every "ab" in a log would make the log
# useless while protecting next to nothing.
MIN_SECRET_LENGTH = 4
MASK = "***"

_SYSLOG_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def syslog_priority(levelno: int) -> int:
    """The syslog priority for a logging level (between the named levels: the next more severe)."""
    for level in sorted(_SYSLOG_PRIORITY, reverse=True):
        if levelno >= level:
            return _SYSLOG_PRIORITY[level]
    return 7


def add_secret(secret: str, *, user: str | None = None) -> None:
    """Scrub `secret` (and its URL-quoted form; with `user`, the HTTP Basic token) from logs."""
    if len(secret) < MIN_SECRET_LENGTH:
        return
    forms = {secret, quote(secret, safe="")}
    if user is not None:
        forms.add(base64.b64encode(f"{user}:{secret}".encode()).decode())
    with _secrets_lock:
        _secrets.update(forms)


def scrub(text: str) -> str:
    """`text` with every registered secret replaced by `***`."""
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class JournalFormatter(logging.Formatter):
    """`<N>logger: message`, with the priority prefix on every line of a multi-line record."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        text = scrub(super().format(record))
        return "\n".join(prefix + line for line in text.split("\n"))


class TerminalFormatter(logging.Formatter):
    """`time level logger: message` for people reading a terminal or a plain log file."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


def open_log(path: Path) -> TextIO:
    """`path` opened for appending (created 0600, line-buffered), for `--log-file`. Raises
    ConfigError naming the file when it cannot be opened."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot write log file {path}: {exc.strerror or exc}") from None
    return os.fdopen(fd, "a", buffering=1, encoding="utf-8", errors="replace")


class RecentErrors(logging.Handler):
    """Keeps the last `size` warnings and errors of the mount for its stats xattr (what
    `xnatfs status` shows as the last errors), scrubbed like every log line."""

    def __init__(self, size: int = 10) -> None:
        super().__init__(logging.WARNING)
        self._records: collections.deque[dict[str, object]] = collections.deque(maxlen=size)

    def emit(self, record: logging.LogRecord) -> None:
        self._records.append(
            {
                "time": record.created,
                "level": record.levelname,
                "message": scrub(record.getMessage()).splitlines()[0][:500],
            }
        )

    def report(self) -> dict[str, object]:
        """`{"errors": [{"time": epoch, "level": "WARNING", "message": "..."}, ...]}`, oldest
        first."""
        return {"errors": list(self._records)}


class _XnatfsHandler(logging.StreamHandler[TextIO]):
    """Marks the handler `setup_logging` installed, so calling it again replaces it."""


def setup_logging(
    *,
    debug: bool,
    stream: TextIO | None = None,
    journal: bool | None = None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Send log records to stderr (or `stream`), formatted for the journal or for a terminal.

    `journal` defaults to whether `stream` is systemd's journal connection (`$JOURNAL_STREAM`
    matches it): a service's stderr, but not the log file a background mount writes to, even
    when that runs under a mount unit. The "xnatfs" loggers log INFO and above, or DEBUG
    with `debug` (which includes the per-request "xnatfs.http" lines). Other libraries log
    WARNING and above; urllib3 stays at WARNING even with `debug` (its own debug lines repeat
    ours and print every connection). `$XNATFS_PASSWORD` is registered with `add_secret`.
    Calling this again replaces the handler installed before.
    """
    env = os.environ if environ is None else environ
    out = sys.stderr if stream is None else stream
    if journal is None:
        journal = journal_stream_matches(out, env)
    password = env.get("XNATFS_PASSWORD")
    if password:
        add_secret(password, user=env.get("XNATFS_USER"))

    handler = _XnatfsHandler(out)
    handler.setFormatter(JournalFormatter() if journal else TerminalFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _XnatfsHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("xnatfs").setLevel(logging.DEBUG if debug else logging.INFO)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
