"""Mount options (`-o`): translation into `xnatfs mount` options, quoting, refusals."""

from __future__ import annotations

import pytest

from xnatfs.app.mountopts import Translation, split_options, translate_options
from xnatfs.config import OPTIONS
from xnatfs.errors import ConfigError


def test_values_flags_and_config() -> None:
    t = translate_options("cache_size=10G,allow_other,config=/etc/xnatfs/site.toml,uid=1000")
    assert t.args == [
        "--cache-size=10G",
        "--allow-other",
        "--config=/etc/xnatfs/site.toml",
        "--uid=1000",
    ]
    assert t.skipped == []


def test_dashes_and_underscores_are_the_same() -> None:
    assert translate_options("metadata-ttl=30,max_connections=2").args == [
        "--metadata-ttl=30",
        "--max-connections=2",
    ]


def test_flag_values() -> None:
    assert translate_options("allow_other=yes,debug=1").args == ["--allow-other", "--debug"]
    assert translate_options("allow_other=no,debug=false").args == []
    with pytest.raises(ConfigError, match="allow_other"):
        translate_options("allow_other=perhaps")


def test_generic_mount_options_are_dropped() -> None:
    # What mount(8) actually passes for an fstab line with user, _netdev and nofail.
    text = "ro,noexec,nosuid,nodev,cache_size=10G,_netdev,nofail,user"
    assert translate_options(text).args == ["--cache-size=10G"]
    dropped = (
        "defaults,auto,noauto,users,nouser,exec,dev,suid,noatime,relatime,async,"
        "x-systemd.automount,x-systemd.idle-timeout=30min,x-systemd.requires=a.service,"
        "x-mount.mkdir,X-foo=bar,comment=systemd.automount"
    )
    assert translate_options(dropped).args == []


def test_rw_as_mount_passes_it_is_accepted_and_noted() -> None:
    # mount(8) passes `rw` whenever `ro` is not given: `defaults` lines must work.
    got = translate_options("rw,cache_size=1G")
    assert got.args == ["--cache-size=1G"] and got.wanted_rw
    assert not translate_options("ro,cache_size=1G").wanted_rw


def test_unknown_option_is_refused_by_name() -> None:
    with pytest.raises(ConfigError) as err:
        translate_options("ro,cache_sise=1G")
    assert "cache_sise" in str(err.value)
    assert "cache_size" in str(err.value)  # the list of known options helps spot the typo


def test_sloppy_skips_unknown_options() -> None:
    t = translate_options("ro,kernel_cache,cache_size=1G", sloppy=True)
    assert t == Translation(args=["--cache-size=1G"], skipped=["kernel_cache"])


@pytest.mark.parametrize("key", ["password", "PASSWORD", "token", "pass"])
def test_passwords_are_refused_without_echoing_them(key: str) -> None:
    with pytest.raises(ConfigError) as err:
        translate_options(f"ro,{key}=hunter22")
    assert "hunter22" not in str(err.value)
    assert "password_file" in str(err.value)


def test_missing_and_bad_values_are_refused() -> None:
    with pytest.raises(ConfigError, match="cache_size.*needs a value"):
        translate_options("cache_size")
    with pytest.raises(ConfigError, match="cache_size"):
        translate_options("cache_size=")
    with pytest.raises(ConfigError, match="cache_size.*not a size"):
        translate_options("cache_size=lots")
    with pytest.raises(ConfigError, match="prefetch"):
        translate_options("prefetch=always")
    with pytest.raises(ConfigError, match="max_connections"):
        translate_options("max_connections=0")


def test_absolute_paths_when_asked() -> None:
    assert translate_options("cache_dir=cache").args == ["--cache-dir=cache"]
    for option in ("cache_dir=cache", "config=site.toml", "password_file=pw", "netrc=~/.netrc"):
        with pytest.raises(ConfigError, match="absolute path"):
            translate_options(option, absolute_paths=True)
    assert translate_options("netrc=/etc/xnatfs/netrc", absolute_paths=True).args == [
        "--netrc=/etc/xnatfs/netrc"
    ]


def test_every_option_translates() -> None:
    samples = {
        "foreground": "foreground",
        "cache_dir": "cache_dir=/c",
        "cache_size": "cache_size=5M",
        "metadata_ttl": "metadata_ttl=1.5",
        "max_connections": "max_connections=3",
        "user": "user=alice",  # an XNAT user name, not mount(8)'s bare `user` flag
        "password_file": "password_file=/p",
        "netrc": "netrc=/n",
        "allow_other": "allow_other",
        "uid": "uid=1",
        "gid": "gid=2",
        "debug": "debug",
        "prefetch": "prefetch=off",
        "connect_timeout": "connect_timeout=3",
        "read_timeout": "read_timeout=4",
        "retries": "retries=0",
        "selectors": "selectors=hidden",
        "allow_non_empty": "allow_non_empty",
        "metadata_cache_size": "metadata_cache_size=64M",
        "metadata_disk_size": "metadata_disk_size=1G",
        "walk_ahead": "walk_ahead=0",
        "offline": "offline",
        "project": "project=STUDY",
        "log_file": "log_file=/l",
        "max_listing_size": "max_listing_size=64M",
        "max_listing_rows": "max_listing_rows=1000",
        "file_mode": "file_mode=0440",
        "dir_mode": "dir_mode=0550",
        "umask": "umask=0027",
    }
    assert set(samples) == {o.name for o in OPTIONS}, "a new option needs a sample here"
    args = translate_options(",".join(samples.values())).args
    assert len(args) == len(samples)
    assert "--user=alice" in args
    assert "--foreground" in args


def test_a_repeated_option_is_given_once_per_value() -> None:
    args = translate_options("ro,project=STUDY,cache_size=1G,project=TEST").args
    assert args == ["--project=STUDY", "--cache-size=1G", "--project=TEST"]
    with pytest.raises(ConfigError, match="not a project ID"):
        translate_options("project=A/B")


def test_quoted_values_may_hold_commas() -> None:
    assert split_options('ro,config="/etc/x,y.toml",allow_other') == [
        "ro",
        "config=/etc/x,y.toml",
        "allow_other",
    ]
    assert translate_options('config="/etc/x,y.toml"').args == ["--config=/etc/x,y.toml"]
    with pytest.raises(ConfigError, match="quote"):
        split_options('config="/etc/x')
    assert split_options(",,ro,,") == ["ro"]
