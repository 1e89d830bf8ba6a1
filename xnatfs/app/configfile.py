"""Read a mount's TOML configuration file (`/etc/xnatfs/NAME.toml`, `~/.config/xnatfs/NAME.toml`).

The file holds `url`, `mountpoint` and any option of `xnatfs.config.OPTIONS` by name
(`cache_size` or `cache-size`). It never holds a password: the systemd unit passes one with
`LoadCredential=`, or the file names a `password_file`. Values are checked here so that errors
name the file, and returned as written for `xnatfs.config.build_config` to parse.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xnatfs.config import (
    OPTIONS,
    OptionSpec,
    parse_bool,
    parse_id,
    parse_positive_int,
    parse_seconds,
    parse_size,
)
from xnatfs.errors import ConfigError

# Keys that would put a secret into a file that is usually world-readable.
SECRET_KEYS = frozenset(
    {"password", "passwd", "pass", "secret", "token", "alias_token", "api_key", "apikey"}
)

_BY_NAME: dict[str, OptionSpec] = {o.name: o for o in OPTIONS}
_PATH_KEYS = frozenset({"mountpoint"} | {o.name for o in OPTIONS if o.parse is Path})


_TYPE_NAMES: dict[type, str] = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "an array",
    dict: "a table",
}


def _allowed_types(spec: OptionSpec) -> tuple[type, ...]:
    """The TOML value types that make sense for an option (its parser gets them raw)."""
    if spec.flag or spec.parse is parse_bool:
        return (bool, str)
    if spec.parse is parse_seconds:
        return (int, float, str)
    if spec.parse in (parse_size, parse_positive_int, parse_id):
        return (int, str)
    return (str,)


def _type_name(value: object) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _expand_path(key: str, value: str, base: Path, where: str) -> str:
    """`~` expands to the home directory; a relative path is relative to the config file.

    Mount units and system services have no HOME, so `~` there is an error rather than a
    path below `/`.
    """
    if value.startswith("~"):
        if value != "~" and not value.startswith("~/"):
            raise ConfigError(f"{where}: {key}: only ~/ is supported, not {value!r}")
        home = os.environ.get("HOME")
        if not home:
            raise ConfigError(f"{where}: {key}: {value!r} uses ~ but HOME is not set")
        value = home + value[1:]
    path = Path(value)
    if not path.is_absolute():
        path = base / path
    return str(path)


def _canonical(key: str) -> str:
    return key.replace("-", "_")


def load_config_file(path: Path) -> tuple[str | None, str | None, dict[str, Any]]:
    """Read `path`; return `(url, mountpoint, options)`.

    `options` maps option names (underscored) to their raw TOML values (str, int, float or
    bool), to be parsed by `build_config`; command-line values are meant to override them.
    Paths (`mountpoint`, `cache_dir`, `password_file`, `netrc`) are returned absolute: `~/`
    is the home directory, and relative paths are relative to the file's directory.

    Raises ConfigError, with the file name in the message, when the file cannot be read, is
    not valid TOML, has an unknown key (named), a key given twice (`cache-size` and
    `cache_size`), a value of the wrong type (named), a value its option refuses, or a
    password-like key (pointing to `password_file` and systemd `LoadCredential=`).
    """
    where = str(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {where}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None

    base = path.parent.absolute()
    url: str | None = None
    mountpoint: str | None = None
    options: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for raw_key, value in data.items():
        key = _canonical(raw_key)
        if key in seen:
            raise ConfigError(f"{where}: {raw_key!r} repeats {seen[key]!r}")
        seen[key] = raw_key
        if key.lower() in SECRET_KEYS:
            raise ConfigError(
                f"{where}: {raw_key!r} is not allowed: a config file must not hold a password; "
                "use password_file (a mode 0600 file), XNATFS_PASSWORD, a netrc file, or "
                "systemd LoadCredential=xnatfs-password:/etc/xnatfs/NAME.password"
            )
        if key in ("url", "mountpoint"):
            if not isinstance(value, str):
                raise ConfigError(f"{where}: {raw_key} must be a string, not {_type_name(value)}")
            if key == "url":
                url = value
            else:
                mountpoint = _expand_path(key, value, base, where)
            continue
        spec = _BY_NAME.get(key)
        if spec is None:
            raise ConfigError(f"{where}: unknown key {raw_key!r} (known: {_known_keys()})")
        allowed = _allowed_types(spec)
        # bool is an int in Python; `cache_size = true` is still the wrong type.
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            wanted = " or ".join(_TYPE_NAMES[t] for t in allowed)
            raise ConfigError(f"{where}: {raw_key} must be {wanted}, not {_type_name(value)}")
        if key in _PATH_KEYS and isinstance(value, str):
            value = _expand_path(key, value, base, where)
        _check_value(spec.parse, key, value, where)
        options[key] = value
    return url, mountpoint, options


def _check_value(parse: Callable[[Any], Any], key: str, value: Any, where: str) -> None:
    try:
        parse(value)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {key}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {key}: {exc}") from None


def _known_keys() -> str:
    return ", ".join(["url", "mountpoint", *(o.name for o in OPTIONS)])
