"""`xnatfs cache info` / `xnatfs cache clear` over real cache directories (no mount needed)."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from xnatfs.cache.commands import cache_clear, cache_info, is_cache_dir, lock_holder
from xnatfs.cache.disk import DiskCache
from xnatfs.cache.layout import read_lock_pid
from xnatfs.cache.metadata import ListingStore, store_path
from xnatfs.errors import ConfigError
from xnatfs.fileversion import FileVersion, verify_part

REPO = Path(__file__).resolve().parents[2]


def fill(root: Path, files: dict[str, bytes], limit: int = 10**6) -> list[FileVersion]:
    """A cache at `root` holding `files` (uri -> bytes); closed again afterwards."""
    keys = []
    with DiskCache(root, limit) as cache:
        for uri, data in files.items():
            key = FileVersion(uri, len(data), hashlib.md5(data).hexdigest())
            path, fd = cache.create_part(key)
            os.write(fd, data)
            os.close(fd)
            assert cache.admit(verify_part(key, path, len(data), key.digest))
            keys.append(key)
    return keys


def use(root: Path, keys: list[FileVersion], misses: int = 0) -> None:
    """A mount's worth of traffic: one hit per key, `misses` misses."""
    with DiskCache(root, 4096) as cache:
        for key in keys:
            fd = cache.open(key)
            assert fd is not None
            os.close(fd)
        for i in range(misses):
            assert cache.open(FileVersion(f"/missing/{i}", 1, "")) is None


def field(text: str, name: str) -> str:
    m = re.search(rf"^\s+{name}:\s+(.*)$", text, re.MULTILINE)
    assert m, text
    return m.group(1)


