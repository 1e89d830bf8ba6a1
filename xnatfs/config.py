"""Mount options: one table that the command line, `-o key=value` and config files all read.

`MountConfig` is the settings object the composition root (`mount.py`) builds everything from.
This module does no I/O beyond what `load_toml` is asked to read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from xnatfs.errors import ConfigError

_SIZE_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(text: str | int) -> int:
    """`500M`, `10G`, `1.5T`, `123456` -> bytes (binary units; a trailing `iB`/`B` is allowed)."""
    if isinstance(text, int):
        if text < 0:
            raise ConfigError(f"size must not be negative: {text}")
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGTkmgt]?)(?:i?[Bb])?\s*", str(text))
    if not m:
        raise ConfigError(f"not a size: {text!r} (use e.g. 500M, 10G)")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).upper()])


def parse_seconds(text: str | float | int) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ConfigError(f"not a number of seconds: {text!r}") from None
    if value < 0:
        raise ConfigError(f"seconds must not be negative: {text!r}")
    return value


def parse_positive_int(text: str | int) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise ConfigError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise ConfigError(f"must be at least 1: {text!r}")
    return value


def parse_id(text: str | int) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise ConfigError(f"not a numeric id: {text!r}") from None
    if value < 0:
        raise ConfigError(f"ids are not negative: {text!r}")
    return value


def parse_bool(text: str | bool) -> bool:
    if isinstance(text, bool):
        return text
    low = str(text).strip().lower()
    if low in ("1", "true", "yes", "on", ""):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"not a yes/no value: {text!r}")


def parse_prefetch(text: str) -> str:
    if text not in PREFETCH_MODES:
        raise ConfigError(f"prefetch must be one of {', '.join(PREFETCH_MODES)}: {text!r}")
    return text


PREFETCH_MODES = ("auto", "zip", "parallel", "off")


def default_cache_root() -> Path:
    """systemd's `$CACHE_DIRECTORY` (a unit's `CacheDirectory=`), else `$XDG_CACHE_HOME/xnatfs`,
    else `~/.cache/xnatfs`; `/var/cache/xnatfs` when HOME is unset."""
    systemd_dir = os.environ.get("CACHE_DIRECTORY")
    if systemd_dir:
        return Path(systemd_dir.split(":")[0])
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg) / "xnatfs"
    home = os.environ.get("HOME")
    if home:
        return Path(home) / ".cache" / "xnatfs"
    return Path("/var/cache/xnatfs")


def server_dir_name(url: str) -> str:
    """A file-system-safe name for one server, so each server gets its own cache directory."""
    parts = urlsplit(url)
    host = parts.hostname or "server"
    port = f"_{parts.port}" if parts.port else ""
    path = re.sub(r"[^A-Za-z0-9._-]+", "_", parts.path.strip("/"))
    return f"{parts.scheme}_{host}{port}" + (f"_{path}" if path else "")


def normalize_url(url: str) -> str:
    """Validate an XNAT base URL (scheme, host, optional context path) and drop a trailing `/`.

    Credentials inside the URL are refused: they would end up in argv and in logs.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"not an http(s) URL: {url!r}")
    if parts.username or parts.password:
        raise ConfigError(
            "the URL must not contain credentials; use XNATFS_PASSWORD, netrc or --password-file"
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"the URL must not have a query or fragment: {url!r}")
    path = parts.path.rstrip("/")
    for suffix in ("/data", "/REST"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
    netloc = parts.netloc
    return f"{parts.scheme}://{netloc}{path}"


@dataclass(frozen=True)
class OptionSpec:
    """One mount option, named as in TOML and `-o` (`--name-with-dashes` on the command line)."""

    name: str
    parse: Callable[[Any], Any]
    help: str
    flag: bool = False  # a switch without a value on the command line


OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("foreground", parse_bool, "stay attached to the terminal", flag=True),
    OptionSpec("cache_dir", Path, "disk cache directory (default: XDG cache dir, per server)"),
    OptionSpec("cache_size", parse_size, "disk cache limit, e.g. 500M or 10G (default 10G)"),
    OptionSpec("metadata_ttl", parse_seconds, "seconds a listing is trusted (default 60)"),
    OptionSpec("max_connections", parse_positive_int, "parallel HTTP requests (default 8)"),
    OptionSpec("user", str, "XNAT user name (or XNATFS_USER)"),
    OptionSpec("password_file", Path, "file holding the password, mode 0600"),
    OptionSpec("netrc", Path, "netrc file to read credentials from (default $NETRC, ~/.netrc)"),
    OptionSpec("allow_other", parse_bool, "let other users see the mount", flag=True),
    OptionSpec("uid", parse_id, "owner shown for every entry (default: the mounting user)"),
    OptionSpec("gid", parse_id, "group shown for every entry (default: the mounting group)"),
    OptionSpec("debug", parse_bool, "log every request (never credentials)", flag=True),
    OptionSpec("prefetch", parse_prefetch, "series prefetch: auto, zip, parallel or off"),
    OptionSpec("connect_timeout", parse_seconds, "seconds to wait for a connection (default 10)"),
    OptionSpec("read_timeout", parse_seconds, "seconds to wait for the next byte (default 30)"),
    OptionSpec("retries", parse_id, "attempts after a failed request (default 4)"),
)


@dataclass(frozen=True)
class MountConfig:
    url: str
    mountpoint: Path
    foreground: bool = False
    cache_dir: Path | None = None
    cache_size: int = 10 * 1024**3
    metadata_ttl: float = 60.0
    max_connections: int = 8
    user: str | None = None
    password_file: Path | None = None
    netrc: Path | None = None
    allow_other: bool = False
    uid: int | None = None
    gid: int | None = None
    debug: bool = False
    prefetch: str = "auto"
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    retries: int = 4

    @property
    def effective_cache_dir(self) -> Path:
        """The directory holding this server's cache entries."""
        if self.cache_dir is not None:
            return self.cache_dir
        return default_cache_root() / server_dir_name(self.url)


def build_config(url: str, mountpoint: str | Path, values: Mapping[str, Any]) -> MountConfig:
    """Parse raw option values (strings from argv, `-o` or TOML values) into a `MountConfig`.

    Unknown keys are an error that names the key.
    """
    parsed: dict[str, Any] = {}
    by_name = {o.name: o for o in OPTIONS}
    for key, raw in values.items():
        spec = by_name.get(key)
        if spec is None:
            raise ConfigError(f"unknown option: {key}")
        if raw is None:
            continue
        try:
            parsed[key] = spec.parse(raw)
        except ConfigError as exc:
            raise ConfigError(f"{key}: {exc}") from None
    return MountConfig(url=normalize_url(url), mountpoint=Path(mountpoint), **parsed)
