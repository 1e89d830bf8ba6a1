"""Listings kept on disk beside the file cache, so a remount answers at once and a dead server
still browses.

One SQLite database per server and user (`root/metadata/<hash of the user>.db`, mode 0600 in a
0700 directory): listings differ by who asks. Each listing is stored with the time it was fetched
(epoch seconds) and the time it was last used, as zlib-compressed JSON of its rows (columns once,
then one array per row). Sizes learned for files whose listing has none are kept the same way.
SQLite's transactions make every write all-or-nothing, so a crash never leaves a half-written
listing. The store is bounded by `max_bytes` (compressed): least recently used listings go first.

Threads: the store is synchronous and holds one connection; its caller runs every method in one
worker thread at a time (`xnatfs.remote.AsyncXnat.serial`), never on the event loop.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import sqlite3
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from xnatfs.cache.layout import make_private_dir
from xnatfs.cache.trust import file_problem, untrusted

log = logging.getLogger(__name__)

METADATA_DIR = "metadata"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS listings (
    key TEXT PRIMARY KEY, fetched REAL NOT NULL, used REAL NOT NULL,
    size INTEGER NOT NULL, body BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS listings_used ON listings (used);
CREATE TABLE IF NOT EXISTS sizes (uri TEXT PRIMARY KEY, size INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
Row = Mapping[str, str]


def store_path(root: Path, user: str | None) -> Path:
    """Where the listings of `user` (None: anonymous) at the server cached in `root` are kept."""
    who = hashlib.sha256((user or "").encode("utf-8")).hexdigest()[:32]
    return root / METADATA_DIR / f"{who}.db"


def stored_files(root: Path) -> dict[Path, list[Path]]:
    """The listing stores in the server cache directory `root`: each database -> its files
    (the database and SQLite's `-wal` and `-shm` files beside it, those that exist)."""
    try:
        names = sorted(p for p in (root / METADATA_DIR).iterdir() if p.is_file())
    except OSError:
        return {}
    return {
        db: [p for p in names if p.name in (db.name, f"{db.name}-wal", f"{db.name}-shm")]
        for db in names
        if db.suffix == ".db"
    }


def encode_rows(rows: Sequence[Row]) -> bytes:
    """Rows as compressed JSON: the column names once, then the values of each row."""
    columns: dict[str, int] = {}
    for row in rows:
        for key in row:
            columns.setdefault(key, len(columns))
    names = list(columns)
    body = [[row.get(k) for k in names] for row in rows]
    # ASCII escapes: a cell may hold any text, lone surrogates from a listing's JSON included.
    text = json.dumps([names, body], separators=(",", ":"), ensure_ascii=True)
    return zlib.compress(text.encode("ascii"), 1)


def decode_rows(blob: bytes) -> list[dict[str, str]]:
    """The rows `encode_rows` stored (a cell a row did not have is left out again)."""
    names, body = json.loads(zlib.decompress(blob).decode("utf-8", "surrogateescape"))
    return [{k: v for k, v in zip(names, values, strict=True) if v is not None} for values in body]


class ListingStore:
    """Listings, learned sizes and small facts of one server and user, on disk.

    A database that is not one (damaged, truncated) is deleted and started afresh, with one
    warning: it only ever holds what the server can send again. Raises sqlite3.Error (or
    OSError) from the constructor when the database cannot be opened even so; later failures
    are logged once and behave as a miss, so a broken store (a full disk) never breaks a mount.
    """

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        # Inside the cache directory (`root/metadata/`): checked to be ours alone, as it is.
        make_private_dir(path.parent, path.parent.parent)
        try:
            self._db, total, count = self._open()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):
                raise  # locked, read-only, no space: not damage
            log.warning(
                "the stored listings in %s were unreadable (%s); starting afresh", path, exc
            )
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{path}{suffix}")
            self._db, total, count = self._open()
        self._bytes = total
        self._count = count
        self.reads = self.writes = 0
        self._failing = False

    def _open(self) -> tuple[sqlite3.Connection, int, int]:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            raise untrusted(self.path.parent.parent, self.path, "is a symbolic link") from None
        try:
            problem = file_problem(os.fstat(fd))
        finally:
            os.close(fd)
        if problem is not None:
            raise untrusted(self.path.parent.parent, self.path, problem)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            total, count = db.execute(
                "SELECT COALESCE(SUM(size), 0), COUNT(*) FROM listings"
            ).fetchone()
        except BaseException:
            db.close()
            raise
        return db, int(total), int(count)

    def _failed(self, what: str, exc: Exception) -> None:
        """One warning while writes keep failing (a full disk would otherwise log each one)."""
        if not self._failing:
            log.warning("could not store %s (and maybe more, listed with --debug): %s", what, exc)
        else:
            log.debug("could not store %s: %s", what, exc)
        self._failing = True

    def get(self, key: str) -> tuple[list[dict[str, str]], float] | None:
        """The rows stored for `key` and when they were fetched (epoch seconds), or None."""
        key = _db_text(key)
        try:
            found = self._db.execute(
                "SELECT body, fetched FROM listings WHERE key = ?", (key,)
            ).fetchone()
            if found is None:
                return None
            self._db.execute("UPDATE listings SET used = ? WHERE key = ?", (time.time(), key))
            self.reads += 1
            return decode_rows(found[0]), float(found[1])
        except (sqlite3.Error, ValueError, zlib.error) as exc:
            log.warning("could not read a stored listing (%s): %s", key, exc)
            return None

    def put(self, key: str, rows: Sequence[Row], fetched: float) -> None:
        """Keep `rows` as the listing of `key`, fetched at `fetched`; make room if needed."""
        key = _db_text(key)
        blob = encode_rows(rows)
        if len(blob) > self.max_bytes:
            return
        try:
            with self._transaction():
                old = self._db.execute("SELECT size FROM listings WHERE key = ?", (key,)).fetchone()
                self._db.execute(
                    "INSERT OR REPLACE INTO listings (key, fetched, used, size, body)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (key, fetched, time.time(), len(blob), blob),
                )
                self._bytes += len(blob) - (old[0] if old else 0)
                self._count += old is None
                if self._bytes > self.max_bytes:
                    self._evict()
            self.writes += 1
            self._failing = False
        except sqlite3.Error as exc:
            self._bytes, self._count = self._totals()  # the transaction was rolled back
            self._failed(f"the listing {key}", exc)

    def age_all(self) -> None:
        """Mark every stored listing as fetched long ago (SIGHUP: ask again before trusting)."""
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("UPDATE listings SET fetched = 0")

    def delete(self, key: str) -> None:
        """Forget the listing of `key`."""
        key = _db_text(key)
        with contextlib.suppress(sqlite3.Error), self._transaction():
            old = self._db.execute("SELECT size FROM listings WHERE key = ?", (key,)).fetchone()
            if old is not None:
                self._db.execute("DELETE FROM listings WHERE key = ?", (key,))
                self._bytes -= old[0]
                self._count -= 1

    def size(self, uri: str) -> int | None:
        """A size learned before for the file at `uri`, or None."""
        with contextlib.suppress(sqlite3.Error):
            found = self._db.execute(
                "SELECT size FROM sizes WHERE uri = ?", (_db_text(uri),)
            ).fetchone()
            return None if found is None else int(found[0])
        return None

    def put_size(self, uri: str, size: int) -> None:
        """Keep the size learned for the file at `uri`."""
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO sizes (uri, size) VALUES (?, ?)", (_db_text(uri), size)
            )
        except sqlite3.Error as exc:
            self._failed(f"the size of {uri!r}", exc)

    def fact(self, key: str) -> str | None:
        """A small fact kept with the listings (e.g. when this archive was first seen)."""
        with contextlib.suppress(sqlite3.Error):
            found = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            return None if found is None else str(found[0])
        return None

    def put_fact(self, key: str, value: str) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def stats(self) -> dict[str, object]:
        """Counters for the stats xattr: listings stored, their bytes, reads and writes."""
        return {
            "stored_listings": self._count,
            "stored_listing_bytes": self._bytes,
            "stored_listing_reads": self.reads,
            "stored_listing_writes": self.writes,
        }

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield None
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _evict(self) -> None:
        """Drop least recently used listings until the store is within 90 % of its bound."""
        target = self.max_bytes * 9 // 10
        for key, size in self._db.execute(
            "SELECT key, size FROM listings ORDER BY used"
        ).fetchall():
            if self._bytes <= target:
                break
            self._db.execute("DELETE FROM listings WHERE key = ?", (key,))
            self._bytes -= size
            self._count -= 1

    def _totals(self) -> tuple[int, int]:
        try:
            total, count = self._db.execute(
                "SELECT COALESCE(SUM(size), 0), COUNT(*) FROM listings"
            ).fetchone()
            return int(total), int(count)
        except sqlite3.Error:
            return self._bytes, self._count


def _db_text(text: str) -> str:
    """`text` as SQLite can take it: unchanged, unless it holds lone surrogates (bytes that were
    not UTF-8 in a listing, or a JSON escape), which SQLite's UTF-8 cannot carry: those are
    stored as their ASCII escape, after a NUL no listing value starts with."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "\0" + ascii(text)
    return text