def test_info_of_one_server_cache(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    keys = fill(root, {"/data/a": b"a" * 1000, "/data/b": b"b" * 2000})
    use(root, keys, misses=3)
    text = cache_info(root)
    assert text.splitlines()[0] == str(root)
    assert field(text, "entries").startswith("2 files, 2.9 KiB (3,000 bytes)")
    assert field(text, "limit") == "4.0 KiB"  # of the last mount
    assert field(text, "last mount").startswith("2 hits, 3 misses, 0 evictions, 0 rejected")
    assert field(text, "in use") == "no"
    assert "downloads" not in text


def test_info_while_mounted_shows_the_holder_and_takes_no_lock(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    with DiskCache(root, 10**6) as cache:
        path, fd = cache.create_part(FileVersion("/data/big", 10, ""))
        os.write(fd, b"12345")
        text = cache_info(root)
        assert field(text, "in use") == f"yes, by pid {os.getpid()}"
        assert field(text, "downloads") == "1 unfinished (5 B), being written"
        assert field(text, "entries").startswith("0 files")
        # Still the only holder: info did not disturb the lock or the part.
        assert lock_holder(root) == os.getpid() and os.path.exists(path)
        os.close(fd)
    assert lock_holder(root) is None


def test_info_after_a_killed_mount(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    script = textwrap.dedent(
        """
        import os, sys
        from pathlib import Path
        from xnatfs.cache.disk import DiskCache
        from xnatfs.fileversion import FileVersion
        cache = DiskCache(Path(sys.argv[1]), 10**6)
        path, fd = cache.create_part(FileVersion("/data/big", 100, ""))
        os.write(fd, b"x" * 50)
        print("ready", flush=True)
        sys.stdin.read()
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        assert field(cache_info(root), "in use") == f"yes, by pid {proc.pid}"
    finally:
        proc.kill()
        proc.wait(timeout=10)
        for f in (proc.stdin, proc.stdout):
            if f is not None:
                f.close()
    assert read_lock_pid(root) == proc.pid  # SIGKILL left its pid behind ...
    text = cache_info(root)
    assert field(text, "in use") == "no"  # ... but no lock
    assert field(text, "downloads") == "1 unfinished (50 B), left by an interrupted mount"


def test_info_of_the_default_root_has_one_block_per_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    base = tmp_path / "xdg" / "xnatfs"
    fill(base / "https_one.example.org", {"/data/a": b"a"})
    fill(base / "https_two.example.org_8443", {"/data/b": b"bb", "/data/c": b"cc"})
    (base / "not-a-cache").mkdir()
    text = cache_info()
    blocks = text.split("\n\n")
    assert [b.splitlines()[0] for b in blocks] == [
        str(base / "https_one.example.org"),
        str(base / "https_two.example.org_8443"),
    ]
    assert field(blocks[0], "entries").startswith("1 files")
    assert field(blocks[1], "entries").startswith("2 files")


def test_info_of_missing_or_foreign_directories(tmp_path: Path) -> None:
    assert cache_info(tmp_path / "nothing") == f"{tmp_path / 'nothing'}: no cache yet"
    (tmp_path / "docs").mkdir()
    assert "not an xnatfs cache" in cache_info(tmp_path / "docs")


def test_info_without_saved_stats(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    fill(root, {"/data/a": b"abc"})
    (root / "stats.json").write_text("{ not json")
    text = cache_info(root)
    assert field(text, "limit") == "unknown"
    assert field(text, "last mount") == "no statistics saved"
    assert field(text, "entries").startswith("1 files")


def test_info_counts_many_entries(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    fill(root, {f"/data/{i}": bytes([i % 256]) * 3 for i in range(1500)})
    assert field(cache_info(root), "entries").startswith("1,500 files, 4.4 KiB (4,500 bytes)")


def test_clear_removes_entries_parts_and_stats(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    keys = fill(root, {"/data/a": b"a" * 10, "/data/b": b"b" * 20})
    (root / "parts" / "leftover.part").write_bytes(b"half")  # as a SIGKILL would leave it
    assert cache_clear(root) == f"{root}: removed 2 entries (30 B), 1 unfinished download(s)"
    assert sorted(p for p in root.rglob("*") if p.is_file()) == [root / "format", root / "lock"]
    assert is_cache_dir(root)
    with DiskCache(root, 10**6) as cache:
        assert cache.stats().entries == 0
        assert cache.open(keys[0]) is None
    assert cache_clear(root) == f"{root}: removed 0 entries (0 B)"


def test_clear_refuses_while_mounted_and_removes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    keys = fill(root, {"/data/a": b"abc"})
    with DiskCache(root, 10**6) as cache:
        with pytest.raises(ConfigError) as info:
            cache_clear(root)
        msg = str(info.value)
        assert str(root) in msg and f"pid {os.getpid()}" in msg and "unmount" in msg
        fd = cache.open(keys[0])
        assert fd is not None
        os.close(fd)
    assert "removed 1 entries" in cache_clear(root)


def test_clear_of_the_default_root_is_all_or_nothing(tmp_path: Path) -> None:
    base = tmp_path / "xnatfs"
    one, two = base / "https_one", base / "https_two"
    fill(one, {"/data/a": b"a"})
    fill(two, {"/data/b": b"b"})
    with DiskCache(two, 10**6), pytest.raises(ConfigError, match="https_two"):
        cache_clear(base)
    assert field(cache_info(one), "entries").startswith("1 files")  # untouched
    assert cache_clear(base).splitlines() == [
        f"{one}: removed 1 entries (1 B)",
        f"{two}: removed 1 entries (1 B)",
    ]


def test_clear_leaves_foreign_files_alone(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    (home / "data" / "thesis.tex").write_text("precious")
    (home / "notes.part").write_text("precious too")
    assert cache_clear(home) == f"{home}: nothing to clear"
    # Even a cache directory that somebody also used for other files keeps them.
    fill(home, {"/data/a": b"a"})
    (home / "data" / "ab").mkdir(exist_ok=True)
    (home / "data" / "ab" / "mine.txt").write_text("keep")
    assert "removed 1 entries" in cache_clear(home)
    assert (home / "data" / "thesis.tex").read_text() == "precious"
    assert (home / "notes.part").read_text() == "precious too"
    assert (home / "data" / "ab" / "mine.txt").read_text() == "keep"


def test_listings_kept_on_disk_are_shown_and_cleared(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    fill(root, {"/data/a": b"a" * 10})
    for user in ("alice", "bob"):
        store = ListingStore(store_path(root, user), 1 << 20)
        store.put("/data/projects", [{"ID": "P"}], 1.0)
        store.close()
    assert field(cache_info(root), "listings").startswith("kept for 2 user(s), ")
    assert cache_clear(root) == (
        f"{root}: removed 1 entries (10 B), the listings kept for 2 user(s)"
    )
    assert not list((root / "metadata").iterdir())
    assert "  listings:" not in cache_info(root)
