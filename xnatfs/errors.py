"""The exceptions xnatfs raises, and the one place where they become errno values.

    XnatfsError                      EIO   base class; anything unexpected is EIO too
    ├── NotFound                     ENOENT  404, or a name that is not in its parent's listing
    ├── AccessDenied                 EACCES  401/403 still refused after re-authentication
    │   └── AuthenticationFailed     EACCES  the server rejected the credentials themselves
    ├── Unavailable                  EIO     connection refused, timeouts, 5xx after retries
    ├── ProtocolError                EIO     a reply that is not what XNAT sends (bad JSON, HTML)
    ├── IntegrityError               EIO     downloaded bytes disagree with the listing
    ├── NotCached                    ENODATA  --offline, and the listing or file is not on disk
    ├── ReadOnly                     EROFS   any attempt to write
    └── ConfigError                  EINVAL  bad command line or configuration (never at run time)

Messages never contain credentials: URLs in messages are built by xnatfs without userinfo.
"""

from __future__ import annotations

import errno


class XnatfsError(Exception):
    """Base class of every error xnatfs raises on purpose."""

    errno: int = errno.EIO


class NotFound(XnatfsError):
    errno = errno.ENOENT


class AccessDenied(XnatfsError):
    errno = errno.EACCES


class AuthenticationFailed(AccessDenied):
    pass


class Unavailable(XnatfsError):
    errno = errno.EIO


class ProtocolError(XnatfsError):
    errno = errno.EIO


class IntegrityError(XnatfsError):
    errno = errno.EIO


class NotCached(XnatfsError):
    """Offline (`--offline`), and what was asked for was never kept on disk."""

    errno = errno.ENODATA


class ReadOnly(XnatfsError):
    errno = errno.EROFS


class ConfigError(XnatfsError):
    errno = errno.EINVAL


def errno_for(exc: BaseException) -> int:
    """The errno a FUSE reply should carry for `exc`.

    Our own errors carry their errno; an OSError from local disk keeps its own (ENOSPC stays
    ENOSPC); everything else is an unexpected failure and becomes EIO.
    """
    if isinstance(exc, XnatfsError):
        return exc.errno
    if isinstance(exc, OSError) and exc.errno:
        return exc.errno
    return errno.EIO
