"""The password stays secret: not in a core dump of the mount, not in `/proc/PID/environ` (in the
foreground or the background), and not in any message, whichever password source it came from
and whatever went wrong.

Every message check looks for the password itself, its URL-quoted form and the Basic token
made of it, in everything the command printed and in the log it wrote.
"""

from __future__ import annotations

import base64
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.support.hostile import HostileXnat
from tests.support.mounting import Mount, fuse_problem, in_mount_table, tmp_mounted, unmount
from tests.support.xnat_stub import Reply, Seen

SECRET = "Xq7-s3cret-Zw9"
USER = "alice"


def forms(secret: str = SECRET) -> list[str]:
    """What a leak of `secret` may look like."""
    token = base64.b64encode(f"{USER}:{secret}".encode()).decode()
    return [secret, quote(secret, safe=""), token]


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for form in forms():
            assert form not in text, f"the password leaked: {text[-2000:]}"


def xnatfs(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("XNATFS_")}
    return subprocess.run(
        [sys.executable, "-m", "xnatfs", *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def xnat() -> Iterator[HostileXnat]:
    with HostileXnat(user=USER, password=SECRET) as server:
        server.files([server.row("a.dcm", b"a" * 100)])
        server.serve("a.dcm", b"a" * 100)
        yield server


def private_file(path: Path, text: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(text)
    path.chmod(mode)
    return path


# --- the process that holds the password ----------------------------------------------------------


@pytest.mark.fuse
def test_the_mount_cannot_dump_core_and_shows_no_password_in_its_environment(
    xnat: HostileXnat, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A system where core files are on: a limit as high as allowed, written where we look.
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    if hard == 0:
        pytest.skip("core files are off for good here")
    pattern = Path("/proc/sys/kernel/core_pattern").read_text().strip()
    monkeypatch.chdir(tmp_path)
    resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))
    try:
        with tmp_mounted(xnat.url, tmp_path, user=USER, password=SECRET) as m:
            assert isinstance(m, Mount)
            assert (m.path / xnat.RESOURCE / "a.dcm").read_bytes() == b"a" * 100
            environ = Path(f"/proc/{m.proc.pid}/environ").read_bytes()
            assert b"XNATFS_USER=" + USER.encode() in environ  # the right process
            assert SECRET.encode() not in environ and b"XNATFS_PASSWORD" not in environ
            limits = Path(f"/proc/{m.proc.pid}/limits").read_text()
            core_line = next(line for line in limits.splitlines() if "core file" in line)
            assert core_line.split()[4:6] == ["0", "0"]
            # A crash leaves no core file behind (a core would hold the password).
            m.proc.send_signal(signal.SIGSEGV)
            m.proc.wait(30)
            assert m.proc.returncode == -signal.SIGSEGV
    finally:
        resource.setrlimit(resource.RLIMIT_CORE, (soft, hard))
    if "|" in pattern or "/" in pattern:
        pytest.skip(f"core files are not written to the working directory here ({pattern})")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("core")] == []


@pytest.mark.fuse
def test_a_background_mount_gets_the_password_through_a_pipe(
    xnat: HostileXnat, tmp_path: Path
) -> None:
    if fuse_problem() is not None:
        pytest.skip(f"real mount impossible: {fuse_problem()}")
    mnt, cache = tmp_path / "mnt", tmp_path / "cache"
    mnt.mkdir()
    env = {"XNATFS_USER": USER, "XNATFS_PASSWORD": SECRET}
    started = xnatfs("mount", xnat.url, str(mnt), "--cache-dir", str(cache), env=env)
    try:
        assert started.returncode == 0, started.stderr
        pid = int(started.stdout.split("(pid ")[1].split(",")[0])
        assert (mnt / xnat.RESOURCE / "a.dcm").read_bytes() == b"a" * 100
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        assert SECRET.encode() not in environ and b"XNATFS_PASSWORD" not in environ
    finally:
        xnatfs("umount", str(mnt))
        if in_mount_table(mnt):
            unmount(mnt)
    log = (tmp_path / "cache.log").read_text()
    assert "mounted" in log
    assert_no_secret(started.stdout, started.stderr, log)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)


