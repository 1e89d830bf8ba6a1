from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from xnatfs.demo import DEMO_PASSWORD, DEMO_USER, DemoServer, LogEntry, build_demo_site


@pytest.fixture
def server() -> Iterator[DemoServer]:
    """A fresh demo server (own site, faults and log) on an ephemeral loopback port."""
    with DemoServer(build_demo_site()) as srv:
        yield srv


@pytest.fixture
def http(server: DemoServer) -> Iterator[requests.Session]:
    """A requests session that authenticates as the demo user and keeps cookies."""
    with requests.Session() as session:
        session.auth = (DEMO_USER, DEMO_PASSWORD)
        yield session


def get_json(http: requests.Session, url: str, **params: str) -> dict:  # type: ignore[type-arg]
    resp = http.get(url, params={"format": "json", **params}, timeout=30)
    assert resp.status_code == 200, (resp.status_code, resp.text[:300])
    assert resp.headers["Content-Type"].startswith("application/json")
    return resp.json()  # type: ignore[no-any-return]


def rows(http: requests.Session, url: str, **params: str) -> list[dict[str, str]]:
    return get_json(http, url, **params)["ResultSet"]["Result"]  # type: ignore[no-any-return]


def wait_for_log(server: DemoServer, n: int) -> list[LogEntry]:
    """The log entries once there are at least `n`: the server records a request after its
    last byte is sent, so a client can see the response before the entry exists."""
    deadline = time.monotonic() + 5
    while server.log.total < n and time.monotonic() < deadline:
        time.sleep(0.01)
    return server.log.entries()
