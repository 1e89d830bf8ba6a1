"""Values of mount options as written: sizes, seconds, counts, ids, switches, modes, the URL,
and where caches go. Pure functions that raise ConfigError with a short reason."""

from __future__ import annotations

import os
import re
from pathlib import Path
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
    """`90.5`, `"60"` -> seconds as a float; negative values are refused."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ConfigError(f"not a number of seconds: {text!r}") from None
    if value < 0:
        raise ConfigError(f"seconds must not be negative: {text!r}")
    return value


def parse_positive_int(text: str | int) -> int:
    """`"8"`, `8` -> 8; less than 1 is refused."""
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise ConfigError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise ConfigError(f"must be at least 1: {text!r}")
    return value


def parse_id(text: str | int) -> int:
    """A whole number that is not negative (user and group ids, counts that may be 0)."""
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise ConfigError(f"not a numeric id: {text!r}") from None
    if value < 0:
        raise ConfigError(f"ids are not negative: {text!r}")
    return value


def parse_bool(text: str | bool) -> bool:
    """`true`/`yes`/`on`/`1` (or nothing: a bare switch) and `false`/`no`/`off`/`0`."""
    if isinstance(text, bool):
        return text
    low = str(text).strip().lower()
    if low in ("1", "true", "yes", "on", ""):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"not a yes/no value: {text!r}")


def parse_prefetch(text: str) -> str:
    """One of `PREFETCH_MODES`, as written."""
    if text not in PREFETCH_MODES:
        raise ConfigError(f"prefetch must be one of {', '.join(PREFETCH_MODES)}: {text!r}")
    return text


PREFETCH_MODES = ("auto", "zip", "parallel", "off")
SELECTOR_MODES = ("listed", "hidden")


def parse_selectors(text: str) -> str:
    """One of `SELECTOR_MODES`, as written."""
    if text not in SELECTOR_MODES:
        raise ConfigError(f"selectors must be one of {', '.join(SELECTOR_MODES)}: {text!r}")
    return text


def parse_mode(text: str) -> int:
    """An octal permission mode as written: `0640`, `640`, `0o640` -> 0o640 (at most 0o777).

    Only strings: a TOML number such as `640` would be decimal, not the mode meant.
    """
    digits = str(text).strip().lower().removeprefix("0o")
    if not digits or len(digits) > 4 or any(c not in "01234567" for c in digits):
        raise ConfigError(f"not an octal mode: {text!r} (use e.g. 0640)")
    value = int(digits, 8)
    if value > 0o777:
        raise ConfigError(f"only permission bits (at most 0777): {text!r}")
    return value


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


def parse_project(text: str) -> str:
    """A project ID as XNAT shows it in `/data/projects` (no `/`, no `,`, not empty)."""
    value = text.strip()
    if not value or "/" in value or "," in value:
        raise ConfigError(f"not a project ID: {text!r}")
    return value