# --- messages -------------------------------------------------------------------------------------


def echoing_refusal(seen: Seen) -> Reply:
    """A 403 whose message repeats what the client sent (as some proxies' error pages do)."""
    sent = seen.headers.get("authorization", "")
    shown = base64.b64decode(sent[6:]).decode() if sent.startswith("Basic ") else ""
    body = f"<html><h3>refused {shown} {sent} {quote(SECRET, safe='')}</h3></html>".encode()
    return Reply(403, body, {"Content-Type": "text/html"})


def test_no_message_ever_holds_the_password(xnat: HostileXnat, tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    url = xnat.url
    mount = ("mount", url, str(mnt), "--foreground", "--cache-dir", str(tmp_path / "c"))
    user = {"XNATFS_USER": USER}
    bad = f"{SECRET}-but-wrong"
    runs: list[subprocess.CompletedProcess[str]] = []
    # A password file others can read, one that is not text, one that holds a wrong password.
    loose = private_file(tmp_path / "loose", f"{SECRET}\n".encode(), 0o644)
    runs.append(xnatfs(*mount, "--password-file", str(loose), env=user))
    binary = private_file(tmp_path / "binary", SECRET.encode() + b"\xff\xfe\n")
    runs.append(xnatfs(*mount, "--password-file", str(binary), env=user))
    wrong = private_file(tmp_path / "wrong", f"{bad}\n".encode())
    runs.append(xnatfs(*mount, "--password-file", str(wrong), env=user))
    # A netrc file the parser chokes on right after the password.
    netrc = private_file(
        tmp_path / "netrc", f"machine 127.0.0.1 login {USER} password {SECRET} {SECRET}x\n".encode()
    )
    runs.append(xnatfs(*mount, "--netrc", str(netrc)))
    line = f"machine 127.0.0.1 login {USER} password {SECRET}\xff"
    binary_netrc = private_file(tmp_path / "netrc2", line.encode("latin-1"))
    runs.append(xnatfs(*mount, "--netrc", str(binary_netrc)))
    # The environment variable, and a server that echoes the credentials it was sent.
    xnat.route("/data/projects", echoing_refusal)
    runs.append(xnatfs(*mount, env={**user, "XNATFS_PASSWORD": SECRET}))
    # Passwords typed where they do not belong.
    for typed in (
        ("--password", SECRET),
        ("--passw", SECRET),
        ("--password-f", SECRET),
        (f"--password={SECRET}",),
        (f"--debug={SECRET}",),
        ("-o", f"password={SECRET}"),
        ("--user", USER, SECRET),
    ):
        runs.append(xnatfs(*mount, *typed))
    for run in runs:
        assert run.returncode != 0, run.args
        assert run.stderr.startswith(("xnatfs", "usage")), run.stderr
        assert_no_secret(run.stdout, run.stderr)
    # The server was asked (the credentials reached it) and refused: still nothing shown.
    assert any(s.basic == (USER, SECRET) for s in xnat.seen)
    assert "refused" in runs[5].stderr
    assert "rejected the credentials" in runs[2].stderr
    assert "is not UTF-8 text" in runs[4].stderr


def test_a_failed_background_mount_shows_no_password(xnat: HostileXnat, tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    xnat.route("/data/projects", echoing_refusal)
    run = xnatfs(
        "mount",
        xnat.url,
        str(mnt),
        "--cache-dir",
        str(tmp_path / "cache"),
        env={"XNATFS_USER": USER, "XNATFS_PASSWORD": SECRET},
    )
    assert run.returncode != 0 and "access denied" in run.stderr
    assert not in_mount_table(mnt)
    log = tmp_path / "cache.log"  # removed again after a failed start, when it was made for it
    assert_no_secret(run.stdout, run.stderr, log.read_text() if log.exists() else "")
