"""Authentication: Basic, JSESSIONID, expiry modes, alias tokens, auth endpoints (§6)."""

from __future__ import annotations

import time

import requests

from tests.demo.conftest import wait_for_log
from xnatfs.demo import DEMO_PASSWORD, DEMO_USER, DemoServer

LOGIN_MARKER = "<!-- BEGIN xnat-templates/screens/Login.vm -->"


def test_no_credentials_401_with_basic_challenge(server: DemoServer) -> None:
    resp = requests.get(server.url + "/data/projects", params={"format": "json"})
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"] == 'Basic realm="XNAT"'


def test_bad_password_401(server: DemoServer) -> None:
    resp = requests.get(server.url + "/data/projects", auth=(DEMO_USER, "wrong"))
    assert resp.status_code == 401
    assert "Set-Cookie" not in resp.headers or "JSESSIONID" not in resp.headers["Set-Cookie"]


def test_basic_sets_session_cookie_then_cookie_alone_works(server: DemoServer) -> None:
    with requests.Session() as s:
        resp = s.get(server.url + "/data/projects", auth=(DEMO_USER, DEMO_PASSWORD))
        assert resp.status_code == 200
        set_cookie = resp.headers["Set-Cookie"]
        assert "JSESSIONID=" in set_cookie and "HttpOnly" in set_cookie and "Path=/" in set_cookie
        assert 'SESSION_EXPIRATION_TIME="' in set_cookie
        sid = s.cookies["JSESSIONID"]
        assert len(sid) == 32
        # No Basic header now: the cookie alone authenticates, and no new session is made.
        again = s.get(server.url + "/data/projects/TEST/subjects")
        assert again.status_code == 200
        assert "JSESSIONID" not in again.headers.get("Set-Cookie", "")
        assert wait_for_log(server, 2)[-1].user == DEMO_USER


def test_cookie_path_follows_context_path() -> None:
    with DemoServer(context_path="xnat") as srv:
        assert srv.url.endswith("/xnat")
        resp = requests.get(srv.url + "/data/projects", auth=(DEMO_USER, DEMO_PASSWORD))
        assert resp.status_code == 200 and "Path=/xnat/" in resp.headers["Set-Cookie"]
        files = requests.get(
            srv.url + "/data/experiments/XNAT_E00001/scans/1/files",
            params={"format": "json"},
            auth=(DEMO_USER, DEMO_PASSWORD),
        )
        assert files.json()["ResultSet"]["Columns"] == [{"key": "URI", "serverRoot": "/xnat"}]
        # URIs stay relative to the context path.
        uri = files.json()["ResultSet"]["Result"][0]["URI"]
        assert uri.startswith("/data/")
        assert requests.get(srv.url + uri, auth=(DEMO_USER, DEMO_PASSWORD)).status_code == 200
        # Outside the context path there is nothing.
        base = srv.url.removesuffix("/xnat")
        assert (
            requests.get(base + "/data/projects", auth=(DEMO_USER, DEMO_PASSWORD)).status_code
            == 404
        )


def _expire(server: DemoServer, mode: str) -> requests.Session:
    server.faults.session_expiry = 0.2
    server.faults.expiry_mode = mode  # type: ignore[assignment]
    s = requests.Session()
    assert s.get(server.url + "/data/projects", auth=(DEMO_USER, DEMO_PASSWORD)).ok
    time.sleep(0.4)
    return s


def test_expired_session_401_mode(server: DemoServer) -> None:
    with _expire(server, "401") as s:
        resp = s.get(server.url + "/data/projects")
        assert resp.status_code == 401 and resp.headers["WWW-Authenticate"] == 'Basic realm="XNAT"'
        # Basic on the next request re-authenticates and replaces the session.
        old = s.cookies["JSESSIONID"]
        again = s.get(server.url + "/data/projects", auth=(DEMO_USER, DEMO_PASSWORD))
        assert again.ok and s.cookies["JSESSIONID"] != old


