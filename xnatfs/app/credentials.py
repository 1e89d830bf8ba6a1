"""Where the XNAT user name and password come from (never from the command line).

`resolve_credentials` reads, in this order, the first password source that is present:

1. `$CREDENTIALS_DIRECTORY/xnatfs-password` (systemd `LoadCredential=xnatfs-password:...`);
2. the file named by `--password-file`, which must not be accessible by group or others;
3. the environment variable `XNATFS_PASSWORD`;
4. a netrc file: `netrc_path` (`--netrc`), else `$NETRC`, else `~/.netrc` when HOME is set.
   The entry is looked up as `machine host:port` first (only when the URL names a port), then
   `machine host`, then the netrc `default` entry.

A password file holds the password on its first line; the line break is dropped, nothing else
(spaces and `:` are part of the password). It never holds the user name.

The user name is `user` (`--user`), else `XNATFS_USER`, else, when the password comes from netrc,
that entry's `login`. With an explicit user name, a netrc entry for a different login is not used.
No password and no user name means anonymous access (None). A user name without any password is
a configuration error, and so is a password without a user name.

Alias tokens work the same way: the alias is the user name and the secret is the password.
"""

from __future__ import annotations

import ipaddress
import logging
import netrc
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from xnatfs.errors import ConfigError
from xnatfs.xnat.auth import Credentials

log = logging.getLogger(__name__)

SYSTEMD_CREDENTIAL = "xnatfs-password"


def resolve_credentials(
    url: str,
    *,
    user: str | None,
    password_file: Path | None,
    netrc_path: Path | None,
    environ: Mapping[str, str] = os.environ,
) -> Credentials | None:
    """The credentials to use for `url`, or None for anonymous access (see the module docstring).

    Raises ConfigError (one line, never containing a password) for an unreadable or too open
    password file, a missing explicitly named netrc file, an unparsable netrc, or a user name
    without a password and vice versa.
    """
    user = user or environ.get("XNATFS_USER") or None
    password, source = _password_from_files(password_file, environ)
    if password is None:
        env_password = environ.get("XNATFS_PASSWORD")
        if env_password:
            password, source = env_password, "XNATFS_PASSWORD"
    if password is None:
        entry = _netrc_entry(url, user, netrc_path, environ)
        if entry is not None:
            login, password, source = entry
            user = user or login or None
    if password is None:
        if user is not None:
            raise ConfigError(
                f"no password for user {user!r}: set XNATFS_PASSWORD, use --password-file "
                "or add a netrc entry"
            )
        return None
    if user is None:
        raise ConfigError(
            f"a password was found in {source} but no user name: use --user or set XNATFS_USER"
        )
    return Credentials(user=user, password=password)


def cleartext_warning(url: str, credentials: Credentials | None) -> str | None:
    """The warning a mount of `url` with `credentials` deserves: a password sent over plain
    `http://` to another machine can be read on the way (every request carries it). None for
    https, for anonymous access, and for loopback addresses (`localhost`, 127.0.0.0/8, ::1),
    whose traffic never leaves the machine."""
    parts = urlsplit(url)
    if credentials is None or parts.scheme != "http":
        return None
    host = (parts.hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass  # a name, not an address: it may be anywhere
    return (
        f"the password for {url} is sent unencrypted (http://): anyone on the network path "
        "can read it; use https:// unless that network is yours"
    )


def _password_from_files(
    password_file: Path | None, environ: Mapping[str, str]
) -> tuple[str | None, str]:
    cred_dir = environ.get("CREDENTIALS_DIRECTORY")
    if cred_dir:
        path = Path(cred_dir) / SYSTEMD_CREDENTIAL
        if path.exists():
            # systemd keeps credentials in a private directory readable only by the service.
            return _read_first_line(path), str(path)
    if password_file is not None:
        _refuse_open_permissions(password_file)
        return _read_first_line(password_file), str(password_file)
    return None, ""


def _refuse_open_permissions(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigError(f"cannot read password file {path}: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        raise ConfigError(f"password file {path} is not a regular file")
    if mode & 0o077:
        raise ConfigError(
            f"password file {path} is accessible by group or others "
            f"(mode {stat.S_IMODE(mode):04o}); run: chmod 600 {path}"
        )


def _read_first_line(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read password file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"password file {path} is not UTF-8 text") from None
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise ConfigError(f"password file {path} is empty (the password goes on the first line)")
    return lines[0]


def _netrc_file(netrc_path: Path | None, environ: Mapping[str, str]) -> Path | None:
    """The netrc file to read; a file named explicitly must exist, `~/.netrc` need not."""
    explicit = netrc_path or (Path(environ["NETRC"]) if environ.get("NETRC") else None)
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"netrc file not found: {explicit}")
        return explicit
    home = environ.get("HOME")
    if home:
        default = Path(home) / ".netrc"
        if default.is_file():
            return default
    return None


def _netrc_entry(
    url: str, user: str | None, netrc_path: Path | None, environ: Mapping[str, str]
) -> tuple[str, str, str] | None:
    """(login, password, source) from the netrc entry for `url`'s host, or None."""
    path = _netrc_file(netrc_path, environ)
    if path is None:
        return None
    try:
        parsed = netrc.netrc(str(path))
    except netrc.NetrcParseError as exc:
        # Not exc.msg: it quotes the token it stumbled on, which may be a password.
        raise ConfigError(f"cannot parse netrc file {path} (line {exc.lineno})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read netrc file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"netrc file {path} is not UTF-8 text") from None
    if os.stat(path).st_mode & 0o077:
        log.warning("netrc file %s is accessible by group or others; consider chmod 600", path)
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    candidates = [f"{host}:{parts.port}"] if parts.port else []
    candidates += [host, "default"]
    for machine in candidates:
        entry = parsed.hosts.get(machine)
        if entry is None:
            continue
        login, _account, password = entry
        if not password:
            continue
        if user is not None and login and login != user:
            continue
        return login, password, f"netrc file {path} (machine {machine})"
    return None
