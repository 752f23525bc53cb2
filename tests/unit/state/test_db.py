"""mdbackup.state.db: opening SQLite, the stored form of paths, a damaged file moved aside."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import peewee
import pytest

from mdbackup.state.db import (
    ADDED_COLUMNS,
    StateCorrupt,
    StateDB,
    StateOwnedElsewhere,
    StateUnavailable,
    is_corruption,
    path_from_db,
    path_to_db,
)


@pytest.mark.parametrize(
    "path",
    [
        "notes/a.md",
        "notes/with space/ü.md",
        "notes/100%.md",
        b"notes/caf\xe9.md".decode("utf-8", "surrogateescape"),
        b"notes/\xff\xfe%41.md".decode("utf-8", "surrogateescape"),
    ],
)
def test_every_path_round_trips_through_its_stored_form(path: str) -> None:
    stored = path_to_db(path)
    stored.encode("utf-8")  # SQLite text can hold it
    assert path_from_db(stored) == path


def test_a_valid_utf8_path_is_stored_as_itself_and_others_are_marked() -> None:
    assert path_to_db("notes/ü.md") == "notes/ü.md"
    assert path_to_db(b"notes/caf\xe9 %.md".decode("utf-8", "surrogateescape")) == "/notes/caf%E9 %25.md"


def test_a_new_database_has_its_tables_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "deep/state.db"
    db = StateDB(path)
    db.close()
    conn = sqlite3.connect(path)
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"paths", "repository"} <= tables
        assert conn.execute("SELECT count(*) FROM repository").fetchone() == (1,)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        conn.close()
    assert db.moved_aside is None and db.corruption is None


def test_a_file_that_is_not_a_database_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not an SQLite file, not at all" * 100)
    db = StateDB(path)
    db.close()
    assert db.moved_aside is not None and db.moved_aside.name.startswith("state.db.corrupt-")
    assert db.moved_aside.read_bytes().startswith(b"this is not an SQLite file")
    assert db.corruption and "not a database" in db.corruption
    again = StateDB(path)  # the new file is sound: nothing moved this time
    again.close()
    assert again.moved_aside is None


def test_is_corruption_tells_damage_from_other_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"x" * 4096)
    conn = sqlite3.connect(junk)
    try:
        with pytest.raises(sqlite3.DatabaseError) as damaged:
            conn.execute("SELECT * FROM sqlite_master").fetchall()
    finally:
        conn.close()
    assert is_corruption(damaged.value)
    db = peewee.SqliteDatabase(str(junk))
    try:
        with pytest.raises(peewee.DatabaseError) as wrapped:  # as peewee raises it
            db.execute_sql("SELECT * FROM sqlite_master")
    finally:
        db.close()
    assert is_corruption(wrapped.value)
    try:
        raise RuntimeError("while opening") from damaged.value
    except RuntimeError as chained:
        assert is_corruption(chained)
    assert not is_corruption(sqlite3.OperationalError("database is locked"))
    assert not is_corruption(OSError(28, "No space left on device"))


def test_an_older_database_gets_the_new_columns_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    StateDB(path).close()
    conn = sqlite3.connect(path)
    for column in ADDED_COLUMNS["repository"]:  # as the first release made it
        conn.execute(f"ALTER TABLE repository DROP COLUMN {column}")
    conn.execute("UPDATE repository SET paused = 1")
    conn.commit()
    conn.close()
    with pytest.raises(StateUnavailable, match="older schema"):
        StateDB(path, read_only=True)
    db = StateDB(path, owner=str(tmp_path))
    try:
        assert db.moved_aside is None
        row = db.RepoRecord.get_by_id(1)
        assert (row.paused, row.owner, row.push_enabled) == (True, str(tmp_path), None)
    finally:
        db.close()


def test_without_repair_a_damaged_file_is_left_where_it_is(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"garbage" * 1000)
    with pytest.raises(StateCorrupt):
        StateDB(path, repair=False)
    assert path.read_bytes() == b"garbage" * 1000 and list(tmp_path.iterdir()) == [path]


def test_a_database_owned_by_another_existing_repository_is_refused(tmp_path: Path) -> None:
    first, second = tmp_path / "first.git", tmp_path / "second.git"
    first.mkdir(), second.mkdir()
    StateDB(tmp_path / "state.db", owner=str(first)).close()
    with pytest.raises(StateOwnedElsewhere) as caught:
        StateDB(tmp_path / "state.db", owner=str(second))
    assert (caught.value.owner, caught.value.other) == (str(second), str(first))
