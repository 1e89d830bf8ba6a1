"""DiskCache: admission, verification, LRU eviction, persistence, locking (no mount needed)."""

from __future__ import annotations

import contextlib
import errno
import grp
import hashlib
import json
import os
import pwd
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.mounting import mount_env, tmp_mounted
from xnatfs.cache import disk as filecache
from xnatfs.cache.disk import DiskCache
from xnatfs.cache.layout import FORMAT_FILE, FORMAT_TEXT, entry_name, entry_path
from xnatfs.cache.trust import private_group
from xnatfs.demo import DEMO_PASSWORD, DEMO_USER, DemoServer, Site
from xnatfs.errors import ConfigError
from xnatfs.fileversion import FileVersion, verify_part

REPO = Path(__file__).resolve().parents[2]

# A process that opens a cache, optionally starts a download it never finishes, says "ready" and
# waits for stdin to close (or to be killed).
HOLDER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from xnatfs.cache.disk import DiskCache
    from xnatfs.fileversion import FileVersion
    cache = DiskCache(Path(sys.argv[1]), 10**6)
    if sys.argv[2:] == ["part"]:
        path, fd = cache.create_part(FileVersion("/data/files/big.dcm", 100, ""))
        os.write(fd, b"x" * 50)
        print(path, flush=True)
    print("ready", flush=True)
    sys.stdin.read()
    cache.close()
    """
)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def key_for(uri: str, data: bytes, *, digest: bool = True, size: bool = True) -> FileVersion:
    return FileVersion(uri, len(data) if size else None, md5(data) if digest else "")


def put(cache: DiskCache, uri: str, data: bytes, **kw: bool) -> FileVersion:
    """Download `data` the way the core does and admit it; the result must be cached."""
    key = key_for(uri, data, **kw)
    path, fd = cache.create_part(key)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    assert cache.admit(verify_part(key, path, os.path.getsize(path), md5(data))) is True
    return key


def read(cache: DiskCache, key: FileVersion) -> bytes | None:
    fd = cache.open(key)
    if fd is None:
        return None
    try:
        return os.pread(fd, 1 << 20, 0)
    finally:
        os.close(fd)


def entry_files(root: Path) -> dict[str, int]:
    """name -> size of every entry file actually on disk."""
    return {p.name: p.stat().st_size for p in (root / "data").glob("*/*") if p.is_file()}


def part_files(root: Path) -> list[Path]:
    return sorted((root / "parts").iterdir())


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def holder(root: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the cache directory, killed at teardown."""
    proc, _ = start_holder(root)
    yield proc
    stop(proc)


