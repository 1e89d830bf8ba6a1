"""What the kernel is told about entries: `Entry` -> pyfuse3 attributes, open flags, statfs.

The timeouts are the metadata rules: attributes and names are trusted for `--metadata-ttl`
seconds (pyfuse3 would default to 300 s), and a file whose size is not known yet is re-asked
every time (it costs no request).
"""

from __future__ import annotations

import stat

import pyfuse3

from xnatfs.fs.filesystem import Entry

BLOCK_SIZE = 128 * 1024


# Nothing can be written, so no write bit is ever shown, whatever the modes asked for.
NO_WRITE = 0o555


def shown_modes(file_mode: int, dir_mode: int, umask: int) -> tuple[int, int]:
    """The permission bits files and directories are shown with: the modes asked for
    (`--file-mode`, `--dir-mode`), less `--umask`, less every write bit."""
    return file_mode & ~umask & NO_WRITE, dir_mode & ~umask & NO_WRITE


def entry_attributes(
    entry: Entry,
    *,
    ttl: float,
    uid: int,
    gid: int,
    file_mode: int = 0o444,
    dir_mode: int = 0o555,
) -> pyfuse3.EntryAttributes:
    """The attributes of `entry` (inode, mode, size, owner, times) with the TTL rules.

    `file_mode`, `dir_mode`: the permission bits shown (see `shown_modes`); the kernel checks
    them against `uid` and `gid` for every other user of an `allow_other` mount
    (`default_permissions`).
    """
    attrs = pyfuse3.EntryAttributes()
    attrs.st_ino = entry.ino
    attrs.generation = 0
    if entry.node.is_dir:
        attrs.st_mode = stat.S_IFDIR | dir_mode
        attrs.st_size = 0
    else:
        attrs.st_mode = stat.S_IFREG | file_mode
        attrs.st_size = entry.size
    # Files: one link per listed path that leads to them (hard links, so du, tar, cp -a and
    # rsync -H count them once); directories: 2 + sub-directories once listed, else 1.
    attrs.st_nlink = entry.nlink
    attrs.st_blksize = BLOCK_SIZE
    attrs.st_blocks = (attrs.st_size + 511) // 512
    attrs.st_uid = uid
    attrs.st_gid = gid
    attrs.st_atime_ns = attrs.st_mtime_ns = attrs.st_ctime_ns = entry.mtime_ns
    # Metadata must not look fresher than --metadata-ttl; what is not settled yet (a size or a
    # time that needs a request) is asked again, which costs nothing until then.
    attrs.entry_timeout = ttl
    attrs.attr_timeout = ttl if entry.settled else 0
    return attrs


def negative_entry(ttl: float) -> pyfuse3.EntryAttributes:
    """A remembered miss (inode 0): file managers probing `.hidden` or `desktop.ini` do not even
    reach the filesystem again for `ttl` seconds."""
    attrs = pyfuse3.EntryAttributes()
    attrs.st_ino = 0
    attrs.entry_timeout = ttl
    return attrs


def file_info(fh: int, *, size_known: bool, verified: bool) -> pyfuse3.FileInfo:
    """Open flags. Kernel pages are kept only for a verified file: a changed file is a new inode
    (its version is part of its identity), and pages read from a download that later failed
    verification are dropped at the next open. Without a known size the kernel would cut reads
    at `st_size`, so such files bypass the page cache (`direct_io`)."""
    return pyfuse3.FileInfo(fh=fh, keep_cache=size_known and verified, direct_io=not size_known)


def statvfs() -> pyfuse3.StatvfsData:
    """`statfs`: block sizes and the longest name; no free space (nothing can be written)."""
    data = pyfuse3.StatvfsData()
    data.f_bsize = BLOCK_SIZE
    data.f_frsize = BLOCK_SIZE
    data.f_namemax = 255
    return data
