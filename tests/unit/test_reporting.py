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


def test_a_success_row_whose_file_came_back_ignored_is_dropped_at_start(repo: Path, store: Path) -> None:
    """A path recorded `success` (here: deleted, and the deletion committed) whose file comes
    back while an ignore rule covers it and no daemon runs: the start-up scan does not see it
    (git ignores it, untracked), so its row stayed `success` for a file never committed
    (found by the soak). Recovering drops it, as it drops paths the config no longer wants."""
    b = Backup.open(make_config(repo), clock=FakeClock())
    try:
        (store / "with space-1.md").write_text("v1\n")
        (store / "kept.md").write_text("kept\n")
        b.recover(reason="start")
        (store / "with space-1.md").unlink()
        b.recover(reason="start")
        (store / ".gitignore").write_text("with space-*.md\nkept.md\n")
        (store / "with space-1.md").write_text("back, ignored\n")
        b.recover(reason="start")
        rows = {r.path: r.status.value for r in b.snapshot(all_paths=True).rows}
        assert rows == {"notes/kept.md": "success"}, rows  # tracked: ignore rules do not apply
    finally:
        b.close()
