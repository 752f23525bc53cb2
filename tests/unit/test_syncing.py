"""`Syncer` through `Backup` in process: two real clones of a real bare remote, a real
state database, a fake clock. Git is the oracle for what lands where."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mdbackup.actions.status import report
from mdbackup.backup import Backup
from mdbackup.statuses import SyncStatus
from tests.support.backup import FakeClock, make_config
from tests.support.clones import Clones, commit_all, make_clones, push, write
from tests.support.git import git, head_files

SYNC = "[push]\nenabled = true\n[sync]\nenabled = true\ninterval = 30\n"


@pytest.fixture
def clones(tmp_path: Path) -> Clones:
    return make_clones(tmp_path, files={"notes/a.md": "one\ntwo\nthree\n", "other/c.txt": "c\n"})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def backup(clones: Clones, clock: FakeClock) -> Iterator[Backup]:
    b = Backup.open(make_config(clones.a, SYNC), clock=clock)
    yield b
    b.close()


def remote_head(clones: Clones) -> str:
    return git(clones.remote, "rev-parse", "main").strip()


def test_only_the_remote_moved_fast_forwards_files_index_and_branch(backup: Backup, clones: Clones) -> None:
    write(clones.b, "notes/a.md", "one\ntwo\nthree from b\n")
    write(clones.b, "notes/new.md", "new\n")
    commit_all(clones.b)
    push(clones.b)
    backup.recover(reason="start")
    assert git(clones.a, "rev-parse", "HEAD").strip() == remote_head(clones)
    assert (clones.a / "notes/new.md").read_text() == "new\n"
    assert git(clones.a, "status", "--porcelain") == ""
    sync = report(backup, all_paths=False)["sync"]
    assert (sync["enabled"], sync["status"], sync["behind"], sync["ahead"]) == (True, "idle", 0, 0)
    assert sync["last_fetch_at"] is not None
    # our own writes come back through the watcher/scan: committing them makes no commit
    before = git(clones.a, "rev-parse", "HEAD").strip()
    backup.record(["notes/a.md", "notes/new.md"])
    assert backup.commit_now().commit_id is None
    assert git(clones.a, "rev-parse", "HEAD").strip() == before


def test_both_moved_the_user_change_is_committed_then_merged_with_a_conflict_copy(
    backup: Backup, clones: Clones
) -> None:
    write(clones.b, "notes/a.md", "one\nTWO from b\nthree\n")
    write(clones.b, "notes/b-only.md", "b\n")
    commit_all(clones.b)
    push(clones.b)
    write(clones.a, "notes/a.md", "one\nTWO from a\nthree\n")  # not committed yet
    backup.recover(reason="start")
    head = git(clones.a, "rev-parse", "HEAD").strip()
    parents = git(clones.a, "rev-list", "--parents", "-n", "1", head).split()[1:]
    assert len(parents) == 2 and parents[1] == git(clones.b, "rev-parse", "HEAD").strip()
    files = head_files(clones.a)
    assert files["notes/a.md"] == "one\nTWO from a\nthree\n"
    copies = [p for p in files if p.startswith("notes/a.conflict-")]
    assert len(copies) == 1 and files[copies[0]] == "one\nTWO from b\nthree\n"
    assert copies[0].endswith("Z.md")
    assert files["notes/b-only.md"] == "b\n"
    assert (clones.a / copies[0]).read_text() == "one\nTWO from b\nthree\n"
    assert git(clones.a, "status", "--porcelain") == ""
    assert remote_head(clones) == head  # pushed after the merge
    sync = report(backup, all_paths=False)["sync"]
    assert sync["conflicts"] == copies and sync["status"] == "idle"


def test_a_change_outside_the_store_blocks_the_merge_and_backups_go_on(
    backup: Backup, clones: Clones
) -> None:
    write(clones.b, "other/c.txt", "c from b\n")
    commit_all(clones.b)
    push(clones.b)
    write(clones.a, "other/c.txt", "mine\n")
    write(clones.a, "notes/mine.md", "mine\n")
    backup.recover(reason="start")
    assert (clones.a / "other/c.txt").read_text() == "mine\n"
    assert head_files(clones.a)["notes/mine.md"] == "mine\n"
    sync = report(backup, all_paths=False)["sync"]
    assert (sync["status"], sync["blocked_by"], sync["behind"]) == ("blocked", "other/c.txt", 1)
    write(clones.a, "other/c.txt", "c\n")  # the user undoes it: the next fetch merges
    assert backup._syncer.sync(reason="test").status is SyncStatus.IDLE
    assert (clones.a / "other/c.txt").read_text() == "c from b\n"


def test_sync_off_never_fetches_and_schedules_nothing(clones: Clones, clock: FakeClock) -> None:
    backup = Backup.open(make_config(clones.a, "[push]\nenabled = false\n"), clock=clock)
    try:
        write(clones.b, "notes/a.md", "b\n")
        commit_all(clones.b)
        push(clones.b)
        before = git(clones.a, "rev-parse", "refs/remotes/origin/main").strip()
        backup.recover(reason="start")
        backup.run_due(degraded=False)
        assert backup._syncer.deadline() is None
        assert git(clones.a, "rev-parse", "refs/remotes/origin/main").strip() == before
        assert report(backup, all_paths=False)["sync"]["status"] == "disabled"
    finally:
        backup.close()


def test_the_next_fetch_is_an_interval_away_and_a_failure_is_recorded(
    backup: Backup, clones: Clones, clock: FakeClock
) -> None:
    backup.recover(reason="start")
    tick = backup.run_due(degraded=False)
    assert tick.next_at is not None and tick.next_at <= clock.monotonic() + 30
    git(clones.a, "remote", "set-url", "origin", str(clones.remote.parent / "gone.git"))
    clock.now += 30
    backup.run_due(degraded=False)
    sync = report(backup, all_paths=False)["sync"]
    assert sync["status"] == "failed" and sync["last_error"]


def test_paused_fetches_but_merges_nothing_until_resumed(backup: Backup, clones: Clones) -> None:
    write(clones.b, "notes/new.md", "new\n")
    commit_all(clones.b)
    push(clones.b)
    before = git(clones.a, "rev-parse", "HEAD").strip()
    backup.set_paused(True)
    assert backup._syncer.sync(reason="test").status is SyncStatus.BEHIND
    assert git(clones.a, "rev-parse", "HEAD").strip() == before
    assert not (clones.a / "notes/new.md").exists()
    assert report(backup, all_paths=False)["sync"]["behind"] == 1
    backup.set_paused(False)
    assert backup._syncer.sync(reason="test").moved
    assert (clones.a / "notes/new.md").read_text() == "new\n"


def test_check_tells_clean_conflict_and_blocked_and_moves_nothing(backup: Backup, clones: Clones) -> None:
    assert backup.check_sync() == (True, "ok (origin/main: up to date, 0 ahead)")
    write(clones.b, "notes/a.md", "one\nTWO from b\nthree\n")
    commit_all(clones.b)
    push(clones.b)
    ok, line = backup.check_sync()
    assert ok and line == "ok (1 behind, 0 ahead); a fast-forward would be clean"
    write(clones.a, "notes/a.md", "one\nTWO from a\nthree\n")
    commit_all(clones.a)
    ok, line = backup.check_sync()
    assert ok and line == "ok (1 behind, 1 ahead); a merge would keep both versions of: notes/a.md"
    write(clones.a, "other/c.txt", "mine\n")
    write(clones.b, "other/c.txt", "theirs\n")
    commit_all(clones.b)
    push(clones.b)
    head = git(clones.a, "rev-parse", "HEAD").strip()
    tracking = git(clones.a, "rev-parse", "refs/remotes/origin/main").strip()
    ok, line = backup.check_sync()
    assert not ok and line.startswith("blocked (2 behind, 1 ahead): the remote changed other/c.txt")
    assert git(clones.a, "rev-parse", "HEAD").strip() == head
    assert git(clones.a, "rev-parse", "refs/remotes/origin/main").strip() == tracking
    assert (clones.a / "other/c.txt").read_text() == "mine\n"
    assert report(backup, all_paths=False)["sync"]["last_fetch_at"] is None  # check records nothing


def test_a_merge_makes_a_refused_push_due_at_once(backup: Backup, clones: Clones, clock: FakeClock) -> None:
    write(clones.a, "notes/mine.md", "mine\n")
    backup.record(["notes/mine.md"])
    backup.commit_now()
    write(clones.b, "notes/theirs.md", "theirs\n")
    commit_all(clones.b)
    push(clones.b)
    backup._pusher.push_if_due(force=True)  # refused: the remote moved
    assert report(backup, all_paths=False)["push"]["status"] == "failed"
    assert backup._syncer.sync(reason="test").moved
    push_state = report(backup, all_paths=False)["push"]
    assert push_state["status"] == "pending" and push_state["next_attempt_at"] is None
    backup.run_due(degraded=False)
    assert remote_head(clones) == git(clones.a, "rev-parse", "HEAD").strip()
