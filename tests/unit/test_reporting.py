"""`mdbackup.reporting` through a real `Backup`: what status, check, pause and retry see."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mdbackup.backup import Backup
from tests.support.backup import FakeClock, make_config


@pytest.fixture
def backup(repo: Path, store: Path) -> Iterator[Backup]:
    b = Backup.open(make_config(repo, max_file_size=10), clock=FakeClock())
    yield b
    b.close()


def test_status_line_counts_and_says_paused(backup: Backup, store: Path) -> None:
    assert backup.status_line() == "0 pending, 0 failed, last backup never"
    (store / "a.md").write_text("a\n")
    backup.record(["notes/a.md"])
    backup.set_paused(True)
    assert backup.paused() is True
    assert backup.status_line() == "paused; 1 pending, 0 failed, last backup never"


def test_retry_makes_failed_paths_due_and_snapshot_shows_them(backup: Backup, store: Path) -> None:
    (store / "big.md").write_text("more than ten bytes\n")
    backup.record(["notes/big.md"])
    backup.commit_now()
    snapshot = backup.snapshot(all_paths=False)
    assert [(r.path, r.status.value) for r in snapshot.rows] == [("notes/big.md", "failed")]
    assert snapshot.counts["failed"] == 1 and snapshot.head.branch == "main"
    assert backup.retry_now() == (1, False)
    assert backup.snapshot(all_paths=False).counts["pending"] == 1


def test_repository_facts_name_the_branch_busy_state_and_hooks(backup: Backup, repo: Path) -> None:
    facts = backup.repository_facts()
    assert (facts.head.branch, facts.busy, facts.hooks) == ("main", None, ())
    (repo / ".git" / "index.lock").write_text("")
    try:
        assert backup.repository_facts().busy == "another process holds index.lock"
    finally:
        (repo / ".git" / "index.lock").unlink()
