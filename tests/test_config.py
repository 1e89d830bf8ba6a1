from __future__ import annotations

from pathlib import Path

import pytest

from xnatfs.config import (
    build_config,
    default_cache_root,
    normalize_url,
    parse_size,
    server_dir_name,
)
from xnatfs.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500M", 500 * 1024**2),
        ("10G", 10 * 1024**3),
        ("1.5T", int(1.5 * 1024**4)),
        ("123", 123),
        ("2GiB", 2 * 1024**3),
        (7, 7),
    ],
)
def test_sizes(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "ten", "5X", "-1"])
def test_bad_sizes(bad: str) -> None:
    with pytest.raises(ConfigError):
        parse_size(bad)


def test_urls_are_normalised_and_credentials_refused() -> None:
    assert normalize_url("https://xnat.org/xnat/") == "https://xnat.org/xnat"
    assert normalize_url("http://h:8080/data") == "http://h:8080"
    with pytest.raises(ConfigError, match="credentials"):
        normalize_url("https://me:secret@xnat.org")
    with pytest.raises(ConfigError):
        normalize_url("xnat.org")


def test_cache_root_follows_systemd_then_xdg_then_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHE_DIRECTORY", "/var/cache/xnatfs:/other")
    assert default_cache_root() == Path("/var/cache/xnatfs")
    monkeypatch.delenv("CACHE_DIRECTORY")
    monkeypatch.setenv("XDG_CACHE_HOME", "/x")
    assert default_cache_root() == Path("/x/xnatfs")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", "/home/u")
    assert default_cache_root() == Path("/home/u/.cache/xnatfs")
    monkeypatch.delenv("HOME")
    assert default_cache_root() == Path("/var/cache/xnatfs")


def test_each_server_gets_its_own_cache_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", "/c")
    a = build_config("https://xnat.org/xnat", "/m", {}).effective_cache_dir
    b = build_config("https://xnat.org:8443", "/m", {}).effective_cache_dir
    assert a != b and a.parent == b.parent == Path("/c/xnatfs")
    assert server_dir_name("https://xnat.org/xnat") == "https_xnat.org_xnat"
    chosen = build_config("https://x.org", "/m", {"cache_dir": "/mine"}).effective_cache_dir
    assert chosen == Path("/mine")
