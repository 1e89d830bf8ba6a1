"""The sd_notify protocol against a real AF_UNIX datagram socket, and `under_systemd`."""

from __future__ import annotations

import os
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest

from xnatfs.app.systemd import journal_stream_matches, notify, under_systemd


@pytest.fixture
def path_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    address = str(tmp_path / "notify.sock")
    sock.bind(address)
    sock.settimeout(5)
    yield sock, address
    sock.close()


@pytest.fixture
def abstract_socket() -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"xnatfs-test-{uuid.uuid4().hex}"
    sock.bind(b"\0" + name.encode())
    sock.settimeout(5)
    yield sock, "@" + name
    sock.close()


def test_ready_reaches_a_path_socket(path_socket: tuple[socket.socket, str]) -> None:
    sock, address = path_socket
    assert notify("READY=1", environ={"NOTIFY_SOCKET": address}) is True
    assert sock.recv(4096) == b"READY=1"


def test_abstract_socket_name(abstract_socket: tuple[socket.socket, str]) -> None:
    sock, address = abstract_socket
    assert notify("STOPPING=1", environ={"NOTIFY_SOCKET": address}) is True
    assert sock.recv(4096) == b"STOPPING=1"


def test_messages_arrive_in_order_and_whole(path_socket: tuple[socket.socket, str]) -> None:
    sock, address = path_socket
    env = {"NOTIFY_SOCKET": address}
    status = "STATUS=mounted https://xnat.example.org on /mnt/xnat \u2713"
    for state in ("READY=1", status, "STOPPING=1"):
        assert notify(state, environ=env)
    assert [sock.recv(4096).decode() for _ in range(3)] == ["READY=1", status, "STOPPING=1"]


def test_uses_the_process_environment(
    path_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, address = path_socket
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    assert notify("READY=1")
    assert sock.recv(4096) == b"READY=1"
    # Left in place: a second notification (STOPPING=1) must still find the socket.
    assert os.environ["NOTIFY_SOCKET"] == address


def test_no_socket_is_a_noop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False
    assert notify("READY=1", environ={"NOTIFY_SOCKET": ""}) is False


def test_unreachable_socket_returns_false(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    missing = str(tmp_path / "gone.sock")
    assert notify("READY=1", environ={"NOTIFY_SOCKET": missing}) is False
    assert "could not notify systemd" in caplog.text


def test_unsupported_address_returns_false(caplog: pytest.LogCaptureFixture) -> None:
    assert notify("READY=1", environ={"NOTIFY_SOCKET": "vsock:2:1234"}) is False
    assert "not a unix socket" in caplog.text


def _journal_env(stream: TextIO) -> dict[str, str]:
    st = os.fstat(stream.fileno())
    return {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}


def test_journal_stream_must_match_the_stream(tmp_path: Path) -> None:
    with open(tmp_path / "a", "w") as a, open(tmp_path / "b", "w") as b:
        env = _journal_env(a)
        assert journal_stream_matches(a, env)
        assert not journal_stream_matches(b, env)
        assert not journal_stream_matches(a, {"JOURNAL_STREAM": "garbage"})
        assert not journal_stream_matches(a, {})
        assert under_systemd(environ=env, stream=a)
        assert not under_systemd(environ=env, stream=b)


def test_invocation_id_counts_unless_stderr_is_a_terminal(tmp_path: Path) -> None:
    env = {"INVOCATION_ID": "0123456789abcdef0123456789abcdef"}
    with open(tmp_path / "log", "w") as not_a_tty:
        assert under_systemd(environ=env, stream=not_a_tty)
        assert not under_systemd(environ={}, stream=not_a_tty)
    master, slave = os.openpty()
    try:
        with os.fdopen(slave, "w") as tty:
            assert not under_systemd(environ=env, stream=tty)
    finally:
        os.close(master)


def test_defaults_to_process_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INVOCATION_ID", raising=False)
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    assert under_systemd() is False
    assert sys.stderr is not None
