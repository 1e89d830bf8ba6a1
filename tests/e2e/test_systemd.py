"""End to end, as systemd and mount(8) run xnatfs: against the demo XNAT, with real mounts.

- `mount -t fuse.xnatfs` goes through /sbin/mount.fuse.xnatfs and returns with the mount live;
  a mount left dead by a killed process is cleared by the next mount;
- `xnatfs mount --foreground` sends READY=1 to $NOTIFY_SOCKET only once the mount answers, and
  STOPPING=1 on SIGTERM, after which no mount is left and the exit status is 0;
- SIGHUP drops cached listings, so a subject added on the server shows up before the TTL ends;
- a --debug log never contains the password given through the environment;
- the service unit's own command line (config file, systemd credential, journal on stderr).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.mounting import unmount, wait_for_mount
from xnatfs.app.fstab import PROG
from xnatfs.app.mounts import parse_mountinfo, read_mounts

pytestmark = [
    pytest.mark.fuse,
    pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="needs /dev/fuse"),
]

SECRET = "Xn4tfs-e2e-Secret!"
WAIT = 30.0  # upper bound for conditions polled below; never an expected duration


def in_mount_table(path: Path) -> bool:
    entries = parse_mountinfo(Path("/proc/self/mountinfo").read_text())
    return any(e.mountpoint == os.fspath(path) for e in entries)


def poll(condition: Any, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def server() -> Iterator[Any]:
    from xnatfs.demo import DEMO_PASSWORD, DEMO_USER, DemoServer, build_demo_site

    srv = DemoServer(build_demo_site(), users={DEMO_USER: DEMO_PASSWORD, "alice": SECRET})
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def mnt(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "mnt"
    path.mkdir()
    try:
        yield path
    finally:
        unmount(path)


def env_for(user: str, password: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XNATFS_", "NOTIFY_"))}
    env.update(XNATFS_USER=user, XNATFS_PASSWORD=password, **extra)
    return env


def demo_env(**extra: str) -> dict[str, str]:
    from xnatfs.demo import DEMO_PASSWORD, DEMO_USER

    return env_for(DEMO_USER, DEMO_PASSWORD, **extra)


@contextlib.contextmanager
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"xnatfs-e2e-{uuid.uuid4().hex}"
    sock.bind(b"\0" + name.encode())
    sock.settimeout(WAIT)
    try:
        yield sock, "@" + name
    finally:
        sock.close()


def wait_notification(
    sock: socket.socket, proc: subprocess.Popen[bytes], log: Path, timeout: float = WAIT
) -> str:
    """The next sd_notify message; fails at once, with the log, if xnatfs exits first."""
    sock.settimeout(0.1)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                return sock.recv(4096).decode()
            except TimeoutError:
                if proc.poll() is not None:
                    raise AssertionError(
                        f"xnatfs exited ({proc.returncode}) without notifying:\n{log.read_text()}"
                    ) from None
        raise AssertionError(f"no notification within {timeout} s:\n{log.read_text()}")
    finally:
        sock.settimeout(WAIT)


def foreground(
    url: str, mnt: Path, tmp_path: Path, env: dict[str, str], *options: str
) -> subprocess.Popen[bytes]:
    log = open(tmp_path / "xnatfs.log", "wb")  # noqa: SIM115 - closed by the caller's proc
    argv = [sys.executable, "-m", "xnatfs", "mount", url, os.fspath(mnt), "--foreground"]
    argv += ["--cache-dir", os.fspath(tmp_path / "cache"), *options]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
    log.close()
    return proc


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout=WAIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=WAIT)
        raise


# --- Type=notify -----------------------------------------------------------------------------


def test_ready_only_once_the_mount_answers_and_sigterm_unmounts(
    server: Any, mnt: Path, tmp_path: Path
) -> None:
    server.faults.latency = 0.2  # a slow login: READY=1 sent early would be caught below
    with notify_socket() as (sock, address):
        proc = foreground(server.url, mnt, tmp_path, demo_env(NOTIFY_SOCKET=address))
        try:
            message = wait_notification(sock, proc, tmp_path / "xnatfs.log")
            assert message == "READY=1"
            # At the moment READY=1 arrives the mount must already be there and answer.
            assert in_mount_table(mnt)
            assert "TEST" in os.listdir(mnt)
            server.faults.latency = 0.0
            assert stop(proc, signal.SIGTERM) == 0, (tmp_path / "xnatfs.log").read_text()
            assert sock.recv(4096) == b"STOPPING=1"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=WAIT)
    assert not in_mount_table(mnt)
    assert os.listdir(mnt) == []


def test_sigint_also_unmounts_cleanly(server: Any, mnt: Path, tmp_path: Path) -> None:
    proc = foreground(server.url, mnt, tmp_path, demo_env())
    try:
        wait_for_mount(proc, mnt)
        assert stop(proc, signal.SIGINT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=WAIT)
    assert not in_mount_table(mnt)


def test_no_ready_when_the_mount_fails(server: Any, mnt: Path, tmp_path: Path) -> None:
    with notify_socket() as (sock, address):
        env = env_for("demo", "wrong-password", NOTIFY_SOCKET=address)
        proc = foreground(server.url, mnt, tmp_path, env)
        code = proc.wait(timeout=WAIT)
        assert code != 0
        sock.settimeout(0.0)
        messages = []
        with contextlib.suppress(BlockingIOError):
            while True:
                messages.append(sock.recv(4096))
        assert b"READY=1" not in messages
    assert not in_mount_table(mnt)


# --- SIGHUP ----------------------------------------------------------------------------------


def test_sighup_shows_a_new_subject_before_the_ttl(server: Any, mnt: Path, tmp_path: Path) -> None:
    proc = foreground(server.url, mnt, tmp_path, demo_env(), "--metadata-ttl", "3600")
    try:
        wait_for_mount(proc, mnt)
        project = mnt / "TEST"
        before = set(os.listdir(project))
        assert before
        server.site.add_subject("TEST", "ADDED_LATER")
        # Cached for an hour: the new subject is not visible yet...
        assert "ADDED_LATER" not in os.listdir(project)
        proc.send_signal(signal.SIGHUP)
        # ...until SIGHUP drops the listings.
        poll(lambda: "ADDED_LATER" in os.listdir(project), "the new subject after SIGHUP")
        assert before < set(os.listdir(project))
        assert proc.poll() is None, "SIGHUP must not stop the mount"
        assert stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=WAIT)


# --- credentials in logs ---------------------------------------------------------------------


def test_debug_log_never_contains_the_password(server: Any, mnt: Path, tmp_path: Path) -> None:
    proc = foreground(server.url, mnt, tmp_path, env_for("alice", SECRET), "--debug")
    try:
        wait_for_mount(proc, mnt)
        for root, _dirs, files in os.walk(mnt / "TEST"):
            for name in files[:2]:
                with open(os.path.join(root, name), "rb") as f:
                    f.read(4096)
        assert stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=WAIT)
    log = (tmp_path / "xnatfs.log").read_text(errors="replace")
    assert "xnatfs.http" in log, "a --debug log shows the requests"
    assert SECRET not in log
    assert SECRET.replace("!", "%21") not in log
    for path in (tmp_path / "cache").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


# --- mount(8) --------------------------------------------------------------------------------


@pytest.fixture
def helper_installed() -> Iterator[Path]:
    """/sbin/mount.fuse.xnatfs for the duration of the test (only when it is not there yet)."""
    link = Path("/sbin") / PROG
    script = Path(sys.executable).parent / PROG
    if shutil.which("mount") is None or not script.exists():
        pytest.skip("needs mount(8) and the installed mount.fuse.xnatfs script")
    if link.exists() or link.is_symlink():
        if link.resolve() != script.resolve():
            pytest.skip(f"{link} belongs to another installation")
        yield link
        return
    if os.geteuid() != 0:
        pytest.skip("installing the helper into /sbin needs root")
    from xnatfs.app.fstab import install_helper

    install_helper(link.parent)
    try:
        yield link
    finally:
        link.unlink()


def mount8(url: str, mnt: Path, tmp_path: Path, options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["mount", "-t", "fuse.xnatfs", "-o", options, url, os.fspath(mnt)],
        capture_output=True,
        text=True,
        env=demo_env(),
        timeout=WAIT * 2,
        check=False,
    )


def daemon_pids(mnt: Path) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if b"xnatfs" in argv and os.fsencode(mnt) in argv:
                pids.append(int(entry.name))
    return pids


def test_mount_t_fuse_xnatfs_returns_with_the_mount_live(
    helper_installed: Path, server: Any, mnt: Path, tmp_path: Path
) -> None:
    options = f"ro,_netdev,nofail,cache_dir={tmp_path / 'cache'},metadata_ttl=30"
    proc = mount8(server.url, mnt, tmp_path, options)
    assert proc.returncode == 0, proc.stderr
    try:
        # mount(8) has returned: the tree must be there now, without waiting.
        assert in_mount_table(mnt)
        assert "TEST" in os.listdir(mnt)
        (entry,) = [
            e
            for e in parse_mountinfo(Path("/proc/self/mountinfo").read_text())
            if e.mountpoint == os.fspath(mnt)
        ]
        assert entry.fstype == "fuse.xnatfs"
        pids = daemon_pids(mnt)
        assert pids
    finally:
        subprocess.run(["umount", os.fspath(mnt)], capture_output=True, timeout=WAIT, check=False)
    assert not in_mount_table(mnt)
    poll(lambda: not daemon_pids(mnt), "the daemon to exit after umount")


@pytest.mark.parametrize("options", ["defaults", "rw", "ro"])
def test_mount_t_works_the_usual_way_with_and_without_ro(
    helper_installed: Path, server: Any, mnt: Path, tmp_path: Path, options: str
) -> None:
    """mount(8) passes `rw` unless `ro` is given, so an fstab line written the usual way
    (`defaults`) reaches the helper as `rw`: it mounts read-only and says so once."""
    proc = mount8(server.url, mnt, tmp_path, f"{options},cache_dir={tmp_path / 'cache'}")
    assert proc.returncode == 0, proc.stderr
    try:
        assert "TEST" in os.listdir(mnt)
        (entry,) = [e for e in read_mounts() if e.mountpoint == os.fspath(mnt)]
        assert entry.fstype == "fuse.xnatfs"
        assert os.statvfs(mnt).f_flag & os.ST_RDONLY
        with pytest.raises(OSError) as refused:
            (mnt / "TEST" / "new").write_bytes(b"x")
        assert refused.value.errno == errno.EROFS
        said = proc.stderr.count("read-only")
        assert said == (0 if options == "ro" else 1), proc.stderr
    finally:
        subprocess.run(["umount", os.fspath(mnt)], capture_output=True, timeout=WAIT, check=False)
    assert not in_mount_table(mnt)


def test_mount_t_refuses_unknown_options(
    helper_installed: Path, server: Any, mnt: Path, tmp_path: Path
) -> None:
    unknown = mount8(server.url, mnt, tmp_path, "ro,no_such_option=1")
    assert unknown.returncode != 0
    assert "no_such_option" in unknown.stderr
    assert not in_mount_table(mnt)


def test_a_dead_mount_is_cleared_by_the_next_mount(
    helper_installed: Path, server: Any, mnt: Path, tmp_path: Path
) -> None:
    options = f"ro,cache_dir={tmp_path / 'cache'}"
    assert mount8(server.url, mnt, tmp_path, options).returncode == 0
    for pid in daemon_pids(mnt):
        os.kill(pid, signal.SIGKILL)
    poll(lambda: not daemon_pids(mnt), "the killed daemon to go")
    with pytest.raises(OSError) as dead:
        os.listdir(mnt)
    # ENOTCONN ("Transport endpoint is not connected"), or ECONNABORTED when the kernel saw the
    # connection aborted: both mean a dead mount.
    assert dead.value.errno in (errno.ENOTCONN, errno.ECONNABORTED)
    again = mount8(server.url, mnt, tmp_path, options)
    try:
        assert again.returncode == 0, again.stderr
        assert "TEST" in os.listdir(mnt)
    finally:
        subprocess.run(["umount", os.fspath(mnt)], capture_output=True, timeout=WAIT, check=False)


# --- the service's own command line ----------------------------------------------------------


def test_service_command_line_with_credential_and_journal(
    server: Any, mnt: Path, tmp_path: Path
) -> None:
    """What xnatfs@NAME.service runs: config file, credential directory, journal on stderr."""
    from tests.app.test_systemd_units import SYSTEM_UNIT, settings

    (exec_start,) = settings(SYSTEM_UNIT)["ExecStart"]
    etc = tmp_path / "etc"
    etc.mkdir()
    argv = exec_start.replace("/etc/xnatfs", os.fspath(etc)).replace("%i", "site").split()
    assert argv[0] == "/usr/local/bin/xnatfs"
    argv = [sys.executable, "-m", "xnatfs", *argv[1:]]
    (etc / "site.toml").write_text(
        f'url = "{server.url}"\n'
        f'mountpoint = "{mnt}"\n'
        'user = "alice"\n'
        f'cache_dir = "{tmp_path / "cache"}"\n'
        "metadata_ttl = 30\n"
    )
    creds = tmp_path / "credentials"
    creds.mkdir(mode=0o700)
    (creds / "xnatfs-password").write_text(SECRET + "\n")
    log_path = tmp_path / "journal"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XNATFS_", "NOTIFY_"))}
    env.pop("HOME", None)  # system services have none
    with notify_socket() as (sock, address), open(log_path, "wb") as log:
        st = os.fstat(log.fileno())
        env.update(
            NOTIFY_SOCKET=address,
            CREDENTIALS_DIRECTORY=os.fspath(creds),
            JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}",
            INVOCATION_ID=uuid.uuid4().hex,
        )
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        try:
            assert wait_notification(sock, proc, log_path) == "READY=1"
            assert "TEST" in os.listdir(mnt)
            proc.send_signal(signal.SIGHUP)  # ExecReload=
            assert "TEST" in os.listdir(mnt)
            assert stop(proc) == 0
            assert sock.recv(4096) == b"STOPPING=1"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=WAIT)
    assert not in_mount_table(mnt)
    lines = log_path.read_text().splitlines()
    assert lines, "xnatfs logs at least its mount and unmount"
    # journald form: a priority prefix, no timestamp of our own.
    for line in lines:
        assert re.match(r"<[0-7]>\S+: ", line), line
        assert not re.search(r"\d\d:\d\d:\d\d", line.split(": ", 1)[0]), line
    assert SECRET not in log_path.read_text()


def test_restart_after_a_crash_clears_the_dead_mount(
    server: Any, mnt: Path, tmp_path: Path
) -> None:
    """Restart=on-failure after SIGKILL: the unit cannot know the mount point, so xnatfs itself
    must clear the dead mount it finds there before mounting again."""
    first = foreground(server.url, mnt, tmp_path, demo_env())
    try:
        wait_for_mount(first, mnt)
        first.kill()
        first.wait(timeout=WAIT)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(timeout=WAIT)
    with pytest.raises(OSError) as dead:
        os.listdir(mnt)
    assert dead.value.errno in (errno.ENOTCONN, errno.ECONNABORTED)
    with notify_socket() as (sock, address):
        second = foreground(server.url, mnt, tmp_path, demo_env(NOTIFY_SOCKET=address))
        try:
            assert wait_notification(sock, second, tmp_path / "xnatfs.log") == "READY=1"
            assert "TEST" in os.listdir(mnt)
            assert stop(second) == 0
        finally:
            if second.poll() is None:
                second.kill()
                second.wait(timeout=WAIT)
    assert not in_mount_table(mnt)


@contextlib.contextmanager
def autofs_trigger(mnt: Path) -> Iterator[None]:
    """An automount trigger at `mnt`, made as systemd makes one for `x-systemd.automount` (a
    direct autofs mount whose daemon is this process group: its members never trigger it)."""
    read_end, write_end = os.pipe()
    try:
        proc = subprocess.run(
            [
                *("mount", "-t", "autofs", "-o"),
                f"fd={write_end},pgrp={os.getpgrp()},minproto=5,maxproto=5,direct",
                *("systemd-1", os.fspath(mnt)),
            ],
            capture_output=True,
            text=True,
            pass_fds=(write_end,),
            timeout=WAIT,
            check=False,
        )
        if proc.returncode != 0:
            pytest.skip(f"cannot make an autofs mount here: {proc.stderr.strip()}")
        try:
            yield
        finally:
            subprocess.run(["umount", os.fspath(mnt)], capture_output=True, timeout=WAIT)
    finally:
        os.close(read_end)
        os.close(write_end)


def test_mounting_over_an_automount_trigger(server: Any, mnt: Path, tmp_path: Path) -> None:
    with autofs_trigger(mnt):
        top = [e for e in read_mounts() if e.mountpoint == os.fspath(mnt)]
        assert top[-1].fstype == "autofs"
        proc = foreground(server.url, mnt, tmp_path, demo_env())
        try:

            def stacked() -> list[str]:
                return [e.fstype for e in read_mounts() if e.mountpoint == os.fspath(mnt)]

            poll(lambda: stacked() == ["autofs", "fuse.xnatfs"] or proc.poll() is not None, "")
            assert stacked() == ["autofs", "fuse.xnatfs"], (tmp_path / "xnatfs.log").read_text()
            assert "TEST" in os.listdir(mnt)
            assert stop(proc) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=WAIT)
        top = [e for e in read_mounts() if e.mountpoint == os.fspath(mnt)]
        assert [e.fstype for e in top] == ["autofs"]  # the trigger stays for the next access
