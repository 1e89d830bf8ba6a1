"""Read a mount's TOML configuration file (`/etc/xnatfs/NAME.toml`, `~/.config/xnatfs/NAME.toml`).

The file holds `url`, `mountpoint` and any option of `xnatfs.config.OPTIONS` by name
(`cache_size` or `cache-size`). It never holds a password: the systemd unit passes one with
`LoadCredential=`, or the file names a `password_file`. Every key goes through
`xnatfs.config.parse_option` when the file is read, so errors name the file; what this module
adds is what only a file has: TOML syntax, a key given twice, and paths relative to the file.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from xnatfs.config import Origin, canonical, config_file, option_spec, parse_option
from xnatfs.errors import ConfigError


def _expand_path(key: str, value: str, base: Path, origin: Origin) -> str:
    """`~` expands to the home directory; a relative path is relative to the config file.

    Mount units and system services have no HOME, so `~` there is an error rather than a
    path below `/`.
    """
    if value.startswith("~"):
        if value != "~" and not value.startswith("~/"):
            raise origin.error(f"{key}: only ~/ is supported, not {value!r}")
        home = os.environ.get("HOME")
        if not home:
            raise origin.error(f"{key}: {value!r} uses ~ but HOME is not set")
        value = home + value[1:]
    path = Path(value)
    if not path.is_absolute():
        path = base / path
    return str(path)


def load_config_file(path: Path) -> tuple[str | None, str | None, dict[str, Any]]:
    """Read `path`; return `(url, mountpoint, options)`.

    `options` maps option names (underscored) to their TOML values as written (str, int, float
    or bool), checked already, for `build_config`; command-line values are meant to override
    them. Paths (`mountpoint`, `cache_dir`, `password_file`, `netrc`) are returned absolute:
    `~/` is the home directory, and relative paths are relative to the file's directory.

    Raises ConfigError, with the file name in the message, when the file cannot be read, is
    not valid TOML, has a key given twice (`cache-size` and `cache_size`), or a key that
    `parse_option` refuses: unknown (named), password-like (pointing to `password_file` and
    systemd `LoadCredential=`), of the wrong type, or with a value its option refuses.
    """
    origin = config_file(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise origin.error(f"not valid TOML: {exc}") from None

    base = path.parent.absolute()
    values: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for raw_key, value in data.items():
        key = canonical(raw_key)
        if key in seen:
            raise origin.error(f"{raw_key!r} repeats {seen[key]!r}")
        seen[key] = raw_key
        parse_option(raw_key, value, origin)
        spec = option_spec(key, origin)
        if spec is not None and spec.is_path:
            value = _expand_path(key, value, base, origin)
        values[key] = value
    url = values.pop("url", None)
    mountpoint = values.pop("mountpoint", None)
    return url, mountpoint, values
