"""Mount options: one table, and one parser that every place options are written in goes through.

The command line (`--cache-size 10G`), mount options (`-o cache_size=10G`, fstab lines, the
`mount.fuse.xnatfs` helper) and TOML files (`cache_size = "10G"`) all hand each value to
`parse_option`, so a value is accepted or refused, with the same message, wherever it is
written; the message names the place (an `Origin`). `build_config` turns parsed values into a
`MountConfig`, the settings the composition root (`xnatfs.app.mount`) builds a mount from, and
`Tunables` holds the internal sizes and intervals a mount uses. This module does no I/O.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xnatfs.config.values import (
    default_cache_root,
    normalize_url,
    parse_bool,
    parse_id,
    parse_mode,
    parse_positive_int,
    parse_prefetch,
    parse_project,
    parse_seconds,
    parse_selectors,
    parse_size,
    server_dir_name,
)
from xnatfs.errors import ConfigError

_PARSER_TYPES: dict[Callable[[Any], Any], tuple[type, ...]] = {
    parse_bool: (bool, str),
    parse_seconds: (int, float, str),
    parse_size: (int, str),
    parse_positive_int: (int, str),
    parse_id: (int, str),
}


@dataclass(frozen=True)
class OptionSpec:
    """One key a place of options may hold, named as in TOML and `-o` (`--name-with-dashes` on
    the command line).

    `parse` turns a value as written into the value used, raising ConfigError (or TypeError,
    ValueError) for a bad one; `flag` marks a switch, which takes no value on the command line
    and may stand bare in `-o`. A `repeat` option takes several values, each parsed by `parse`,
    and its value is the tuple of them: written once per value on the command line
    (`--project A --project B`) and in `-o` (`project=A,project=B`), as a string or an array
    in TOML (`project = ["A", "B"]`).
    """

    name: str
    parse: Callable[[Any], Any]
    help: str
    flag: bool = False
    repeat: bool = False

    @property
    def types(self) -> tuple[type, ...]:
        """The value types `parse` takes (strings always; TOML also has booleans and numbers,
        and arrays for repeated options)."""
        types = _PARSER_TYPES.get(self.parse, (str,))
        return (*types, list) if self.repeat else types

    @property
    def is_path(self) -> bool:
        """Whether the value is a file-system path (made absolute where it is read)."""
        return self.parse is Path


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
    OptionSpec("file_mode", parse_mode, "permissions of files, before umask (default 0444)"),
    OptionSpec("dir_mode", parse_mode, "permissions of directories, before umask (default 0555)"),
    OptionSpec("umask", parse_mode, "permission bits taken away, e.g. 0027 (default 0)"),
    OptionSpec("debug", parse_bool, "log every request (never credentials)", flag=True),
    OptionSpec("prefetch", parse_prefetch, "series prefetch: auto, zip, parallel or off"),
    OptionSpec("connect_timeout", parse_seconds, "seconds to wait for a connection (default 10)"),
    OptionSpec("read_timeout", parse_seconds, "seconds to wait for the next byte (default 30)"),
    OptionSpec("retries", parse_id, "attempts after a failed request (default 4)"),
    OptionSpec(
        "selectors",
        parse_selectors,
        "ALL and type directories: listed (default) or hidden (still reachable by name)",
    ),
    OptionSpec("allow_non_empty", parse_bool, "mount over a directory that has entries", flag=True),
    OptionSpec(
        "metadata_cache_size",
        parse_size,
        "memory for cached listings, e.g. 256M (default 256M)",
    ),
    OptionSpec(
        "metadata_disk_size",
        parse_size,
        "disk space for listings kept across mounts, e.g. 1G (default 1G; 0: none)",
    ),
    OptionSpec(
        "walk_ahead",
        parse_id,
        "listings fetched ahead of a walk such as find or du (default 4096; 0: off)",
    ),
    OptionSpec(
        "offline", parse_bool, "no requests at all: browse and read what is on disk", flag=True
    ),
    OptionSpec(
        "project",
        parse_project,
        "mount only this project (by ID); give it again for more (default: every project)",
        repeat=True,
    ),
    OptionSpec("log_file", Path, "write the log to FILE (default: stderr; background: a file)"),
    OptionSpec(
        "max_listing_size", parse_size, "largest directory listing, once inflated (default 128M)"
    ),
    OptionSpec("max_listing_rows", parse_positive_int, "most rows of one listing (default 500000)"),
)

# Keys that are not mount options but that some places hold as well.
URL = OptionSpec("url", str, "XNAT base URL (may include a context path)")
MOUNTPOINT = OptionSpec("mountpoint", Path, "an empty directory")
CONFIG = OptionSpec("config", Path, "TOML file with url, mountpoint and options")

# Keys that would put a secret where others can read it: command lines and mount options are
# visible in ps, and config files are often world-readable.
SECRET_KEYS = frozenset(
    {"password", "passwd", "pass", "secret", "token", "alias_token", "api_key", "apikey"}
)

_BY_NAME: dict[str, OptionSpec] = {o.name: o for o in OPTIONS}

_TYPE_NAMES: dict[type, str] = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "an array",
    dict: "a table",
}


@dataclass(frozen=True)
class Origin:
    """A place options are written in, as error messages name it.

    `term` is what a key is called there ("key" in a TOML file, "mount option" in `-o`);
    `file`, when the place is a file, starts every message; `keys` are what the place holds
    besides `OPTIONS` (a TOML file's `url` and `mountpoint`, `-o config=`).
    """

    term: str
    file: str | None = None
    keys: tuple[OptionSpec, ...] = ()

    def error(self, text: str) -> ConfigError:
        """A ConfigError whose message starts with the file name, if any."""
        return ConfigError(f"{self.file}: {text}" if self.file else text)


COMMAND_LINE = Origin("command-line option")
MOUNT_OPTIONS = Origin("mount option", keys=(CONFIG,))


def config_file(path: str | os.PathLike[str]) -> Origin:
    """The origin of the keys of the TOML file `path`."""
    return Origin("key", os.fspath(path), keys=(URL, MOUNTPOINT))


def canonical(key: str) -> str:
    """`cache-size`, `cache_size` -> `cache_size`."""
    return key.replace("-", "_")


def option_spec(key: str, origin: Origin = COMMAND_LINE) -> OptionSpec | None:
    """The spec of `key` (any spelling) among `OPTIONS` and `origin.keys`, or None."""
    name = canonical(key)
    return _BY_NAME.get(name) or next((k for k in origin.keys if k.name == name), None)


def refuse_secret(key: str, origin: Origin) -> None:
    """Raise ConfigError when `key` (any spelling, `--password` too) would hold a password; the
    message points to where passwords go instead and never repeats a value."""
    if canonical(key.lstrip("-")).lower() in SECRET_KEYS:
        # The password file as this place spells it.
        password_file = "--password-file FILE" if origin is COMMAND_LINE else "password_file"
        raise origin.error(
            f"{origin.term} {key!r} is not allowed: passwords never go into command lines, mount "
            "options or config files, which others can read (ps, world-readable files); use "
            f"{password_file} (a file of mode 0600), a netrc file, XNATFS_PASSWORD, or systemd "
            "LoadCredential=xnatfs-password:/etc/xnatfs/NAME.password"
        )


def _check_type(key: str, raw: object, spec: OptionSpec, origin: Origin) -> None:
    """Raise ConfigError unless `raw` is one of `spec.types` (a boolean is not a number)."""
    # bool is an int in Python; `cache_size = true` is still the wrong type.
    if not isinstance(raw, spec.types) or (isinstance(raw, bool) and bool not in spec.types):
        wanted = " or ".join(_TYPE_NAMES[t] for t in spec.types)
        got = _TYPE_NAMES.get(type(raw), type(raw).__name__)
        raise origin.error(f"{origin.term} {key} must be {wanted}, not {got}")


def parse_option(key: str, raw: object, origin: Origin) -> Any:
    """Parse the value `raw` of option `key` as written in `origin`; return the value to use.

    `key` may be spelt with dashes or underscores (`cache-size`, `cache_size`) and is named in
    messages as written. `raw` is a string (command line, `-o`), a TOML value (str, int, float,
    bool), or None for a key given without a value (`-o allow_other`): a switch is then on, any
    other option refused. The keys of `origin.keys` are parsed the same way. A path comes back
    as a `Path`, as written (making it absolute is the place's business).

    Raises ConfigError, its message naming the key and the place (a TOML file's name, "mount
    option", "command-line option"), for a password-like key, an unknown key (listing the
    known ones), a missing value, a value of the wrong type, or a value the option refuses
    (the parser's own message follows the key, e.g. `cache_size: not a size: 'lots'`).
    """
    refuse_secret(key, origin)
    spec = option_spec(key, origin)
    if spec is None:
        known = ", ".join(k.name for k in (*origin.keys, *OPTIONS))
        raise origin.error(f"unknown {origin.term} {key!r} (known: {known})")
    if raw is None:
        if spec.flag:
            return True
        raise origin.error(f"{origin.term} {key!r} needs a value")
    _check_type(key, raw, spec, origin)
    values = raw if isinstance(raw, list | tuple) else [raw]
    if spec.repeat:
        for item in values:
            _check_type(key, item, dataclasses.replace(spec, repeat=False), origin)
    try:
        if spec.repeat:
            return tuple(spec.parse(item) for item in values)
        return spec.parse(raw)
    except (ConfigError, TypeError, ValueError) as exc:
        raise origin.error(f"{origin.term} {key}: {exc}") from None


@dataclass(frozen=True)
class MountConfig:
    """Everything a mount is built from: the URL, the mount point and the parsed options.

    Sizes are in bytes, times in seconds; None means "not given" (the documented default).
    Build one with `build_config`, which parses and checks the values.
    """

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
    file_mode: int = 0o444
    dir_mode: int = 0o555
    umask: int = 0
    debug: bool = False
    prefetch: str = "auto"
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    retries: int = 4
    selectors: str = "listed"
    allow_non_empty: bool = False
    metadata_cache_size: int = 256 * 1024**2
    metadata_disk_size: int = 1024**3
    walk_ahead: int = 4096
    offline: bool = False
    project: tuple[str, ...] = ()  # only these projects; () for every one
    log_file: Path | None = None
    max_listing_size: int = 128 * 1024**2
    max_listing_rows: int = 500_000

    @property
    def effective_cache_dir(self) -> Path:
        """The directory holding this server's cache entries."""
        if self.cache_dir is not None:
            return self.cache_dir
        return default_cache_root() / server_dir_name(self.url)


def build_config(url: str, mountpoint: str | Path, values: Mapping[str, Any]) -> MountConfig:
    """A `MountConfig` from `url`, `mountpoint` and option values as written (name -> value).

    Every value goes through `parse_option` as a command-line option: values merged in from a
    TOML file or `-o` were parsed where they were read, with that place named, so only the
    command line's own can fail here. Raises ConfigError for a bad value or URL
    (`normalize_url`).
    """
    parsed = {canonical(k): parse_option(k, raw, COMMAND_LINE) for k, raw in values.items()}
    return MountConfig(url=normalize_url(url), mountpoint=Path(mountpoint), **parsed)


@dataclass(frozen=True)
class Tunables:
    """The internal sizes and intervals of a mount: not options, but kept together here so they
    are seen, tested and changed in one place. The defaults are those of the constructors they
    are passed to; `for_mount` derives the ones that depend on the mount's options.
    """

    chunk_size: int = 256 * 1024  # bytes a download hands on at a time
    disk_threads: int = 2  # worker threads that may fsync finished downloads at once
    stats_interval: float = 5.0  # seconds between writes of the cache's stats.json
    prefetch_window: float = 2.0  # seconds between two misses in a listing that start a prefetch
    prefetch_lead: int = 4  # files ahead of a bulk download's position that it keeps
    prefetch_max_bytes: int = 2 * 1024**3  # bytes one prefetch may claim
    prefetch_max_files: int = 4096  # files one prefetch may claim (each holds a descriptor)
    prefetch_max_file: int = 64 * 1024**2  # larger files are left to their own streamed GET
    prefetch_parallel: int = 4  # single downloads at a time in `prefetch = parallel`

    @classmethod
    def for_mount(cls, cfg: MountConfig, fd_limit: int) -> Tunables:
        """The tunables of a mount of `cfg` in a process allowed `fd_limit` open files.

        A prefetch claims at most half the cache size (and never more than the default), at
        most a quarter of `fd_limit` files (at least 16; each claimed file holds a descriptor),
        and runs half of `max_connections` single downloads at a time (at least 1).
        """
        base = cls()
        return dataclasses.replace(
            base,
            prefetch_max_bytes=min(base.prefetch_max_bytes, cfg.cache_size // 2),
            prefetch_max_files=max(16, fd_limit // 4),
            prefetch_parallel=max(1, cfg.max_connections // 2),
        )
