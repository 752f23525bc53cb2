"""mdbackup.reading: opening the state database for each caller, and the status snapshot."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from mdbackup import reading
from mdbackup.backup import Backup
from mdbackup.state.db import StateOwnedElsewhere, StateUnavailable
from tests.support.backup import FakeClock, make_config
from tests.support.git import git, init_repo


def test_a_missing_database_reads_as_an_empty_state_and_is_not_created(repo: Path, store: Path) -> None:
    db = repo / ".git/mdbackup/state.db"
    backup = Backup.open(make_config(repo), read_only=True)
    try:
        snapshot = backup.snapshot(all_paths=True)
        assert backup.state_note and "no state database" in backup.state_note
        assert snapshot.counts["pending"] == 0 and snapshot.rows == ()
        assert snapshot.push.enabled is None and snapshot.daemon is None
    finally:
        backup.close()
    assert not db.exists() and not db.parent.exists()


def test_a_read_only_open_writes_nothing(repo: Path, store: Path) -> None:
    Backup.open(make_config(repo)).close()
    db = repo / ".git/mdbackup/state.db"
    before = db.read_bytes()
    db.chmod(0o444)  # a read-write open of a read-only file could not even insert its row
    try:
        backup = Backup.open(make_config(repo), read_only=True)
        try:
            assert backup.snapshot(all_paths=False).counts["failed"] == 0
        finally:
            backup.close()
    finally:
        db.chmod(0o644)
    assert db.read_bytes() == before


def test_an_unknown_schema_is_reported_read_only_and_rebuilt_read_write(repo: Path, store: Path) -> None:
    db = repo / ".git/mdbackup/state.db"
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE repository (id INTEGER PRIMARY KEY, colour TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(StateUnavailable, match="unknown schema"):
        Backup.open(make_config(repo), read_only=True)
    assert not list(db.parent.glob("state.db.corrupt-*"))
    backup = Backup.open(make_config(repo))
    try:
        assert backup.paused() is False
    finally:
        backup.close()
    assert len(list(db.parent.glob("state.db.corrupt-*"))) == 1


def test_another_repositorys_database_is_refused_read_only_too(
    tmp_path: Path, repo: Path, store: Path
) -> None:
    other = init_repo(tmp_path / "other")
    shared = tmp_path / "shared.db"
    body = f'[state]\ndb = "{shared}"\n'
    Backup.open(make_config(other, body)).close()
    for read_only in (True, False):
        with pytest.raises(StateOwnedElsewhere) as caught:
            Backup.open(make_config(repo, body), read_only=read_only)
        message = str(caught.value)
        assert str(shared) in message and str(other / ".git") in message and str(repo / ".git") in message


def test_a_moved_repository_adopts_its_database(tmp_path: Path) -> None:
    first = init_repo(tmp_path / "first")
    (first / "notes").mkdir()
    Backup.open(make_config(first)).close()
    moved = tmp_path / "moved"
    os.rename(first, moved)
    Backup.open(make_config(moved)).close()  # the recorded owner is gone: no refusal
    state = reading.open_state(moved / ".git", moved / ".git/mdbackup/state.db", read_only=True, repair=False)
    try:
        assert state.state.owner() == str((moved / ".git").resolve())
    finally:
        state.state.close()


def test_the_snapshot_counts_ahead_from_the_refs_and_shows_the_daemons_config(
    repo: Path, store: Path, tmp_path: Path
) -> None:
    clock = FakeClock()
    config = make_config(repo, "[push]\nenabled = true\n")
    backup = Backup.open(config, clock=clock)
    try:
        backup.serving(pid=4242)
        (store / "x.md").write_text("x\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "by hand")
        snapshot = backup.snapshot(all_paths=False)
        assert snapshot.ahead == int(git(repo, "rev-list", "--count", "HEAD").strip())  # never pushed
        assert snapshot.daemon == reading.daemon_config(config, pid=4242, at=clock.now)
    finally:
        backup.close()
