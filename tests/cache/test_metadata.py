"""Listings kept on disk: round trip, bounded, private, per user, crash-safe enough to ignore."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from xnatfs.cache.metadata import ListingStore, decode_rows, encode_rows, store_path
from xnatfs.errors import ConfigError

ROWS = [
    {"ID": "1", "type": "T1", "URI": "/data/experiments/E/scans/1"},
    {"ID": "2", "type": "", "URI": "/data/experiments/E/scans/2", "note": "only here"},
    {"ID": "\udcff odd bytes", "type": "T2∕FLAIR"},
    {"ID": "3", "label": "\ud800 a lone surrogate (a JSON escape)"},
]


def test_text_that_is_not_utf8_is_stored_and_found_again(tmp_path: Path) -> None:
    store = ListingStore(store_path(tmp_path, "alice"), 10**6)
    odd = "/data/projects/P/resources/1/files/\udcff\ud800.dcm"
    store.put(odd, ROWS, 1.0)
    store.put_size(odd, 42)
    store.put_size(odd.replace("\udcff\ud800", "plain"), 7)
    assert store.get(odd) == (ROWS, 1.0)
    assert (store.size(odd), store.size(odd.replace("\udcff\ud800", "plain"))) == (42, 7)
    store.close()


def test_rows_survive_encoding_exactly() -> None:
    assert decode_rows(encode_rows(ROWS)) == ROWS
    assert decode_rows(encode_rows([])) == []


def test_a_listing_round_trips_with_its_fetch_time(tmp_path: Path) -> None:
    store = ListingStore(store_path(tmp_path, "alice"), 10**6)
    assert store.get("/data/x") is None
    store.put("/data/x", ROWS, 1234.5)
    assert store.get("/data/x") == (ROWS, 1234.5)
    store.close()
    again = ListingStore(store_path(tmp_path, "alice"), 10**6)  # across mounts
    assert again.get("/data/x") == (ROWS, 1234.5)
    again.age_all()  # SIGHUP: ask before trusting
    assert again.get("/data/x") == (ROWS, 0.0)
    again.delete("/data/x")
    assert again.get("/data/x") is None
    again.close()


def test_each_user_has_a_store_of_their_own_and_it_is_private(tmp_path: Path) -> None:
    assert store_path(tmp_path, "alice") != store_path(tmp_path, "bob")
    assert store_path(tmp_path, None) != store_path(tmp_path, "alice")
    path = store_path(tmp_path, "alice")
    assert "alice" not in os.fspath(path)
    ListingStore(path, 10**6).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_the_store_stays_within_its_bound_dropping_least_used(tmp_path: Path) -> None:
    rows = [{"URI": f"/data/f/{i}", "digest": os.urandom(16).hex()} for i in range(200)]
    one = len(encode_rows(rows))
    store = ListingStore(tmp_path / "m.db", one * 5)
    for i in range(10):
        store.put(f"/data/{i}", rows, float(i))
        store.get("/data/0")  # kept in use
    assert store.stats()["stored_listing_bytes"] <= one * 5  # type: ignore[operator]
    assert store.get("/data/0") is not None and store.get("/data/9") is not None
    assert store.get("/data/1") is None
    store.close()


def test_learned_sizes_and_facts(tmp_path: Path) -> None:
    store = ListingStore(tmp_path / "m.db", 10**6)
    assert store.size("/data/f") is None
    store.put_size("/data/f", 52)
    assert store.size("/data/f") == 52
    store.put_fact("first_seen", "17")
    assert store.fact("first_seen") == "17"
    store.close()


def test_a_damaged_database_is_a_miss_not_a_failure(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    store = ListingStore(path, 10**6)
    store.put("/data/x", ROWS, 1.0)
    store._db.execute("UPDATE listings SET body = x'00'")  # garbage where a listing was
    assert store.get("/data/x") is None
    store.close()


def test_a_file_that_is_no_database_is_replaced_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "m.db"
    path.write_bytes(b"this is not an SQLite database" * 100)
    store = ListingStore(path, 10**6)
    assert store.get("/data/x") is None
    store.put("/data/x", ROWS, 1.0)
    assert store.get("/data/x") == (ROWS, 1.0)
    assert store.stats()["stored_listings"] == 1
    store.close()
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "starting afresh" in caplog.text


def test_failing_writes_warn_once_and_count_stays_true(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = ListingStore(tmp_path / "m.db", 10**6)
    store.put("/data/a", ROWS, 1.0)
    store._db.execute("PRAGMA query_only = ON")  # every write fails from here, as on a full disk
    for i in range(5):
        store.put(f"/data/b{i}", ROWS, 1.0)
        store.put_size(f"/data/f{i}", 3)
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == 1
    assert store.stats()["stored_listings"] == 1
    store._db.execute("PRAGMA query_only = OFF")
    store.put("/data/c", ROWS, 1.0)
    assert store.stats()["stored_listings"] == 2
    store.close()


def test_a_store_that_is_not_ours_alone_is_refused(tmp_path: Path) -> None:
    path = store_path(tmp_path, "alice")
    ListingStore(path, 10**6).close()
    os.chmod(path.parent, 0o777)
    with pytest.raises(ConfigError, match="is writable by every user"):
        ListingStore(path, 10**6)
    os.chmod(path.parent, 0o700)
    elsewhere = tmp_path / "elsewhere.db"
    path.rename(elsewhere)
    path.symlink_to(elsewhere)
    with pytest.raises(ConfigError, match="is a symbolic link"):
        ListingStore(path, 10**6)
