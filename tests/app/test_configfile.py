"""TOML configuration files: keys, dashes, types, refusals, and hand-off to build_config."""

from __future__ import annotations

from pathlib import Path

import pytest

from xnatfs.app.configfile import load_config_file
from xnatfs.config import OPTIONS, build_config
from xnatfs.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(text)
    return path


def test_full_file_round_trips_into_a_mount_config(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
url = "https://xnat.example.org/xnat"
mountpoint = "/mnt/xnat"
user = "reader"
cache_dir = "/var/cache/xnatfs/site"
cache_size = "20G"
metadata_ttl = 90.5
max_connections = 4
allow_other = true
uid = 1000
gid = 1000
debug = false
prefetch = "zip"
connect_timeout = 5
read_timeout = 60
retries = 2
netrc = "/etc/xnatfs/netrc"
password_file = "/etc/xnatfs/site.password"
""",
    )
    url, mountpoint, options = load_config_file(path)
    assert url == "https://xnat.example.org/xnat"
    assert mountpoint == "/mnt/xnat"
    assert options["cache_size"] == "20G"  # raw: build_config parses
    cfg = build_config(url, mountpoint, options)
    assert cfg.cache_size == 20 * 1024**3
    assert cfg.metadata_ttl == 90.5
    assert cfg.max_connections == 4
    assert cfg.allow_other is True
    assert (cfg.uid, cfg.gid) == (1000, 1000)
    assert cfg.prefetch == "zip"
    assert cfg.cache_dir == Path("/var/cache/xnatfs/site")
    assert cfg.password_file == Path("/etc/xnatfs/site.password")
    assert cfg.user == "reader"


def test_every_option_is_accepted_by_name(tmp_path: Path) -> None:
    sample = {
        "foreground": "true",
        "cache_dir": '"/c"',
        "cache_size": "1024",
        "metadata_ttl": "1",
        "max_connections": "1",
        "user": '"u"',
        "password_file": '"/p"',
        "netrc": '"/n"',
        "allow_other": "false",
        "uid": "0",
        "gid": "0",
        "debug": "true",
        "prefetch": '"off"',
        "connect_timeout": "1",
        "read_timeout": "1",
        "retries": "0",
        "selectors": '"hidden"',
        "allow_non_empty": "true",
        "metadata_cache_size": '"64M"',
        "metadata_disk_size": '"1G"',
        "walk_ahead": "0",
        "offline": "false",
        "project": '["A", "B"]',
        "log_file": '"/l"',
        "max_listing_size": '"64M"',
        "max_listing_rows": "1000",
        "file_mode": '"0440"',
        "dir_mode": '"0550"',
        "umask": '"027"',
    }
    assert set(sample) == {o.name for o in OPTIONS}, "a new option needs a sample here"
    text = "\n".join(f"{k} = {v}" for k, v in sample.items())
    _, _, options = load_config_file(write(tmp_path, text))
    assert set(options) == set(sample)


def test_projects_are_a_string_or_an_array_of_strings(tmp_path: Path) -> None:
    for text, expected in (('project = "A"', ("A",)), ('project = ["A", "B"]', ("A", "B"))):
        path = write(tmp_path, f'url = "https://x"\nmountpoint = "/m"\n{text}\n')
        url, mnt, options = load_config_file(path)
        assert build_config(url or "", mnt or "", options).project == expected
    for bad, message in (
        ("project = [1]", "key project must be a string, not an integer"),
        ('project = ["A/B"]', "project: not a project ID: 'A/B'"),
    ):
        with pytest.raises(ConfigError) as err:
            load_config_file(write(tmp_path, bad))
        assert str(err.value).endswith(message), str(err.value)


def test_dashes_are_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, 'cache-size = "1G"\nmetadata-ttl = 5\nallow-other = true\n')
    _, _, options = load_config_file(path)
    assert options == {"cache_size": "1G", "metadata_ttl": 5, "allow_other": True}


def test_url_and_mountpoint_are_optional(tmp_path: Path) -> None:
    assert load_config_file(write(tmp_path, "retries = 1\n")) == (None, None, {"retries": 1})
    assert load_config_file(write(tmp_path, "")) == (None, None, {})


def test_unknown_key_names_the_key_and_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'url = "https://x.org"\ncache_sise = "1G"\n')
    with pytest.raises(ConfigError) as err:
        load_config_file(path)
    assert "cache_sise" in str(err.value)
    assert str(path) in str(err.value)


def test_a_table_is_an_unknown_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="options"):
        load_config_file(write(tmp_path, "[options]\ncache_size = 1\n"))


@pytest.mark.parametrize("key", ["password", "Password", "passwd", "token", "secret"])
def test_password_keys_are_refused(tmp_path: Path, key: str) -> None:
    path = write(tmp_path, f'{key} = "hunter22"\n')
    with pytest.raises(ConfigError) as err:
        load_config_file(path)
    message = str(err.value)
    assert key in message
    assert "password_file" in message
    assert "LoadCredential" in message
    assert "hunter22" not in message


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("cache_size = true", "cache_size"),
        ("cache_size = 1.5", "cache_size"),
        ("metadata_ttl = [1]", "metadata_ttl"),
        ("allow_other = 1", "allow_other"),
        ("user = 42", "user"),
        ("cache_dir = 1", "cache_dir"),
        ("url = 1", "url"),
        ("mountpoint = false", "mountpoint"),
        ("uid = { a = 1 }", "uid"),
        ("max_connections = true", "max_connections"),
    ],
)
def test_wrong_types_name_the_key(tmp_path: Path, line: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config_file(write(tmp_path, line + "\n"))
    assert key in str(err.value)
    assert "must be" in str(err.value)


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ('cache_size = "lots"', "cache_size"),
        ("max_connections = 0", "max_connections"),
        ('prefetch = "always"', "prefetch"),
        ("metadata_ttl = -1", "metadata_ttl"),
        ('allow_other = "maybe"', "allow_other"),
        ("uid = -5", "uid"),
    ],
)
def test_bad_values_name_the_key_and_file(tmp_path: Path, line: str, key: str) -> None:
    path = write(tmp_path, line + "\n")
    with pytest.raises(ConfigError) as err:
        load_config_file(path)
    assert key in str(err.value)
    assert str(path) in str(err.value)


def test_same_key_twice_with_dash_and_underscore(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cache_size"):
        load_config_file(write(tmp_path, 'cache-size = "1G"\ncache_size = "2G"\n'))


def test_relative_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    sub = tmp_path / "conf"
    sub.mkdir()
    path = sub / "x.toml"
    path.write_text('cache_dir = "cache"\nmountpoint = "../mnt"\npassword_file = "/abs/pw"\n')
    _, mountpoint, options = load_config_file(path)
    assert options["cache_dir"] == str(sub / "cache")
    assert mountpoint == str(sub / ".." / "mnt")
    assert options["password_file"] == "/abs/pw"


def test_tilde_is_home_and_needs_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, 'netrc = "~/.netrc"\n')
    monkeypatch.setenv("HOME", "/home/alice")
    assert load_config_file(path)[2]["netrc"] == "/home/alice/.netrc"
    monkeypatch.delenv("HOME")
    with pytest.raises(ConfigError, match="HOME"):
        load_config_file(path)
    with pytest.raises(ConfigError, match="only ~/"):
        load_config_file(write(tmp_path, 'netrc = "~bob/.netrc"\n'))


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as err:
        load_config_file(path)
    assert str(path) in str(err.value)
    assert "No such file" in str(err.value)


def test_invalid_toml_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'url = "https://x.org"\ncache_size = 10G\n')
    with pytest.raises(ConfigError) as err:
        load_config_file(path)
    assert str(path) in str(err.value)
    assert "line 2" in str(err.value)