def start_holder(root: Path, *extra: str) -> tuple[subprocess.Popen[str], list[str]]:
    """Start HOLDER; return it once it holds the cache, with the lines it printed before."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(root), *extra],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    lines = []
    while (line := proc.stdout.readline().strip()) != "ready":
        assert line, f"holder exited early with {proc.wait()}"
        lines.append(line)
    return proc, lines


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)
    for f in (proc.stdin, proc.stdout):
        if f is not None:
            f.close()


# -- keys -----------------------------------------------------------------------------------


def test_key_name_is_stable_hex_and_depends_on_every_field() -> None:
    k = FileVersion("/data/experiments/E1/scans/1/resources/11/files/1.dcm", 10, "ab" * 16)
    assert entry_name(k) == entry_name(FileVersion(k.uri, 10, "ab" * 16))
    assert len(entry_name(k)) == 64 and int(entry_name(k), 16) >= 0
    others = {
        entry_name(FileVersion(k.uri + "x", 10, k.digest)),
        entry_name(FileVersion(k.uri, 11, k.digest)),
        entry_name(FileVersion(k.uri, None, k.digest)),
        entry_name(FileVersion(k.uri, 10, "")),
    }
    assert entry_name(k) not in others and len(others) == 4
    assert entry_name(FileVersion(k.uri, 10, k.digest.upper())) == entry_name(k)


# -- admission and lookup -------------------------------------------------------------------


def test_admitted_file_is_served_and_counted(root: Path) -> None:
    with DiskCache(root, 10_000) as cache:
        key = key_for("/data/a.dcm", b"hello")
        assert read(cache, key) is None
        put(cache, "/data/a.dcm", b"hello")
        assert read(cache, key) == b"hello"
        assert read(cache, key) == b"hello"
        s = cache.stats()
        assert (s.entries, s.bytes, s.limit, s.hits, s.misses) == (1, 5, 10_000, 2, 1)
        assert part_files(root) == []
        assert entry_files(root) == {entry_name(key): 5}


def test_contains_neither_counts_nor_reorders(root: Path) -> None:
    with DiskCache(root, 200) as cache:
        a = put(cache, "/data/a", b"a" * 100)
        b = put(cache, "/data/b", b"b" * 100)
        assert cache.contains(a) and cache.contains(b)
        assert not cache.contains(key_for("/data/c", b"c"))
        s = cache.stats()
        assert (s.hits, s.misses) == (0, 0)
        put(cache, "/data/c", b"c" * 100)  # a is still the least recent despite contains(a)
        assert not cache.contains(a) and cache.contains(b)


def test_open_moves_entry_to_most_recent_so_another_is_evicted(root: Path) -> None:
    with DiskCache(root, 300) as cache:
        a = put(cache, "/data/a", b"a" * 100)
        b = put(cache, "/data/b", b"b" * 100)
        c = put(cache, "/data/c", b"c" * 100)
        assert read(cache, a) is not None  # a is now the most recent, b the least
        d = put(cache, "/data/d", b"d" * 100)
        assert read(cache, b) is None
        assert [read(cache, k) is not None for k in (a, c, d)] == [True, True, True]
        assert set(entry_files(root)) == {entry_name(a), entry_name(c), entry_name(d)}
        assert cache.stats().evictions == 1


def test_limit_holds_after_every_admission(root: Path) -> None:
    limit = 1000
    keys = []
    with DiskCache(root, limit) as cache:
        for i in range(30):  # 3000 bytes through a 1000-byte cache
            keys.append(put(cache, f"/data/{i}", bytes([i]) * (60 + i)))
            on_disk = entry_files(root)
            assert sum(on_disk.values()) <= limit
            assert cache.stats().bytes == sum(on_disk.values())
            assert cache.stats().entries == len(on_disk)
        s = cache.stats()
        # The survivors are exactly the most recently admitted files that fit.
        expected, total = [], 0
        for k in reversed(keys):
            if total + (k.size or 0) > limit:
                break
            expected.append(entry_name(k))
            total += k.size or 0
        assert set(entry_files(root)) == set(expected)
        assert s.evictions == 30 - len(expected)


def test_file_larger_than_the_cache_is_not_admitted_but_stays_readable(root: Path) -> None:
    with DiskCache(root, 100) as cache:
        small = put(cache, "/data/small", b"s" * 40)
        data = b"L" * 101
        key = key_for("/data/large", data)
        path, fd = cache.create_part(key)
        try:
            os.write(fd, data)
            assert cache.admit(verify_part(key, path, os.path.getsize(path), md5(data))) is False
            assert not os.path.exists(path)
            assert os.pread(fd, 200, 0) == data  # the caller keeps reading its own fd
        finally:
            os.close(fd)
        assert read(cache, key) is None
        assert read(cache, small) == b"s" * 40  # nothing was evicted for a file that can't fit
        assert cache.stats().rejected == 1 and cache.stats().evictions == 0


def test_digest_comparison_ignores_hex_case(root: Path) -> None:
    with DiskCache(root, 10_000) as cache:
        data = b"payload"
        key = FileVersion("/data/f", len(data), md5(data).upper())
        path, fd = cache.create_part(key)
        os.write(fd, data)
        os.close(fd)
        assert cache.admit(verify_part(key, path, os.path.getsize(path), md5(data)))
        assert read(cache, FileVersion("/data/f", len(data), md5(data))) == data


def test_without_digest_only_the_size_is_checked(root: Path) -> None:
    with DiskCache(root, 10_000) as cache:
        data = b"no digest in the listing"
        key = key_for("/data/f", data, digest=False)
        path, fd = cache.create_part(key)
        os.write(fd, data)
        os.close(fd)
        assert cache.admit(
            verify_part(key, path, os.path.getsize(path), md5(b"whatever was computed"))
        )
        assert read(cache, key) == data
        unsized = put(cache, "/data/g", b"neither", digest=False, size=False)
        assert read(cache, unsized) == b"neither"


def test_entry_whose_size_on_disk_is_wrong_is_dropped(root: Path) -> None:
    with DiskCache(root, 10_000) as cache:
        key = put(cache, "/data/f", b"0123456789")
        os.truncate(entry_path(root, entry_name(key)), 4)  # damaged behind the cache's back
        assert read(cache, key) is None
        assert not entry_path(root, entry_name(key)).exists()
        s = cache.stats()
        assert (s.entries, s.bytes, s.hits, s.misses) == (0, 0, 0, 1)


def test_entry_removed_behind_the_cache_is_a_miss(root: Path) -> None:
    with DiskCache(root, 10_000) as cache:
        key = put(cache, "/data/f", b"0123456789")
        os.unlink(entry_path(root, entry_name(key)))
        assert read(cache, key) is None
        assert cache.stats().entries == 0 and cache.stats().bytes == 0


def test_same_version_admitted_twice_is_one_entry(root: Path) -> None:
    with DiskCache(root, 10_000) as cache:
        put(cache, "/data/f", b"same bytes")
        key = put(cache, "/data/f", b"same bytes")
        assert read(cache, key) == b"same bytes"
        s = cache.stats()
        assert (s.entries, s.bytes, s.evictions) == (1, 10, 0)
        assert part_files(root) == []


def test_admit_refuses_a_path_outside_the_parts_directory(root: Path, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.part"
    other.write_bytes(b"x")
    with DiskCache(root, 10_000) as cache, pytest.raises(ValueError):
        cache.admit(verify_part(FileVersion("/data/f", 1, ""), str(other), 1, md5(b"x")))
    assert other.read_bytes() == b"x"


def test_parts_are_unique_private_and_discard_tolerates_missing(root: Path) -> None:
    with DiskCache(root, 10_000) as cache:
        key = FileVersion("/data/f", 3, "")
        (p1, fd1), (p2, fd2) = cache.create_part(key), cache.create_part(key)
        os.close(fd1)
        os.close(fd2)
        assert p1 != p2
        assert stat.S_IMODE(os.stat(p1).st_mode) == 0o600
        cache.discard(p1)
        cache.discard(p1)
        assert [str(p) for p in part_files(root)] == [p2]


def test_zero_limit_caches_only_empty_files(root: Path) -> None:
    with DiskCache(root, 0) as cache:
        empty = put(cache, "/data/empty", b"")
        assert read(cache, empty) == b""
        key = key_for("/data/f", b"x")
        path, fd = cache.create_part(key)
        os.write(fd, b"x")
        os.close(fd)
        assert cache.admit(verify_part(key, path, os.path.getsize(path), md5(b"x"))) is False


def test_a_failed_rename_keeps_the_read_going_and_caches_nothing(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with DiskCache(root, 10_000) as cache:
        data = b"verified bytes"
        key = key_for("/data/f", data)
        path, fd = cache.create_part(key)
        try:
            os.write(fd, data)

            def refuse(src: object, dst: object) -> None:
                raise OSError(5, "Input/output error")

            with monkeypatch.context() as m:
                m.setattr(filecache.os, "rename", refuse)
                assert (
                    cache.admit(verify_part(key, path, os.path.getsize(path), md5(data))) is False
                )
            assert os.pread(fd, 100, 0) == data
        finally:
            os.close(fd)
        assert part_files(root) == [] and entry_files(root) == {}
        assert cache.stats().entries == 0
        assert read(cache, put(cache, "/data/f", data)) == data  # and the next try works


def test_unusable_directory_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="cannot use cache directory"):
        DiskCache(tmp_path / "file", 10)
    (tmp_path / "odd" / "lock").mkdir(parents=True)
    with pytest.raises(ConfigError, match="cannot use cache directory"):
        DiskCache(tmp_path / "odd", 10)
    (tmp_path / "odd2").mkdir()
    (tmp_path / "odd2" / "parts").write_text("not a directory")
    with pytest.raises(ConfigError, match="cannot use cache directory"):
        DiskCache(tmp_path / "odd2", 10)
    (tmp_path / "odd2" / "parts").unlink()
    DiskCache(tmp_path / "odd2", 10).close()  # the failed attempt released its lock


# -- eviction ------------------------------------------------------------------------------


def test_evicting_an_open_entry_keeps_the_fd_readable(root: Path) -> None:
    with DiskCache(root, 100) as cache:
        a = put(cache, "/data/a", b"A" * 100)
        fd = cache.open(a)
        assert fd is not None
        try:
            put(cache, "/data/b", b"B" * 100)  # evicts a while it is open
            assert not entry_path(root, entry_name(a)).exists()
            assert cache.open(a) is None
            assert os.pread(fd, 200, 0) == b"A" * 100
        finally:
            os.close(fd)


def test_make_room_evicts_least_recent_first(root: Path) -> None:
    with DiskCache(root, 1000) as cache:
        a = put(cache, "/data/a", b"a" * 100)
        put(cache, "/data/b", b"b" * 200)
        c = put(cache, "/data/c", b"c" * 300)
        read(cache, a)
        assert cache.make_room(150) == 200  # b only: one entry covers 150 bytes
        assert set(entry_files(root)) == {entry_name(a), entry_name(c)}
        assert cache.make_room(10_000) == 400
        assert entry_files(root) == {} and cache.stats().entries == 0
        assert cache.make_room(1) == 0
        assert cache.stats().evictions == 3
        assert read(cache, c) is None


# -- persistence and start-up --------------------------------------------------------------


def test_restart_keeps_entries_and_lru_order(root: Path) -> None:
    with DiskCache(root, 300) as cache:
        a = put(cache, "/data/a", b"a" * 100)
        b = put(cache, "/data/b", b"b" * 100)
        c = put(cache, "/data/c", b"c" * 100)
        read(cache, a)  # order now b, c, a
    with DiskCache(root, 300) as cache:
        s = cache.stats()
        assert (s.entries, s.bytes, s.hits, s.misses) == (3, 300, 0, 0)
        put(cache, "/data/d", b"d" * 100)
        assert read(cache, b) is None
        assert read(cache, c) == b"c" * 100
        assert read(cache, a) == b"a" * 100  # order now d, c, a
    with DiskCache(root, 300) as cache:
        put(cache, "/data/e", b"e" * 100)
        assert set(entry_files(root)) == {
            entry_name(c),
            entry_name(a),
            cache_name("/data/e", b"e" * 100),
        }


def cache_name(uri: str, data: bytes) -> str:
    return entry_name(key_for(uri, data))


def test_restart_with_a_smaller_limit_evicts_the_oldest(root: Path) -> None:
    with DiskCache(root, 1000) as cache:
        keys = [put(cache, f"/data/{i}", bytes([i]) * 100) for i in range(5)]
        read(cache, keys[0])  # order 1 2 3 4 0
    with DiskCache(root, 250) as cache:
        assert set(entry_files(root)) == {entry_name(keys[4]), entry_name(keys[0])}
        assert cache.stats().bytes == 200
    with DiskCache(root, 50) as cache:
        assert entry_files(root) == {} and cache.stats().entries == 0


def test_stray_parts_and_foreign_files_at_start(root: Path) -> None:
    with DiskCache(root, 1000) as cache:
        keep = put(cache, "/data/keep", b"kept")
        path, fd = cache.create_part(FileVersion("/data/half", 10, ""))
        os.write(fd, b"half")
        os.close(fd)
    (root / "data" / "zz").mkdir()
    (root / "data" / "zz" / "README").write_text("not ours")
    with DiskCache(root, 1000) as cache:
        assert part_files(root) == []
        assert cache.stats().entries == 1
        assert read(cache, keep) == b"kept"
    assert (root / "data" / "zz" / "README").read_text() == "not ours"


def test_part_of_a_killed_process_is_removed_and_never_served(root: Path) -> None:
    proc, lines = start_holder(root, "part")
    try:
        (part,) = lines
        assert Path(part).stat().st_size == 50
    finally:
        stop(proc)  # SIGKILL mid-download
    assert Path(part).exists()
    with DiskCache(root, 10**6) as cache:
        assert not Path(part).exists()
        assert read(cache, FileVersion("/data/files/big.dcm", 100, "")) is None
        assert cache.stats().entries == 0


@pytest.mark.parametrize(
    "n", [1_000, pytest.param(50_000, marks=pytest.mark.slow, id="50k")], ids=str
)
def test_start_rebuilds_lru_from_many_entries(root: Path, n: int) -> None:
    base = 1_700_000_000 * 10**9
    order = [(i * 7919) % n for i in range(n)]  # a scrambled mtime order (7919 is prime)
    for fan in range(256):
        (root / "data" / f"{fan:02x}").mkdir(parents=True)
    (root / FORMAT_FILE).write_text(FORMAT_TEXT)  # written by this version
    names = []
    for i in range(n):
        name = hashlib.sha256(str(i).encode()).hexdigest()
        fd = os.open(entry_path(root, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, b"x" * (1 + i % 3))
        os.utime(fd, ns=(base + order[i], base + order[i]))
        os.close(fd)
        names.append(name)
    total = sum(1 + i % 3 for i in range(n))
    with DiskCache(root, 10**9) as cache:
        s = cache.stats()
        assert (s.entries, s.bytes) == (n, total)
        # The least recently used entries are those with the oldest mtimes.
        by_age = sorted(range(n), key=lambda i: order[i])
        oldest = by_age[:3]
        need = sum(1 + i % 3 for i in oldest)
        assert cache.make_room(need) == need
        assert not any(entry_path(root, names[i]).exists() for i in oldest)
        assert entry_path(root, names[by_age[3]]).exists()
        assert cache.stats().entries == n - 3
        assert cache.make_room(1) == 1 + by_age[3] % 3  # then the next oldest, alone
        assert not entry_path(root, names[by_age[3]]).exists()
        assert entry_path(root, names[by_age[4]]).exists()


# -- locking, stats, permissions -----------------------------------------------------------


def test_second_process_is_refused_with_a_clear_message(
    root: Path, holder: subprocess.Popen[str]
) -> None:
    with pytest.raises(ConfigError) as info:
        DiskCache(root, 1000)
    msg = str(info.value)
    assert str(root) in msg and f"pid {holder.pid}" in msg and "--cache-dir" in msg
    assert "\n" not in msg
    stop(holder)  # the lock dies with the process, even killed
    with DiskCache(root, 1000) as cache:
        assert cache.stats().entries == 0


def test_second_cache_in_the_same_process_is_refused_until_close(root: Path) -> None:
    first = DiskCache(root, 1000)
    with pytest.raises(ConfigError, match=f"pid {os.getpid()}"):
        DiskCache(root, 1000)
    first.close()
    first.close()
    DiskCache(root, 1000).close()
    assert (root / "lock").read_text() == ""


def test_stats_are_persisted_at_close(root: Path) -> None:
    with DiskCache(root, 1000) as cache:
        k = put(cache, "/data/a", b"a" * 600)
        read(cache, k)
        read(cache, FileVersion("/data/none", 1, ""))
        put(cache, "/data/b", b"b" * 600)
        big = key_for("/data/big", b"B" * 1001)
        path, fd = cache.create_part(big)
        os.write(fd, b"B" * 1001)
        os.close(fd)
        assert cache.admit(verify_part(big, path, 1001, md5(b"B" * 1001))) is False
    saved = json.loads((root / "stats.json").read_text())
    assert {k: saved[k] for k in ("entries", "bytes", "limit", "hits", "misses")} == {
        "entries": 1,
        "bytes": 600,
        "limit": 1000,
        "hits": 1,
        "misses": 1,
    }
    assert (saved["evictions"], saved["rejected"]) == (1, 1)
    assert stat.S_IMODE((root / "stats.json").stat().st_mode) == 0o600


def test_stats_are_saved_during_a_mount(root: Path) -> None:
    with DiskCache(root, 1000, stats_interval=0.0) as cache:
        k = put(cache, "/data/a", b"abc")
        read(cache, k)
        read(cache, k)
        saved = json.loads((root / "stats.json").read_text())
        assert (saved["hits"], saved["entries"], saved["pid"]) == (2, 1, os.getpid())


def test_everything_in_the_cache_directory_is_private(root: Path) -> None:
    old = os.umask(0o022)
    try:
        with DiskCache(root, 1000) as cache:
            put(cache, "/data/a", b"abc")
            os.close(cache.create_part(FileVersion("/data/b", 3, ""))[1])
    finally:
        os.umask(old)
    for p in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(p.lstat().st_mode)
        assert mode == (0o700 if p.is_dir() else 0o600), (p, oct(mode))


def test_a_shared_directory_may_hold_the_cache_but_not_be_it(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # like /tmp: everybody may create in it
    with pytest.raises(ConfigError, match="is writable by every user"):
        DiskCache(shared, 10)
    assert list(shared.iterdir()) == []  # refused before anything was made
    with DiskCache(shared / "mine" / "cache", 10) as cache:
        put(cache, "/data/a", b"a")
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777  # not ours to change
    for made in ("mine", "mine/cache", "mine/cache/data", "mine/cache/parts"):
        assert stat.S_IMODE((shared / made).stat().st_mode) == 0o700, made


def test_negative_limit_is_a_config_error(root: Path) -> None:
    with pytest.raises(ConfigError):
        DiskCache(root, -1)


# -- through a real mount -------------------------------------------------------------------


def demo_site(n: int, size: int) -> tuple[Site, dict[str, bytes]]:
    """One scan resource holding `n` files of `size` distinct bytes each."""
    site = Site()
    site.add_project("P", "Cache test")
    site.add_subject("P", "S1")
    exp = site.add_experiment("P", "S1", "E1", date="2024-01-02")
    res = site.add_resource(site.add_scan(exp, "1", "T1"), "DATA", format="BIN")
    files = {}
    for i in range(n):
        seed = hashlib.sha256(f"file {i}".encode()).digest()
        files[f"f{i:02d}.bin"] = (seed * (size // len(seed) + 1))[:size]
        site.add_file(res, f"f{i:02d}.bin", files[f"f{i:02d}.bin"])
    return site, files


def find_files(mnt: Path, names: Iterable[str]) -> dict[str, Path]:
    wanted, found = set(names), {}
    for dirpath, _dirs, files in os.walk(mnt / "P"):
        for f in wanted.intersection(files):
            found.setdefault(f, Path(dirpath) / f)
        if len(found) == len(wanted):
            return found
    raise AssertionError(f"not all of {sorted(wanted)} found under {mnt}")


def mount_cache(server: DemoServer, tmp_path: Path, *options: str, **kw: Any) -> Any:
    return tmp_mounted(
        server.url, tmp_path, user=DEMO_USER, password=DEMO_PASSWORD, options=options, **kw
    )


@pytest.mark.fuse
def test_mount_reads_from_the_cache_after_a_remount(tmp_path: Path) -> None:
    site, files = demo_site(4, 50_000)
    with DemoServer(site) as server:
        with mount_cache(server, tmp_path, "--prefetch", "off") as m:
            paths = find_files(m.path, files)
            for name, path in paths.items():
                assert path.read_bytes() == files[name]
        assert server.log.files == 4
        with mount_cache(server, tmp_path, "--prefetch", "off", name="again") as m:
            paths = find_files(m.path, files)
            for name, path in paths.items():
                assert path.read_bytes() == files[name]
        assert server.log.files == 4  # every byte of the second mount came from the cache
    saved = json.loads((tmp_path / "cache" / "stats.json").read_text())
    assert (saved["entries"], saved["hits"], saved["misses"]) == (4, 4, 0)


@pytest.mark.fuse
def test_mount_keeps_the_limit_and_an_evicted_open_file_reads_on(tmp_path: Path) -> None:
    size = 1 << 20
    site, files = demo_site(6, size)
    limit = size * 5 // 2
    with (
        DemoServer(site) as server,
        mount_cache(server, tmp_path, "--prefetch", "off", "--cache-size", str(limit)) as m,
    ):
        paths = find_files(m.path, files)
        first, *rest = sorted(paths)
        with open(paths[first], "rb", buffering=0) as held:
            head = held.read(4096)
            for name in rest:
                assert paths[name].read_bytes() == files[name]
                on_disk = entry_files(m.cache_dir)
                assert sum(on_disk.values()) <= limit
            # `first` has long been evicted (2 of 6 files fit), yet its reader is unaffected.
            # (The last file is admitted just after its reader was answered.)
            deadline = time.monotonic() + 10
            while len(entry_files(m.cache_dir)) != 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(entry_files(m.cache_dir)) == 2
            assert head + held.read() == files[first]


@pytest.mark.fuse
def test_a_corrupt_download_is_an_error_and_is_not_cached(tmp_path: Path) -> None:
    site, files = demo_site(2, 10_000)
    with DemoServer(site) as server, mount_cache(server, tmp_path, "--prefetch", "off") as m:
        paths = find_files(m.path, files)
        server.faults.corrupt(r"f00\.bin")
        with pytest.raises(OSError) as err:
            paths["f00.bin"].read_bytes()
        assert err.value.errno == errno.EIO
        assert entry_files(m.cache_dir) == {} and part_files(m.cache_dir) == []
        server.faults.clear()
        # Reading again downloads again; only the verified bytes become the entry.
        with contextlib.suppress(OSError):
            paths["f00.bin"].read_bytes()
        # Readers are answered once the bytes are verified; admission follows right after.
        deadline = time.monotonic() + 10
        while not list((m.cache_dir / "data").glob("*/*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        (entry,) = (m.cache_dir / "data").glob("*/*")
        assert entry.read_bytes() == files["f00.bin"]


@pytest.mark.fuse
def test_a_corrupt_download_leaves_no_bytes_in_the_page_cache(tmp_path: Path) -> None:
    site, files = demo_site(1, 1 << 20)
    with DemoServer(site) as server, mount_cache(server, tmp_path, "--prefetch", "off") as m:
        path = find_files(m.path, files)["f00.bin"]
        server.faults.corrupt(r"f00\.bin")
        with open(path, "rb", buffering=0) as f:
            f.read(4096)  # served as it arrives, before the whole file could be verified
            with pytest.raises(OSError):
                f.read()
        server.faults.clear()
        assert path.read_bytes() == files["f00.bin"]


@pytest.mark.fuse
def test_a_second_mount_on_the_same_cache_is_refused(tmp_path: Path) -> None:
    site, _ = demo_site(1, 100)
    with DemoServer(site) as server, mount_cache(server, tmp_path) as m:
        other = tmp_path / "other"
        other.mkdir()
        proc = subprocess.run(
            [sys.executable, "-m", "xnatfs", "mount", server.url, str(other), "--foreground"]
            + ["--cache-dir", str(m.cache_dir)],
            capture_output=True,
            text=True,
            timeout=60,
            env=mount_env(DEMO_USER, DEMO_PASSWORD),
        )
        assert proc.returncode != 0
        (line,) = proc.stderr.strip().splitlines()
        assert str(m.cache_dir) in line and f"pid {m.proc.pid}" in line
        assert "--cache-dir" in line
        assert not os.path.ismount(other)


def test_a_clean_close_saves_the_order_and_the_next_start_consumes_it(root: Path) -> None:
    with DiskCache(root, 300) as cache:
        a = put(cache, "/data/a", b"a" * 100)
        b = put(cache, "/data/b", b"b" * 100)
        read(cache, a)  # order now b, a
    saved = root / "index"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert saved.read_text().splitlines()[1:] == [f"{entry_name(b)} 100", f"{entry_name(a)} 100"]
    with DiskCache(root, 300) as cache:
        assert not saved.exists()  # a crash from here on leaves no stale index behind
        put(cache, "/data/c", b"c" * 100)
        put(cache, "/data/d", b"d" * 100)  # evicts b, the least recent
        assert read(cache, b) is None and read(cache, a) == b"a" * 100


def test_a_damaged_or_missing_index_falls_back_to_a_scan(root: Path) -> None:
    with DiskCache(root, 300) as cache:
        a = put(cache, "/data/a", b"a" * 100)
    (root / "index").write_text("xnatfs-cache-index 1\nnot-a-name 12\n")
    with DiskCache(root, 300) as cache:
        assert cache.stats().entries == 1 and read(cache, a) == b"a" * 100


def test_entries_of_an_unstamped_cache_are_dropped_at_first_start(root: Path) -> None:
    """A cache written before entries from archives were attributed by their full identity
    may hold one scan's bytes under another's key; nothing of it is served."""
    with DiskCache(root, 10**6) as cache:
        key = FileVersion("/data/x", 3, "")
        part, fd = cache.create_part(key)
        os.write(fd, b"abc")
        os.close(fd)
        assert cache.admit(
            verify_part(key, part, os.path.getsize(part), hashlib.md5(b"abc").hexdigest())
        )
    (root / FORMAT_FILE).unlink()  # as the earlier version left it
    with DiskCache(root, 10**6) as cache:
        assert cache.stats().entries == 0
        assert cache.open(key) is None
    assert (root / FORMAT_FILE).read_text() == FORMAT_TEXT
    with DiskCache(root, 10**6) as cache:  # stamped now: nothing more is dropped
        part, fd = cache.create_part(key)
        os.write(fd, b"abc")
        os.close(fd)
        assert cache.admit(
            verify_part(key, part, os.path.getsize(part), hashlib.md5(b"abc").hexdigest())
        )
    with DiskCache(root, 10**6) as cache:
        assert cache.stats().entries == 1


def test_a_cache_of_a_newer_format_is_refused(root: Path) -> None:
    root.mkdir(parents=True)
    (root / FORMAT_FILE).write_text("xnatfs-cache 99\n")
    with pytest.raises(ConfigError, match="format 99"):
        DiskCache(root, 10**6)


def test_every_directory_made_on_the_way_to_the_cache_is_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with DiskCache(tmp_path / "home" / ".cache" / "xnatfs" / "https_x", 1024):
            pass
    finally:
        os.umask(old)
    for path in (
        tmp_path / "home",
        tmp_path / "home" / ".cache",
        tmp_path / "home" / ".cache" / "xnatfs",
        tmp_path / "home" / ".cache" / "xnatfs" / "https_x",
        tmp_path / "home" / ".cache" / "xnatfs" / "https_x" / "data",
    ):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path


# -- trust: a cache directory that is ours alone ---------------------------------------------------


def test_a_planted_lock_symlink_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    root, victim = tmp_path / "cache", tmp_path / "victim"
    root.mkdir(mode=0o700)
    victim.write_text("keep me")
    (root / "lock").symlink_to(victim)
    with pytest.raises(ConfigError, match="lock is a symbolic link"):
        DiskCache(root, 10)
    assert victim.read_text() == "keep me"


def test_a_lock_that_is_not_ours_alone_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    root.mkdir(mode=0o700)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("")
    os.link(elsewhere, root / "lock")
    with pytest.raises(ConfigError, match="has other names"):
        DiskCache(root, 10)


@pytest.mark.parametrize("sub", ["", "data", "parts"])
def test_directories_others_can_write_are_refused(tmp_path: Path, sub: str) -> None:
    root = tmp_path / "cache"
    DiskCache(root, 10).close()
    os.chmod(root / sub, 0o777)
    with pytest.raises(ConfigError, match="is writable by every user"):
        DiskCache(root, 10)


def test_directories_of_another_user_are_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give a directory away")
    root = tmp_path / "cache"
    DiskCache(root, 10).close()
    os.chown(root / "data", 65534, 65534)
    with pytest.raises(ConfigError, match=r"data belongs to .*uid 65534"):
        DiskCache(root, 10)


def test_only_a_private_group_may_write() -> None:
    users = pwd.getpwall()
    if [p.pw_name for p in users if p.pw_gid == 0] != ["root"] or grp.getgrgid(0).gr_mem:
        pytest.skip("group 0 is not root's alone here")
    assert private_group(0, 0)  # root's own group
    assert not private_group(0, 65534)  # ... is not another user's
    primaries = {p.pw_gid for p in users}
    empty = next((g for g in grp.getgrall() if not g.gr_mem and g.gr_gid not in primaries), None)
    if empty is not None:
        assert not private_group(empty.gr_gid, 0)  # a group without members is nobody's own


def test_an_entry_that_is_not_a_regular_file_of_ours_is_dropped_not_served(root: Path) -> None:
    with DiskCache(root, 1000) as cache:
        link, fifo = put(cache, "/data/a", b"abc"), put(cache, "/data/b", b"def")
        elsewhere = root.parent / "elsewhere"
        elsewhere.write_bytes(b"xyz")
        path = entry_path(root, entry_name(link))
        path.unlink()
        path.symlink_to(elsewhere)
        assert read(cache, link) is None  # a miss: never followed
        assert not path.exists() and not path.is_symlink()
        assert elsewhere.read_bytes() == b"xyz"
        path = entry_path(root, entry_name(fifo))
        path.unlink()
        os.mkfifo(path)
        assert read(cache, fifo) is None  # and a FIFO does not hang the open
        assert not path.exists()
        assert cache.stats().entries == 0


# -- the cache directory changing under a mount ----------------------------------------------------


def test_a_removed_cache_directory_is_laid_out_again_under_our_lock(root: Path) -> None:
    with DiskCache(root, 1000) as cache:
        put(cache, "/data/a", b"abc")
        subprocess.run(["rm", "-rf", str(root)], check=True)
        kept = put(cache, "/data/b", b"def")  # laid out again, and cached
        assert (root / "lock").read_text().strip() == str(os.getpid())
        assert cache.stats().entries == 1 and read(cache, kept) == b"def"
        # The new lock is really held: another process is refused.
        with pytest.raises(ConfigError, match="in use"):
            DiskCache(root, 1000)


def test_parts_the_directory_cannot_take_are_spilled_and_never_admitted(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with DiskCache(root, 1000) as cache:
        subprocess.run(["rm", "-rf", str(root / "parts")], check=True)
        (root / "parts").write_text("in the way")  # the directory cannot be made again
        key = key_for("/data/a", b"abc")
        with caplog.at_level("WARNING"):
            for _ in range(3):
                path, fd = cache.create_part(key)
                try:
                    assert not os.path.exists(path)  # unlinked: nothing left behind
                    os.write(fd, b"abc")
                    assert os.pread(fd, 3, 0) == b"abc"
                finally:
                    os.close(fd)
                assert cache.admit(verify_part(key, path, 3, md5(b"abc"))) is False
        assert cache.stats().entries == 0 and cache.stats().rejected == 0
        assert [r.getMessage() for r in caplog.records if "cannot take" in r.getMessage()]
        assert len(caplog.records) == 1  # one warning, not one per download
        (root / "parts").unlink()
        with caplog.at_level("WARNING"):
            assert read(cache, put(cache, "/data/a", b"abc")) == b"abc"
        assert "caching resumes" in caplog.records[-1].getMessage()
