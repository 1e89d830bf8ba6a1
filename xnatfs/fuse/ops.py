"""The pyfuse3 adapter: translates kernel requests into `Filesystem` calls and back.

This is the only module (with `mount.py`) that imports pyfuse3. Every handler is guarded: pyfuse3
lets only `FUSEError` through, and any other exception would end the whole mount, so an
unexpected exception becomes EIO plus a logged traceback, and the mount stays alive.
Exceptions become errno values in one place: `xnatfs.errors.errno_for`.
"""

from __future__ import annotations

import errno
import functools
import json
import logging
import os
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, ParamSpec, TypeVar

import pyfuse3

from xnatfs.errors import NotFound, ReadOnly, XnatfsError, errno_for
from xnatfs.fs.filesystem import XATTR_NAMES, Entry, Filesystem
from xnatfs.fuse.attrs import (
    entry_attributes,
    file_info,
    negative_entry,
    shown_modes,
    statvfs,
)

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# `getfattr -n user.xnatfs.stats MOUNTPOINT`: live counters of the mount, as JSON.
STATS_XATTR = b"user.xnatfs.stats"
_KNOWN_XATTRS = frozenset({STATS_XATTR, *(n.encode() for n in XATTR_NAMES)})
# Raised for every name no entry has: one object each, its traceback reset at each raise.
_NO_ATTR = pyfuse3.FUSEError(pyfuse3.ENOATTR)
_NOT_SUPPORTED = pyfuse3.FUSEError(errno.ENOTSUP)


