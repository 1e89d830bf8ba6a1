"""Mount options (`-o key=value,...`) as fstab, mount(8) and `xnatfs mount -o` write them.

`translate_options` turns them into `xnatfs mount` command-line options, for `xnatfs mount -o`
and for the `mount.fuse.xnatfs` helper alike. Each value is checked by
`xnatfs.config.parse_option` (so a mistake fails here, naming the mount option) and passed on
as written; what this module adds is what only mount options have: libmount's quoting, the
generic options of mount(8) that are not ours, `rw`, and bare switches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xnatfs.config import MOUNT_OPTIONS, canonical, option_spec, parse_option, refuse_secret
from xnatfs.errors import ConfigError

# Generic mount(8)/fstab options that are not xnatfs options. A FUSE mount is always nodev and
# nosuid, and xnatfs is read-only and shows no executable files, so none of these change
# anything; they are accepted so ordinary fstab lines work.
IGNORED_OPTIONS = frozenset(
    {
        "ro",
        "_netdev",
        "nofail",
        "noauto",
        "auto",
        "user",
        "users",
        "nouser",
        "owner",
        "group",
        "defaults",
        "nodev",
        "nosuid",
        "noexec",
        "exec",
        "dev",
        "suid",
        "async",
        "atime",
        "noatime",
        "relatime",
        "norelatime",
        "strictatime",
        "nostrictatime",
        "lazytime",
        "nolazytime",
        "diratime",
        "nodiratime",
    }
)
# Userspace-only options (systemd's `x-systemd.*`, `x-mount.*`, `comment=`): meant for other
# programs, never for the filesystem.
IGNORED_PREFIXES = ("x-", "X-", "comment=")


@dataclass(frozen=True)
class Translation:
    """`-o` options translated: `args` for `xnatfs mount`, `skipped` unknown options (with -s)."""

    args: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    # `rw` was given (mount(8) adds it whenever `ro` is not): the mount is read-only anyway.
    wanted_rw: bool = False


def split_options(text: str) -> list[str]:
    """Split `a,b=c,d="x,y"` at commas outside double quotes (libmount's quoting); drop quotes.

    Raises ConfigError for an unbalanced quote.
    """
    items: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(ch)
    if quoted:
        raise ConfigError(f"unbalanced quote in mount options: {text}")
    items.append("".join(current))
    return [item for item in (i.strip() for i in items) if item]


def translate_options(
    text: str, *, sloppy: bool = False, absolute_paths: bool = False
) -> Translation:
    """Translate mount options (`-o` text) into `xnatfs mount` options.

    `cache_size=10G` or `cache-size=10G` -> `--cache-size=10G`; a switch (`allow_other`,
    `allow_other=yes`) -> `--allow-other`, and `allow_other=no` -> nothing; `config=FILE` ->
    `--config=FILE`. With `absolute_paths` (the helper's case: mount units have no working
    directory or HOME) path values must be absolute. The options of `IGNORED_OPTIONS` and
    `x-*` are dropped.

    `rw` (which mount(8) passes whenever `ro` is not given, so every fstab line written the
    usual way has it) is accepted and noted in `wanted_rw`: the mount is read-only anyway.

    Raises ConfigError for whatever `parse_option` refuses: password-like options, a missing or
    refused value, and unknown options (unless `sloppy`, which skips them and lists them in
    `skipped`).
    """
    args: list[str] = []
    skipped: list[str] = []
    wanted_rw = False
    for item in split_options(text):
        raw_key, _, value = item.partition("=")
        key = canonical(raw_key)
        if item in IGNORED_OPTIONS or item.startswith(IGNORED_PREFIXES):
            continue
        if key == "rw":
            wanted_rw = True
            continue
        # Before the sloppy skip: a password is refused even among unknown options.
        refuse_secret(raw_key, MOUNT_OPTIONS)
        spec = option_spec(key, MOUNT_OPTIONS)
        if spec is None and sloppy:
            skipped.append(item)
            continue
        # `key` and `key=` both leave the value out: a switch is on, anything else refused.
        parsed = parse_option(raw_key, value or None, MOUNT_OPTIONS)
        assert spec is not None  # parse_option refused an unknown key
        dashed = "--" + key.replace("_", "-")
        if spec.flag:
            if parsed:
                args.append(dashed)
            continue
        if absolute_paths and spec.is_path and not value.startswith("/"):
            raise ConfigError(
                f"mount option {raw_key}: {value!r} must be an absolute path "
                "(mount(8) and systemd mount units have no working directory or HOME)"
            )
        args.append(f"{dashed}={value}")
    return Translation(args=args, skipped=skipped, wanted_rw=wanted_rw)
