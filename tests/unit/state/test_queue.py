"""The durable path queue (`mdbackup.state.queue`) on a real SQLite file."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import peewee
import pytest

from mdbackup.clock import backoff
from mdbackup.state.db import StateDB
from mdbackup.state.queue import FORGET, SUCCESS, Outcome, PathQueue
from mdbackup.statuses import PathStatus

RETRY = {"retry_delay": lambda attempts: backoff(attempts, minimum=5.0, maximum=900.0)}


@pytest.fixture
def state(tmp_path: Path) -> Iterator[StateDB]:
    db = StateDB(tmp_path / "mdbackup" / "state.db")
    yield db
    db.close()


@pytest.fixture
def queue(state: StateDB) -> PathQueue:
    return PathQueue(state)


def status_of(queue: PathQueue, path: str) -> PathStatus:
    return {r.path: r.status for r in queue.rows(include_success=True)}[path]


def test_record_take_finish(queue: PathQueue) -> None:
    queue.record(["a.md", "b.md", "a.md"], now=100.0)
    assert queue.counts()["pending"] == 2
    batch = queue.take_batch(now=101.0)
    assert batch.paths == ("a.md", "b.md")
    assert queue.counts()["queued"] == 2
    queue.finish_batch(batch, {"a.md": SUCCESS, "b.md": SUCCESS}, now=102.0, **RETRY)
    assert queue.counts()["success"] == 2
    assert queue.rows() == []
    assert all(r.last_backup_at == 102.0 for r in queue.rows(include_success=True))


def test_change_recorded_while_queued_stays_pending(queue: PathQueue) -> None:
    queue.record(["a.md"], now=1.0)
    batch = queue.take_batch(now=2.0)
    queue.record(["a.md"], now=3.0)  # the file changed while its batch was committed
    assert status_of(queue, "a.md") is PathStatus.QUEUED
    queue.finish_batch(batch, {"a.md": SUCCESS}, now=4.0, **RETRY)
    row = queue.rows()[0]
    assert row.status is PathStatus.PENDING
    assert row.last_backup_at == 4.0  # the older content was committed


def test_failure_keeps_last_backup_at_and_backs_off(queue: PathQueue) -> None:
    queue.record(["a.md"], now=1.0)
    queue.finish_batch(queue.take_batch(now=1.0), {"a.md": SUCCESS}, now=2.0, **RETRY)
    queue.record(["a.md"], now=3.0)
    failed = Outcome(PathStatus.FAILED, error="permission denied")
    queue.finish_batch(queue.take_batch(now=3.0), {"a.md": failed}, now=4.0, **RETRY)
    row = queue.rows()[0]
    assert (row.status, row.last_backup_at, row.last_error, row.attempts) == (
        PathStatus.FAILED,
        2.0,
        "permission denied",
        1,
    )
    assert row.next_attempt_at == 4.0 + 5.0
    assert len(queue.take_batch(now=5.0)) == 0  # not due yet
    queue.finish_batch(queue.take_batch(now=9.0), {"a.md": failed}, now=9.0, **RETRY)
    assert queue.rows()[0].next_attempt_at == 9.0 + 10.0
    assert queue.rows()[0].attempts == 2


def test_backoff_is_capped() -> None:
    assert [backoff(n, minimum=5, maximum=30) for n in (1, 2, 3, 4, 5)] == [5, 10, 20, 30, 30]


def test_deferred_paths_go_back_to_pending_without_an_attempt(queue: PathQueue) -> None:
    queue.record(["a.md"], now=1.0)
    queue.finish_batch(queue.take_batch(now=1.0), {}, now=2.0, **RETRY)
    row = queue.rows()[0]
    assert row.status is PathStatus.PENDING and row.attempts == 0


def test_forget_drops_the_row_unless_changed_since(queue: PathQueue) -> None:
    queue.record(["ignored.md", "changed.md"], now=1.0)
    batch = queue.take_batch(now=1.0)
    queue.record(["changed.md"], now=1.5)
    queue.finish_batch(batch, {"ignored.md": FORGET, "changed.md": FORGET}, now=2.0, **RETRY)
    assert [r.path for r in queue.rows(include_success=True)] == ["changed.md"]


def test_requeue_interrupted_and_retry_failed(queue: PathQueue) -> None:
    queue.record(["a.md", "b.md"], now=1.0)
    batch = queue.take_batch(now=1.0)
    queue.finish_batch(
        batch, {"a.md": SUCCESS, "b.md": Outcome(PathStatus.FAILED, error="x")}, now=2.0, **RETRY
    )
    queue.record(["c.md"], now=3.0)
    queue.take_batch(now=3.0)  # a crash leaves c.md queued
    assert queue.requeue_interrupted(now=4.0) == 1
    assert queue.retry_failed(now=4.0) == 1
    assert queue.counts()["pending"] == 2


def test_status_check_constraint_rejects_unknown_status(state: StateDB) -> None:
    with pytest.raises(peewee.IntegrityError):
        state.PathRecord.insert(path="x", status="bogus", updated_at=0).execute()


def test_two_threads_and_a_second_connection_do_not_lose_writes(state: StateDB, queue: PathQueue) -> None:
    """A writer thread records while the main thread takes and finishes batches."""
    done = threading.Event()
    written: list[str] = []

    def writer() -> None:
        for i in range(300):
            queue.record([f"f{i % 50}.md"], now=float(i))
            written.append(f"f{i % 50}.md")
        state.close()
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    other_db = StateDB(state.path)  # as `status` from another process would open it
    other = PathQueue(other_db)
    while not done.is_set():
        batch = queue.take_batch(now=0.0)
        queue.finish_batch(batch, {p: SUCCESS for p in batch.paths}, now=1.0, **RETRY)
        other.counts()
    thread.join()
    batch = queue.take_batch(now=0.0)
    queue.finish_batch(batch, {p: SUCCESS for p in batch.paths}, now=1.0, **RETRY)
    assert queue.counts()["success"] == 50 and queue.counts()["pending"] == 0
    other_db.close()
