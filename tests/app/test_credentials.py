"""Where credentials come from, in which order, and what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from xnatfs.app.credentials import cleartext_warning, resolve_credentials
from xnatfs.errors import ConfigError
from xnatfs.xnat.auth import Credentials

URL = "https://xnat.example.org:8443/xnat"


def secret_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def resolve(
    env: dict[str, str],
    *,
    url: str = URL,
    user: str | None = None,
    password_file: Path | None = None,
    netrc_path: Path | None = None,
) -> Credentials | None:
    return resolve_credentials(
        url, user=user, password_file=password_file, netrc_path=netrc_path, environ=env
    )


def test_nothing_configured_is_anonymous(tmp_path: Path) -> None:
    assert resolve({"HOME": str(tmp_path)}) is None
    assert resolve({}) is None


def test_environment_password_with_user_from_env_or_option() -> None:
    env = {"XNATFS_USER": "alice", "XNATFS_PASSWORD": "s3cret"}
    assert resolve(env) == Credentials("alice", "s3cret")
    assert resolve(env, user="bob") == Credentials("bob", "s3cret")


def test_password_never_in_repr() -> None:
    creds = Credentials("alice", "s3cret-value")
    assert "s3cret-value" not in repr(creds)
    assert "alice" in repr(creds)


def test_order_credentials_directory_then_file_then_env_then_netrc(tmp_path: Path) -> None:
    cred_dir = tmp_path / "creds"
    cred_dir.mkdir()
    secret_file(cred_dir / "xnatfs-password", "from-systemd\n")
    pw_file = secret_file(tmp_path / "pw", "from-file\n")
    netrc = secret_file(
        tmp_path / "netrc", "machine xnat.example.org login alice password from-netrc\n"
    )
    env = {
        "CREDENTIALS_DIRECTORY": str(cred_dir),
        "XNATFS_PASSWORD": "from-env",
        "HOME": str(tmp_path),
    }

    def got(env: dict[str, str], pw: Path | None) -> str:
        creds = resolve(env, user="alice", password_file=pw, netrc_path=netrc)
        assert creds is not None
        return creds.password

    assert got(env, pw_file) == "from-systemd"
    del env["CREDENTIALS_DIRECTORY"]
    assert got(env, pw_file) == "from-file"
    assert got(env, None) == "from-env"
    del env["XNATFS_PASSWORD"]
    assert got(env, None) == "from-netrc"


def test_credentials_directory_without_the_file_falls_through(tmp_path: Path) -> None:
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path), "XNATFS_PASSWORD": "pw", "XNATFS_USER": "u"}
    assert resolve(env) == Credentials("u", "pw")


def test_password_file_first_line_only_newline_stripped(tmp_path: Path) -> None:
    pw = secret_file(tmp_path / "pw", " pass:with colon \r\nsecond line\n")
    assert resolve({}, user="u", password_file=pw) == Credentials("u", " pass:with colon ")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_password_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    pw = secret_file(tmp_path / "pw", "topsecret\n", mode)
    with pytest.raises(ConfigError) as info:
        resolve({}, user="u", password_file=pw)
    message = str(info.value)
    assert "chmod 600" in message and str(pw) in message
    assert "topsecret" not in message
    assert "\n" not in message


def test_missing_or_empty_password_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read password file"):
        resolve({}, user="u", password_file=tmp_path / "nope")
    empty = secret_file(tmp_path / "empty", "\n")
    with pytest.raises(ConfigError, match="empty"):
        resolve({}, user="u", password_file=empty)


def test_netrc_host_with_port_wins_over_host(tmp_path: Path) -> None:
    netrc = secret_file(
        tmp_path / "netrc",
        "machine xnat.example.org login plain password host-only\n"
        "machine xnat.example.org:8443 login ported password with-port\n",
    )
    assert resolve({}, netrc_path=netrc) == Credentials("ported", "with-port")
    other_port = "https://xnat.example.org:9999/"
    assert resolve({}, url=other_port, netrc_path=netrc) == Credentials("plain", "host-only")
    no_port = "https://XNAT.example.org/"
    assert resolve({}, url=no_port, netrc_path=netrc) == Credentials("plain", "host-only")


def test_netrc_default_entry_and_unknown_host(tmp_path: Path) -> None:
    netrc = secret_file(tmp_path / "netrc", "machine other.org login o password p\n")
    assert resolve({}, netrc_path=netrc) is None
    netrc.write_text("machine other.org login o password p\ndefault login d password dp\n")
    assert resolve({}, netrc_path=netrc) == Credentials("d", "dp")


def test_netrc_from_env_var_and_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    secret_file(home / ".netrc", "machine xnat.example.org login h password home-pw\n")
    via_env = secret_file(tmp_path / "n2", "machine xnat.example.org login e password env-pw\n")
    assert resolve({"HOME": str(home)}) == Credentials("h", "home-pw")
    assert resolve({"HOME": str(home), "NETRC": str(via_env)}) == Credentials("e", "env-pw")


def test_explicit_netrc_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="netrc file not found"):
        resolve({}, netrc_path=tmp_path / "missing")
    with pytest.raises(ConfigError, match="netrc file not found"):
        resolve({"NETRC": str(tmp_path / "missing")})


def test_netrc_entry_of_another_login_is_not_used(tmp_path: Path) -> None:
    netrc = secret_file(tmp_path / "netrc", "machine xnat.example.org login alice password a\n")
    assert resolve({}, user="alice", netrc_path=netrc) == Credentials("alice", "a")
    with pytest.raises(ConfigError, match="no password for user 'bob'"):
        resolve({}, user="bob", netrc_path=netrc)


def test_unparsable_netrc_is_a_one_line_error(tmp_path: Path) -> None:
    netrc = secret_file(tmp_path / "netrc", "bogus xnat.example.org\n")
    with pytest.raises(ConfigError, match="cannot parse netrc") as info:
        resolve({}, netrc_path=netrc)
    assert "\n" not in str(info.value)


def test_password_without_user_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no user name") as info:
        resolve({"XNATFS_PASSWORD": "hunter2"})
    assert "hunter2" not in str(info.value)


def test_empty_env_password_counts_as_unset() -> None:
    assert resolve({"XNATFS_PASSWORD": ""}) is None


@pytest.mark.parametrize(
    ("url", "warned"),
    [
        ("http://xnat.example.org", True),
        ("http://10.0.0.5:8080/xnat", True),
        ("https://xnat.example.org", False),
        ("http://localhost:8080", False),
        ("http://127.0.0.1:8080", False),
        ("http://127.1.2.3", False),
        ("http://[::1]:8080", False),
    ],
)
def test_a_password_over_plain_http_is_warned_about(url: str, warned: bool) -> None:
    alice = Credentials("alice", "secret-value")
    message = cleartext_warning(url, alice)
    assert (message is not None) == warned
    if message is not None:
        assert url in message and "secret-value" not in message
    assert cleartext_warning(url, None) is None
