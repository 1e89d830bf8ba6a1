"""The credentials the client sends: a user name and a password (or alias token and secret).

Where they come from (systemd credential, password file, environment, netrc) is decided in
`xnatfs.app.credentials`; this package only uses them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Credentials:
    """A user name and its password (or alias token and secret). The password is never shown."""

    user: str
    password: str = field(repr=False)