def test_expired_session_login_page_mode(server: DemoServer) -> None:
    with _expire(server, "login_page") as s:
        resp = s.get(server.url + "/data/projects", params={"format": "json"})
        assert resp.status_code == 200
        assert resp.headers["Content-Type"].startswith("text/html")
        assert LOGIN_MARKER in resp.text


def test_session_kept_alive_by_use(server: DemoServer) -> None:
    server.faults.session_expiry = 0.5
    with requests.Session() as s:
        assert s.get(server.url + "/data/projects", auth=(DEMO_USER, DEMO_PASSWORD)).ok
        for _ in range(4):
            time.sleep(0.2)
            assert s.get(server.url + "/data/projects").ok  # idle time never exceeds 0.5 s


def test_jsession_endpoints(server: DemoServer) -> None:
    with requests.Session() as s:
        sid = s.get(server.url + "/data/JSESSION", auth=(DEMO_USER, DEMO_PASSWORD)).text
        assert sid == s.cookies["JSESSIONID"]
        assert s.post(server.url + "/data/JSESSION").text == sid
        assert s.delete(server.url + "/data/JSESSION").status_code == 200
        assert s.get(server.url + "/data/projects").status_code == 401
    assert requests.get(server.url + "/data/JSESSION").status_code == 401


def test_services_auth_form_login(server: DemoServer) -> None:
    with requests.Session() as s:
        resp = s.put(
            server.url + "/data/services/auth",
            data={"username": DEMO_USER, "password": DEMO_PASSWORD},
        )
        assert resp.status_code == 200 and resp.text == s.cookies["JSESSIONID"]
        assert s.get(server.url + "/data/auth").text == "User 'demo' is logged in"
        bad = s.post(
            server.url + "/data/services/auth", data={"username": DEMO_USER, "password": "x"}
        )
        assert bad.status_code == 401 and "<h3>" in bad.text
        assert s.get(server.url + "/data/services/auth").status_code == 405
    assert requests.get(server.url + "/data/auth").status_code == 401
    wait_for_log(server, 6)
    assert server.log.auths >= 4


def test_alias_token(server: DemoServer) -> None:
    token = requests.get(
        server.url + "/data/services/tokens/issue", auth=(DEMO_USER, DEMO_PASSWORD)
    ).json()
    assert len(token["secret"]) == 64 and len(token["alias"]) == 36
    resp = requests.get(server.url + "/data/projects", auth=(token["alias"], token["secret"]))
    assert resp.status_code == 200 and wait_for_log(server, 2)[-1].user == DEMO_USER
    valid = requests.get(
        server.url + f"/data/services/tokens/validate/{token['alias']}/{token['secret']}",
        auth=(DEMO_USER, DEMO_PASSWORD),
    )
    assert valid.json() == {"valid": DEMO_USER}
    assert (
        requests.get(server.url + "/data/projects", auth=(token["alias"], "x" * 64)).status_code
        == 401
    )
    requests.get(
        server.url + f"/data/services/tokens/invalidate/{token['alias']}",
        auth=(DEMO_USER, DEMO_PASSWORD),
    )
    assert (
        requests.get(
            server.url + "/data/projects", auth=(token["alias"], token["secret"])
        ).status_code
        == 401
    )


def test_open_urls(server: DemoServer) -> None:
    info = requests.get(server.url + "/xapi/siteConfig/buildInfo")
    assert info.status_code == 200 and info.json()["version"].startswith("1.8")
    assert all(isinstance(v, str) for v in info.json().values())
    assert (
        requests.get(server.url + "/xapi/siteConfig/buildInfo/version").text
        == info.json()["version"]
    )
    root = requests.get(server.url + "/")
    assert root.status_code == 200 and LOGIN_MARKER in root.text
    assert root.url.endswith("/app/template/Login.vm")


def test_browser_agent_redirected_to_login(server: DemoServer) -> None:
    resp = requests.get(
        server.url + "/data/projects", headers={"User-Agent": "Mozilla/5.0"}, allow_redirects=False
    )
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/app/template/Login.vm")
