"""The repository row (`mdbackup.state.repository`): paused flag and push state."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from mdbackup.state.db import StateDB
from mdbackup.state.repository import RepositoryState
from mdbackup.statuses import PushStatus


def test_paused_and_push_state_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db = StateDB(path)
    state = RepositoryState(db)
    state.set_paused(True)
    state.mark_push_failed(error="boom", attempts=2, next_attempt_at=50.0, ahead=3)
    db.close()
    db2 = StateDB(path)
    again = RepositoryState(db2)
    assert again.paused() is True
    push = again.push_state()
    assert (push.status, push.last_error, push.attempts, push.next_attempt_at, push.ahead) == (
        PushStatus.FAILED,
        "boom",
        2,
        50.0,
        3,
    )
    db2.close()
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_a_commit_makes_the_push_pending_but_a_failed_push_keeps_its_backoff(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    state = RepositoryState(db)
    state.mark_push_pending(ahead=1)
    assert (state.push_state().status, state.push_state().ahead) == (PushStatus.PENDING, 1)
    state.mark_push_failed(error="down", attempts=1, next_attempt_at=10.0, ahead=1)
    state.mark_push_pending(ahead=2)
    push = state.push_state()
    assert (push.status, push.ahead, push.next_attempt_at) == (PushStatus.FAILED, 2, 10.0)
    db.close()


def test_retry_push_only_moves_a_failed_push(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    state = RepositoryState(db)
    assert state.retry_push() is False
    state.mark_push_failed(error="down", attempts=3, next_attempt_at=99.0, ahead=1)
    assert state.retry_push() is True
    push = state.push_state()
    assert (push.status, push.next_attempt_at) == (PushStatus.PENDING, None)
    state.mark_pushed(at=120.0)
    push = state.push_state()
    assert (push.status, push.attempts, push.last_error, push.last_push_at, push.ahead) == (
        PushStatus.SUCCESS,
        0,
        None,
        120.0,
        0,
    )
    state.mark_push_disabled()
    assert state.push_state().status is PushStatus.DISABLED
    db.close()
