"""Redirects on real mounts: the password and the session cookie stay with the server's origin,
https never falls back to http, redirects within the origin keep working, and a password sent
over plain http is warned about once.

The server is the hostile XNAT; "another origin" is a second stub on another port of the same
host, which records what it receives (cookies follow hosts, not ports, so it is the case a
cookie jar alone gets wrong).
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from tests.support.hostile import HostileXnat, file_reply, outward_address, redirect, self_signed
from tests.support.mounting import Mount, tmp_mounted
from tests.support.xnat_stub import XnatStub

pytestmark = pytest.mark.fuse

WARNING = "is sent unencrypted"


def mount(xnat: HostileXnat, tmp_path: Path) -> object:
    return tmp_mounted(xnat.url, tmp_path, user=xnat.user, password=xnat.password)


def test_a_redirect_to_another_port_gets_neither_password_nor_session_cookie(
    tmp_path: Path,
) -> None:
    away_data, home_data = b"served elsewhere" * 100, b"served at home" * 100
    with HostileXnat() as xnat, XnatStub() as other:
        xnat.files([xnat.row("away.dcm", away_data), xnat.row("home.dcm", home_data)])
        # A file whose bytes are on another port of the same host ...
        xnat.serve("away.dcm", redirect(f"{other.url}/store/away.dcm"))
        other.route("/store/away.dcm", file_reply(away_data))
        # ... and one moved within the server (which asks for credentials there too).
        xnat.serve("home.dcm", redirect("/moved/home.dcm", status=302))
        xnat.route("/moved/home.dcm", file_reply(home_data))
        with mount(xnat, tmp_path) as m:
            assert isinstance(m, Mount)
            resource = m.path / xnat.RESOURCE
            assert (resource / "home.dcm").read_bytes() == home_data
            assert (resource / "away.dcm").read_bytes() == away_data
            # The server had a session going: its cookie was sent back to it ...
            assert any(s.cookie("JSESSIONID") for s in xnat.seen)
            (moved,) = xnat.requests_to("/moved/home.dcm")
            assert moved.basic == (xnat.user, xnat.password) or moved.cookie("JSESSIONID")
            # ... and never to the other port, nor the password.
            (elsewhere,) = other.seen
            assert "authorization" not in elsewhere.headers
            assert "cookie" not in elsewhere.headers
            assert WARNING not in m.log()  # a loopback server: nothing leaves the machine


def test_https_never_falls_back_to_http(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tls = self_signed(tmp_path)
    if tls is None:
        pytest.skip("openssl is not installed")
    context, cert = tls
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # the mount process trusts it
    data = b"x" * 1000
    with HostileXnat(tls=context) as xnat, XnatStub() as plain:
        assert xnat.url.startswith("https://")
        xnat.files([xnat.row("down.dcm", data), xnat.row("ok.dcm", data)])
        xnat.serve("down.dcm", redirect(f"{plain.url}/down.dcm"))
        xnat.serve("ok.dcm", data)
        plain.route("/down.dcm", file_reply(data))
        with mount(xnat, tmp_path) as m:
            assert isinstance(m, Mount)
            resource = m.path / xnat.RESOURCE
            assert (resource / "ok.dcm").read_bytes() == data
            with pytest.raises(OSError) as info:
                (resource / "down.dcm").read_bytes()
            assert info.value.errno == errno.EIO
            assert plain.seen == []  # not one request went out in clear
            assert "redirect from https to http://127.0.0.1 was refused" in m.log()
            assert WARNING not in m.log()


def test_a_password_over_plain_http_is_warned_about_once(tmp_path: Path) -> None:
    address = outward_address()
    if address is None:
        pytest.skip("this machine has no address but loopback")
    with HostileXnat(host=address) as xnat:
        xnat.files([xnat.row("a.dcm", b"a")])
        xnat.serve("a.dcm", b"a")
        with mount(xnat, tmp_path) as m:
            assert isinstance(m, Mount)
            assert (m.path / xnat.RESOURCE / "a.dcm").read_bytes() == b"a"
            lines = [line for line in m.log().splitlines() if WARNING in line]
            assert len(lines) == 1 and "WARNING" in lines[0] and xnat.url in lines[0]
            assert xnat.password not in m.log()
