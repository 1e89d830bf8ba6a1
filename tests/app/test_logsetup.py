"""Log format for the journal vs a terminal, levels, and scrubbing of credentials."""

from __future__ import annotations

import base64
import io
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from xnatfs.app import logsetup
from xnatfs.app.logsetup import (
    MASK,
    RecentErrors,
    add_secret,
    scrub,
    setup_logging,
    syslog_priority,
)

PASSWORD = "s3cret-Pa55/word"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """setup_logging changes global logger state; put it back after each test."""
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    levels = {n: logging.getLogger(n).level for n in ("xnatfs", "urllib3")}
    logsetup._secrets.clear()
    yield
    root.handlers[:] = saved[1]
    root.setLevel(saved[0])
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    logsetup._secrets.clear()


def test_journal_format_has_priority_prefix_and_no_timestamp() -> None:
    out = io.StringIO()
    setup_logging(debug=True, stream=out, journal=True, environ={})
    logging.getLogger("xnatfs.fs.filesystem").error("listing failed")
    logging.getLogger("xnatfs.http").debug("GET /data/projects 200")
    logging.getLogger("xnatfs.app.mount").info("mounted")
    logging.getLogger("xnatfs.fs.filesystem").warning("slow")
    assert out.getvalue().splitlines() == [
        "<3>xnatfs.fs.filesystem: listing failed",
        "<7>xnatfs.http: GET /data/projects 200",
        "<6>xnatfs.app.mount: mounted",
        "<4>xnatfs.fs.filesystem: slow",
    ]


def test_journal_prefixes_every_line_of_a_traceback() -> None:
    out = io.StringIO()
    setup_logging(debug=False, stream=out, journal=True, environ={})
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("xnatfs.fs.filesystem").exception("handler crashed")
    lines = out.getvalue().splitlines()
    assert len(lines) > 3
    assert all(line.startswith("<3>") for line in lines)
    assert lines[-1] == "<3>RuntimeError: boom"


def test_terminal_format_has_time_level_and_name() -> None:
    out = io.StringIO()
    setup_logging(debug=False, stream=out, journal=False, environ={})
    logging.getLogger("xnatfs.fs.filesystem").warning("slow listing")
    line = out.getvalue().rstrip("\n")
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d WARNING xnatfs\.fs\.filesystem: slow listing", line
    )


def test_format_follows_journal_stream(tmp_path: Path) -> None:
    with open(tmp_path / "journal", "w") as journal, open(tmp_path / "other", "w") as other:
        st = os.fstat(journal.fileno())
        env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}", "INVOCATION_ID": "x"}
        setup_logging(debug=False, stream=journal, environ=env)
        logging.getLogger("xnatfs").info("to the journal")
        # A background mount started by a mount unit: INVOCATION_ID is set, but its stderr is
        # a log file, which needs timestamps.
        setup_logging(debug=False, stream=other, environ=env)
        logging.getLogger("xnatfs").info("to a file")
    assert (tmp_path / "journal").read_text() == "<6>xnatfs: to the journal\n"
    assert re.fullmatch(r"\d{4}-.* INFO xnatfs: to a file\n", (tmp_path / "other").read_text())


def test_levels_without_and_with_debug() -> None:
    out = io.StringIO()
    setup_logging(debug=False, stream=out, journal=True, environ={})
    logging.getLogger("xnatfs.http").debug("GET hidden")
    logging.getLogger("xnatfs.fs.filesystem").info("info shown")
    logging.getLogger("somelib").info("library info hidden")
    logging.getLogger("somelib").warning("library warning shown")
    setup_logging(debug=True, stream=out, journal=True, environ={})
    logging.getLogger("xnatfs.http").debug("GET shown")
    logging.getLogger("urllib3.connectionpool").debug("Starting new HTTP connection")
    assert out.getvalue().splitlines() == [
        "<6>xnatfs.fs.filesystem: info shown",
        "<4>somelib: library warning shown",
        "<7>xnatfs.http: GET shown",
    ]


def test_setup_twice_installs_one_handler() -> None:
    out = io.StringIO()
    setup_logging(debug=False, stream=out, journal=True, environ={})
    setup_logging(debug=False, stream=out, journal=True, environ={})
    logging.getLogger("xnatfs").warning("once")
    assert out.getvalue() == "<4>xnatfs: once\n"


def test_syslog_priorities() -> None:
    assert [syslog_priority(n) for n in (50, 40, 30, 20, 10, 5, 35)] == [2, 3, 4, 6, 7, 7, 4]


def test_password_from_environment_never_reaches_the_debug_log() -> None:
    """Even if some code logged it by mistake (a URL, a header, an exception), it is masked."""
    out = io.StringIO()
    env = {"XNATFS_PASSWORD": PASSWORD, "XNATFS_USER": "alice"}
    setup_logging(debug=True, stream=out, journal=False, environ=env)
    basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    quoted = PASSWORD.replace("/", "%2F")
    log = logging.getLogger("xnatfs.http")
    log.debug("login with %s", PASSWORD)
    log.debug("GET https://alice:%s@xnat.example.org/data", quoted)
    log.debug("Authorization: Basic %s", basic)
    try:
        raise ValueError(f"bad password {PASSWORD!r}")
    except ValueError:
        log.exception("request failed")
    text = out.getvalue()
    assert PASSWORD not in text
    assert quoted not in text
    assert basic not in text
    assert text.count(MASK) == 4
    assert "login with ***" in text


def test_short_secrets_are_not_scrubbed() -> None:
    add_secret("ab")
    assert scrub("tab cab") == "tab cab"
    add_secret("abcd")
    assert scrub("xabcdx") == f"x{MASK}x"


def test_no_password_no_scrubbing() -> None:
    out = io.StringIO()
    setup_logging(debug=True, stream=out, journal=True, environ={})
    logging.getLogger("xnatfs").debug("nothing to hide: %s", PASSWORD)
    assert PASSWORD in out.getvalue()


def test_recent_errors_keep_the_last_warnings_scrubbed() -> None:
    add_secret("hunter2-secret")
    recent = RecentErrors(size=2)
    logger = logging.getLogger("xnatfs.test.recent")
    logger.addHandler(recent)
    try:
        logger.info("routine")
        logger.warning("first")
        logger.error("refused hunter2-secret\nsecond line")
        logger.warning("third")
    finally:
        logger.removeHandler(recent)
    errors = recent.report()["errors"]
    assert isinstance(errors, list)
    assert [(e["level"], e["message"]) for e in errors] == [
        ("ERROR", "refused ***"),
        ("WARNING", "third"),
    ]
