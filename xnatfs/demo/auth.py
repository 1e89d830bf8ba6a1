"""Users, HTTP sessions (JSESSIONID) and alias tokens of the demo server (reference §6).

Thread-safe. Sessions expire after `expiry` idle seconds (the caller passes the current value of
`Faults.session_expiry`); an expired session is forgotten, so its cookie is then as good as an
unknown one. Secrets are compared in constant time and never logged.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import string
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

TOKEN_LIFETIME = 2 * 24 * 3600.0  # XNAT's default alias token lifetime: "2 days"


@dataclass
class _Session:
    user: str
    last_access: float


@dataclass
class _Token:
    secret: str
    user: str
    created: float
    valid: bool = True


class AuthStore:
    def __init__(self, users: Mapping[str, str]) -> None:
        self._users = dict(users)
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}
        self._tokens: dict[str, _Token] = {}

    # --- credentials ----------------------------------------------------------------------------

    def check(self, username: str, password: str) -> str | None:
        """The user these credentials log in, or None. Accepts alias:secret token pairs."""
        with self._lock:
            expected = self._users.get(username)
            token = self._tokens.get(username)
        if expected is not None and hmac.compare_digest(expected, password):
            return username
        if (
            token is not None
            and token.valid
            and hmac.compare_digest(token.secret, password)
            and time.time() - token.created < TOKEN_LIFETIME
        ):
            return token.user
        return None

    @staticmethod
    def parse_basic(header: str | None) -> tuple[str, str] | None:
        """(user, password) from an `Authorization: Basic ...` header; None if absent/invalid."""
        if not header or header[:6].lower() != "basic ":
            return None
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
        user, sep, password = decoded.partition(":")
        return (user, password) if sep else None

    # --- sessions -------------------------------------------------------------------------------

    def new_session(self, user: str) -> str:
        sid = secrets.token_hex(16).upper()
        with self._lock:
            self._sessions[sid] = _Session(user, time.monotonic())
        return sid

    def session_user(self, sid: str, expiry: float | None) -> str | None:
        """The user of a live session (and mark it used now); None if unknown or expired."""
        now = time.monotonic()
        with self._lock:
            session = self._sessions.get(sid)
            if session is None:
                return None
            if expiry is not None and now - session.last_access > expiry:
                del self._sessions[sid]
                return None
            session.last_access = now
            return session.user

    def drop_session(self, sid: str) -> None:
        with self._lock:
            self._sessions.pop(sid, None)

    def session_count(self) -> int:
        with self._lock:
            return len(self._sessions)

    # --- alias tokens ---------------------------------------------------------------------------

    def issue_token(self, user: str) -> dict[str, object]:
        """A new alias token for `user`, as the JSON map XNAT returns."""
        alias = str(uuid.uuid4())
        alphabet = string.ascii_letters + string.digits
        secret = "".join(secrets.choice(alphabet) for _ in range(64))
        now = time.time()
        with self._lock:
            self._tokens[alias] = _Token(secret, user, now)
            token_id = len(self._tokens)
        millis = int(now * 1000)
        return {
            "alias": alias,
            "secret": secret,
            "xdatUserId": user,
            "singleUse": False,
            "validIPAddresses": [],
            "estimatedExpirationTime": millis + int(TOKEN_LIFETIME * 1000),
            "id": token_id,
            "enabled": True,
            "created": millis,
            "timestamp": millis,
            "disabled": 0,
        }

    def validate_token(self, alias: str, secret: str) -> str | None:
        user = self.check(alias, secret)
        with self._lock:
            is_token = alias in self._tokens
        return user if is_token else None

    def invalidate_token(self, alias: str) -> bool:
        with self._lock:
            token = self._tokens.get(alias)
            if token is None:
                return False
            token.valid = False
            return True