def guard(handler: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Turn every exception into a FUSEError; unexpected ones are logged with a traceback."""

    @functools.wraps(handler)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await handler(*args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except Exception as exc:
            code = errno_for(exc)
            if code == errno.EIO and not _expected(exc):
                log.exception("%s%r failed", handler.__name__, args[1:])
            elif code in (errno.ENOENT, errno.EROFS, errno.ENODATA):
                # Probes for missing names, attempts to write and, offline, what is not on disk
                # are routine, not news.
                log.debug("%s: %s", handler.__name__, exc)
            else:
                # A server that cannot be reached, a refused permission, a bad download: what
                # `journalctl -p warning` (and `xnatfs status`) must show.
                log.warning("%s: %s", handler.__name__, exc)
            raise pyfuse3.FUSEError(code) from exc

    return wrapper


def _expected(exc: BaseException) -> bool:
    """Failures the user should see as one log line, not as a traceback."""
    return isinstance(exc, XnatfsError)


def _read_only() -> ReadOnly:
    return ReadOnly("the filesystem is read-only")


class XnatOperations(pyfuse3.Operations):
    supports_dot_lookup = True
    enable_writeback_cache = False
    enable_acl = False

    def __init__(
        self,
        fs: Filesystem,
        *,
        ttl: float,
        uid: int,
        gid: int,
        file_mode: int = 0o444,
        dir_mode: int = 0o555,
        umask: int = 0,
    ) -> None:
        """`ttl`: the kernel's entry and attribute timeouts (seconds); `uid`, `gid`: the owner
        of every entry; `file_mode`, `dir_mode`, `umask`: the permissions shown (write bits
        never are; see `attrs.shown_modes`)."""
        super().__init__()
        self.fs = fs
        self.ttl = ttl
        self.uid = uid
        self.gid = gid
        self.file_mode, self.dir_mode = shown_modes(file_mode, dir_mode, umask)

    # -- helpers -----------------------------------------------------------------------------

    def _attrs(self, entry: Entry) -> pyfuse3.EntryAttributes:
        return entry_attributes(
            entry,
            ttl=self.ttl,
            uid=self.uid,
            gid=self.gid,
            file_mode=self.file_mode,
            dir_mode=self.dir_mode,
        )

    # -- lookups and attributes --------------------------------------------------------------

    @guard
    async def lookup(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        try:
            entry = await self.fs.lookup(parent_inode, os.fsdecode(name))
        except NotFound:
            return negative_entry(self.ttl)
        return self._attrs(entry)

    @guard
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._attrs(await self.fs.entry(inode))

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        # Not guarded: forget must not raise, not even FUSEError (pyfuse3's rule).
        try:
            self.fs.forget(list(inode_list))
        except Exception:
            log.exception("forget failed")

    # -- directories -------------------------------------------------------------------------

    @guard
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        return await self.fs.opendir(inode)

    @guard
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        for offset, item in enumerate(self.fs.readdir(fh, start_id), start=start_id + 1):
            # readdir is readdirplus in pyfuse3: every entry the kernel accepts is a lookup,
            # except `.` and `..`, for which the kernel makes no reference of its own.
            entry = self.fs.entry_of(item)
            if not pyfuse3.readdir_reply(token, os.fsencode(item.name), self._attrs(entry), offset):
                if item.counted:
                    self.fs.forget([(entry.ino, 1)])
                break

    @guard
    async def releasedir(self, fh: int) -> None:
        self.fs.releasedir(fh)

    # -- files -------------------------------------------------------------------------------

    @guard
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        fh, size_known, verified = self.fs.open(inode, flags)
        return file_info(fh, size_known=size_known, verified=verified)

    @guard
    async def read(self, fh: int, off: int, size: int) -> bytes:
        return await self.fs.read(fh, off, size)

    @guard
    async def release(self, fh: int) -> None:
        self.fs.release(fh)

    # No `flush`: pyfuse3 answers ENOSYS, after which the kernel stops sending FLUSH at every
    # close, one request per file less. Nothing is ever written, so there is nothing to flush.

    @guard
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        return statvfs()

    @guard
    async def access(self, inode: int, mode: int, ctx: pyfuse3.RequestContext) -> bool:
        if mode & os.W_OK:
            raise _read_only()
        return True

    # -- extended attributes -------------------------------------------------------------------

    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        # Not guarded, and nothing is allocated or logged for a name no entry has. `ls -l` asks
        # every file for `security.selinux` and `system.posix_acl_access`, and the kernel
        # caches no answer: one request each, 100,000 for a 50,000-file directory. Namespaces
        # other than `user.` are "not supported" (ENOTSUP), after which ls (gnulib) stops
        # asking for the whole filesystem; ENOSYS would end xattrs for the mount altogether.
        if name not in _KNOWN_XATTRS:
            if name.startswith(b"user."):
                raise _NO_ATTR.with_traceback(None)
            raise _NOT_SUPPORTED.with_traceback(None)
        return await self._getxattr(inode, name)

    @guard
    async def _getxattr(self, inode: int, name: bytes) -> bytes:
        if name == STATS_XATTR:
            if inode != pyfuse3.ROOT_INODE:
                raise pyfuse3.FUSEError(pyfuse3.ENOATTR)
            return json.dumps(self.fs.stats(), sort_keys=True).encode()
        value = self.fs.xattrs(inode).get(name.decode())
        if value is None:
            raise pyfuse3.FUSEError(pyfuse3.ENOATTR)
        return value.encode()

    @guard
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> Sequence[bytes]:
        names = [name.encode() for name in self.fs.xattrs(inode)]
        return [STATS_XATTR, *names] if inode == pyfuse3.ROOT_INODE else names

    # -- everything that writes fails with EROFS ---------------------------------------------

    @guard
    async def setattr(self, *args: Any) -> Any:
        raise _read_only()

    @guard
    async def mknod(self, *args: Any) -> Any:
        raise _read_only()

    @guard
    async def mkdir(self, *args: Any) -> Any:
        raise _read_only()

    @guard
    async def unlink(self, *args: Any) -> Any:
        raise _read_only()

    @guard
    async def rmdir(self, *args: Any) -> Any:
        raise _read_only()

    @guard
    async def symlink(self, *args: Any) -> Any:
        raise _read_only()

    @guard
    async def rename(self, *args: Any) -> Any:
        raise _read_only()

    @guard
    async def link(self, *args: Any) -> Any:
        raise _read_only()

    @guard
    async def create(self, *args: Any) -> Any:
        raise _read_only()

    @guard
    async def write(self, *args: Any) -> Any:
        raise _read_only()

    @guard
    async def setxattr(self, *args: Any) -> Any:
        raise _read_only()

    @guard
    async def removexattr(self, *args: Any) -> Any:
        raise _read_only()
