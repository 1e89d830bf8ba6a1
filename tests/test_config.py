from __future__ import annotations

import contextlib
import dataclasses
import io
from collections.abc import Callable
from pathlib import Path

import pytest

from xnatfs.config import (
    COMMAND_LINE,
    MOUNT_OPTIONS,
    Origin,
    Tunables,
    build_config,
    config_file,
    default_cache_root,
    normalize_url,
    parse_mode,
    parse_option,
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


@pytest.mark.parametrize(
    ("text", "expected"), [("0640", 0o640), ("640", 0o640), ("0o027", 0o027), ("0", 0)]
)
def test_modes_are_octal(text: str, expected: int) -> None:
    assert parse_mode(text) == expected


@pytest.mark.parametrize("bad", ["", "rw-r-----", "0999", "1777", "0o7777", "64O"])
def test_bad_modes(bad: str) -> None:
    with pytest.raises(ConfigError):
        parse_mode(bad)


def test_a_mode_in_toml_must_be_a_string() -> None:
    # A TOML number 640 is decimal: the mode meant is not the mode that would be used.
    with pytest.raises(ConfigError, match="must be a string"):
        parse_option("file_mode", 640, config_file("/etc/xnatfs/x.toml"))
    assert parse_option("umask", "027", config_file("/etc/xnatfs/x.toml")) == 0o027


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


# --- parse_option: the one parser of every place options are written in -----------------------

SITE = config_file("/etc/xnatfs/site.toml")


def test_a_value_is_parsed_whatever_the_spelling_of_its_key() -> None:
    assert parse_option("cache-size", "1G", MOUNT_OPTIONS) == 1024**3
    assert parse_option("cache_size", 5, SITE) == 5
    assert parse_option("metadata_ttl", 1.5, SITE) == 1.5
    assert parse_option("netrc", "/n", COMMAND_LINE) == Path("/n")


def test_a_switch_without_a_value_is_on_anything_else_needs_one() -> None:
    assert parse_option("allow_other", None, MOUNT_OPTIONS) is True
    assert parse_option("allow_other", "no", MOUNT_OPTIONS) is False
    with pytest.raises(ConfigError, match=r"^mount option 'cache_size' needs a value$"):
        parse_option("cache_size", None, MOUNT_OPTIONS)


@pytest.mark.parametrize(
    ("key", "raw", "message"),
    [
        ("cache_size", True, "key cache_size must be an integer or a string, not a boolean"),
        ("allow_other", 1, "key allow_other must be a boolean or a string, not an integer"),
        ("user", 42, "key user must be a string, not an integer"),
        ("url", 1, "key url must be a string, not an integer"),
        ("retries", [1], "key retries must be an integer or a string, not an array"),
    ],
)
def test_toml_types_are_checked(key: str, raw: object, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_option(key, raw, SITE)
    assert str(err.value) == f"/etc/xnatfs/site.toml: {message}"


def test_unknown_keys_list_what_that_place_knows() -> None:
    with pytest.raises(ConfigError, match=r"^unknown mount option 'nope' \(known: config, "):
        parse_option("nope", "1", MOUNT_OPTIONS)
    with pytest.raises(ConfigError, match=r"site.toml: unknown key 'nope' \(known: url, mount"):
        parse_option("nope", "1", SITE)
    with pytest.raises(ConfigError, match="unknown command-line option 'config'"):
        parse_option("config", "/c.toml", COMMAND_LINE)  # only -o spells it as an option


@pytest.mark.parametrize("key", ["password", "Pass", "alias-token", "--password", "API_KEY"])
@pytest.mark.parametrize("origin", [COMMAND_LINE, MOUNT_OPTIONS, SITE])
def test_password_keys_are_refused_everywhere(key: str, origin: Origin) -> None:
    with pytest.raises(ConfigError) as err:
        parse_option(key, "hunter22", origin)
    message = str(err.value)
    assert f"{origin.term} {key!r} is not allowed" in message
    # Where the password goes instead, spelt as that place spells it.
    password_file = "--password-file FILE" if origin is COMMAND_LINE else "password_file"
    assert f"use {password_file} (a file of mode 0600)" in message
    assert "LoadCredential" in message
    assert "hunter22" not in message


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(text)
    return path


def via_argv(tmp_path: Path) -> str:
    return run_cli(["mount", "https://x.org", str(tmp_path), "--cache-size", "lots"])


def via_o(tmp_path: Path) -> str:
    return run_cli(["mount", "https://x.org", str(tmp_path), "-o", "ro,cache_size=lots"])


def via_toml(tmp_path: Path) -> str:
    path = write_toml(
        tmp_path, f'url = "https://x.org"\nmountpoint = "{tmp_path}"\ncache_size = "lots"\n'
    )
    return run_cli(["mount", "--config", str(path)])


def via_helper(tmp_path: Path) -> str:
    return run_helper(["https://x.org", str(tmp_path), "-o", "ro,cache_size=lots"])


def run_cli(argv: list[str]) -> str:
    from xnatfs.app import cli

    with contextlib.redirect_stderr(io.StringIO()) as err:
        assert cli.main(argv) == cli.EXIT_USAGE
    return err.getvalue()


def run_helper(argv: list[str]) -> str:
    from xnatfs.app import fstab

    with contextlib.redirect_stderr(io.StringIO()) as err:
        assert fstab.main(argv) == 1
    return err.getvalue()


@pytest.mark.parametrize(
    ("source", "prefix"),
    [
        (via_argv, "xnatfs: command-line option cache_size: "),
        (via_o, "xnatfs: mount option cache_size: "),
        (via_toml, "xnatfs: {toml}: key cache_size: "),
        (via_helper, "mount.fuse.xnatfs: mount option cache_size: "),
    ],
)
def test_every_place_refuses_a_bad_value_with_the_same_message(
    tmp_path: Path, source: Callable[[Path], str], prefix: str
) -> None:
    core = "not a size: 'lots' (use e.g. 500M, 10G)"
    assert source(tmp_path) == prefix.format(toml=tmp_path / "site.toml") + core + "\n"


def test_build_config_parses_as_the_command_line() -> None:
    cfg = build_config("https://x.org/", "/m", {"cache-size": "1K", "debug": True, "uid": "7"})
    assert (cfg.url, cfg.cache_size, cfg.debug, cfg.uid) == ("https://x.org", 1024, True, 7)
    with pytest.raises(ConfigError, match="^command-line option max_connections: must be"):
        build_config("https://x.org", "/m", {"max_connections": "0"})


# --- Tunables ------------------------------------------------------------------------------------


def test_tunables_derive_prefetch_limits_from_the_mount() -> None:
    small = build_config("https://x.org", "/m", {"cache_size": "100M", "max_connections": "1"})
    t = Tunables.for_mount(small, fd_limit=1024)
    assert t.prefetch_max_bytes == 50 * 1024**2  # half the cache
    assert t.prefetch_max_files == 256  # a quarter of the descriptors
    assert t.prefetch_parallel == 1
    big = build_config("https://x.org", "/m", {"cache_size": "1T", "max_connections": "16"})
    t = Tunables.for_mount(big, fd_limit=20)
    assert t.prefetch_max_bytes == 2 * 1024**3  # never more than 2 GiB
    assert t.prefetch_max_files == 16  # at least 16
    assert t.prefetch_parallel == 8
    others = {f.name for f in dataclasses.fields(Tunables)} - {
        "prefetch_max_bytes",
        "prefetch_max_files",
        "prefetch_parallel",
    }
    assert all(getattr(t, name) == getattr(Tunables(), name) for name in others)
