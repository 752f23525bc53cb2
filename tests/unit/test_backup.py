"""`Backup` in process: a real repository and state database, driven by a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mdbackup.backup import Backup
from mdbackup.inbox import Drained
from mdbackup.schedule import PATH_RETRY_MIN
from tests.support.backup import FakeClock, make_config
from tests.support.git import commit_count, head_files


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def backup(repo: Path, store: Path, clock: FakeClock) -> Iterator[Backup]:
    b = Backup.open(make_config(repo, "[watch]\ndebounce = 2.0\nmax_delay = 10.0\n"), clock=clock)
    yield b
    b.close()


def test_a_batch_waits_for_the_debounce_then_commits(
    backup: Backup, repo: Path, store: Path, clock: FakeClock
) -> None:
    (store / "a.md").write_text("a\n")
    assert backup.record(["notes/a.md"]) == 1
    tick = backup.run_due(degraded=False)
    assert tick.next_at == clock.monotonic() + 2.0
    assert "notes/a.md" not in head_files(repo)
    clock.now += 2.0
    backup.run_due(degraded=False)
    assert head_files(repo)["notes/a.md"] == "a\n"


def test_the_debounce_runs_from_when_a_change_arrived_not_when_it_was_taken_in(
    backup: Backup, repo: Path, store: Path, clock: FakeClock
) -> None:
    """Why: the worker lets a save's events gather a few ms before taking them in; the
    batch must not wait those ms longer (nor more than a second's worth, whatever `at`)."""
    (store / "a.md").write_text("a\n")
    arrived = clock.monotonic()
    clock.now += 0.25  # taken in a quarter of a second after it arrived
    backup.take_in(Drained(paths={"notes/a.md"}, newest_at=arrived))
    tick = backup.run_due(degraded=False)
    assert tick.next_at == pytest.approx(arrived + 2.0)
    backup.take_in(Drained(paths={"notes/a.md"}, newest_at=clock.monotonic() - 60))
    assert backup.run_due(degraded=False).next_at == pytest.approx(clock.monotonic() - 1.0 + 2.0)
    clock.now += 1.0
    backup.run_due(degraded=False)
    assert head_files(repo)["notes/a.md"] == "a\n"


def test_a_file_edited_without_pause_is_committed_after_max_delay(
    backup: Backup, repo: Path, store: Path, clock: FakeClock
) -> None:
    start = clock.now
    for _ in range(6):  # a change every 1.5 s for 9 s: never 2 s of quiet
        (store / "busy.md").write_text(f"{clock.now}\n")
        backup.record(["notes/busy.md"])
        backup.run_due(degraded=False)
        clock.now += 1.5
    assert "notes/busy.md" not in head_files(repo)
    clock.now = start + 10.0
    backup.run_due(degraded=False)
    assert "notes/busy.md" in head_files(repo)


def test_a_scan_records_only_the_store_paths_the_filter_wants(
    backup: Backup, repo: Path, store: Path
) -> None:
    for name in ("a.txt", "x.md.swp", "keep.md"):
        (store / name).write_text(name)
    (repo / "outside.md").write_text("not in the store\n")
    backup.scan(reason="test")
    assert [row.path for row in backup.snapshot(all_paths=True).rows] == ["notes/keep.md"]


def test_take_in_scans_the_folders_the_watcher_names(backup: Backup, store: Path) -> None:
    (store / "moved").mkdir()
    (store / "moved" / "in.md").write_text("in\n")
    assert backup.take_in(Drained(folders={"notes/moved"})) is True
    assert [row.path for row in backup.snapshot(all_paths=True).rows] == ["notes/moved/in.md"]


def test_recover_commits_what_changed_while_down_in_one_commit(
    backup: Backup, repo: Path, store: Path
) -> None:
    for name in ("a.md", "b.md", "sub/c.md"):
        (store / name).parent.mkdir(exist_ok=True)
        (store / name).write_text(name)
    before = commit_count(repo)
    report, pushed = backup.recover(reason="test")
    assert (report.committed, report.failed, pushed) == (3, 0, True)
    assert commit_count(repo) == before + 1


def test_paused_records_but_commits_nothing(
    backup: Backup, repo: Path, store: Path, clock: FakeClock
) -> None:
    backup.set_paused(True)
    (store / "a.md").write_text("a\n")
    backup.record(["notes/a.md"])
    clock.now += 100
    backup.run_due(degraded=False)
    assert backup.commit_now().paused is True
    assert "notes/a.md" not in head_files(repo)
    backup.set_paused(False)
    backup.run_due(degraded=False)
    assert "notes/a.md" in head_files(repo)


def test_a_failed_path_is_retried_at_its_backoff_time(backup: Backup, store: Path, clock: FakeClock) -> None:
    (store / "huge.md").write_text("x" * 100)
    backup.reconfigure(make_config(store.parent, max_file_size=10))
    backup.record(["notes/huge.md"])
    clock.now += 2.0
    tick = backup.run_due(degraded=False)
    rows = backup.snapshot(all_paths=False).rows
    assert [(r.path, r.status.value, r.attempts) for r in rows] == [("notes/huge.md", "failed", 1)]
    assert tick.next_at == clock.monotonic() + PATH_RETRY_MIN


def test_git_busy_defers_with_a_growing_pause(
    backup: Backup, repo: Path, store: Path, clock: FakeClock
) -> None:
    (store / "a.md").write_text("a\n")
    backup.record(["notes/a.md"])
    lock = repo / ".git" / "index.lock"
    lock.write_text("")
    try:
        clock.now += 2.0
        first = backup.run_due(degraded=False)
        assert first.next_at == clock.monotonic() + 0.5
        clock.now += 0.5
        second = backup.run_due(degraded=False)
        assert second.next_at == clock.monotonic() + 1.0
        assert backup.snapshot(all_paths=False).rows[0].status.value == "pending"
    finally:
        lock.unlink()
    clock.now += 1.0
    backup.run_due(degraded=False)
    assert head_files(repo)["notes/a.md"] == "a\n"


def test_a_path_the_config_no_longer_wants_is_not_committed_and_leaves_the_queue(
    backup: Backup, repo: Path, store: Path, clock: FakeClock
) -> None:
    """A path pending while git was busy, then excluded by a reload, was once committed anyway."""
    (store / "secret.md").write_text("not for git\n")
    (store / "kept.md").write_text("kept\n")
    backup.record(["notes/secret.md", "notes/kept.md"])
    backup.reconfigure(make_config(repo, "[watch]\ndebounce = 2.0\n", exclude=("secret.md",)))
    clock.now += 2.0
    backup.run_due(degraded=False)
    assert "notes/kept.md" in head_files(repo) and "notes/secret.md" not in head_files(repo)
    assert [row.path for row in backup.snapshot(all_paths=True).rows] == ["notes/kept.md"]


def test_a_failed_path_that_becomes_excluded_stops_counting(
    backup: Backup, repo: Path, store: Path, clock: FakeClock
) -> None:
    """A failed path excluded afterwards once stayed failed for ever (status and --once exit 1)."""
    (store / "huge.md").write_text("x" * 100)
    backup.reconfigure(make_config(repo, max_file_size=10))
    backup.record(["notes/huge.md"])
    clock.now += 2.0
    backup.run_due(degraded=False)
    assert backup.snapshot(all_paths=False).counts["failed"] == 1
    backup.reload(make_config(repo, max_file_size=10, exclude=("huge.md",)))
    assert backup.snapshot(all_paths=True).counts["failed"] == 0
    assert backup.snapshot(all_paths=True).rows == ()


@pytest.mark.parametrize("step", [-3600.0, 3600.0])
def test_a_wall_clock_step_neither_delays_nor_hurries_a_batch(
    backup: Backup, repo: Path, store: Path, clock: FakeClock, step: float
) -> None:
    """Why: the clock stepping back an hour with a change pending delayed the commit by an
    hour (latency_ms=-3588684). Scheduling is monotonic now: the debounce alone decides."""
    (store / "a.md").write_text("a\n")
    backup.record(["notes/a.md"])
    clock.step_wall(step)
    tick = backup.run_due(degraded=False)
    assert "notes/a.md" not in head_files(repo)  # not hurried by a step forward
    assert tick.next_at == clock.monotonic() + 2.0  # nor pushed back by a step back
    clock.now += 2.0
    backup.run_due(degraded=False)
    assert head_files(repo)["notes/a.md"] == "a\n"


def test_a_failed_path_retry_ignores_a_wall_clock_step_back(
    backup: Backup, store: Path, clock: FakeClock
) -> None:
    (store / "huge.md").write_text("x" * 100)
    backup.reconfigure(make_config(store.parent, max_file_size=10))
    backup.record(["notes/huge.md"])
    clock.now += 2.0
    backup.run_due(degraded=False)
    clock.step_wall(-3600.0)
    tick = backup.run_due(degraded=False)
    assert tick.next_at == clock.monotonic() + PATH_RETRY_MIN
    clock.now += PATH_RETRY_MIN
    backup.run_due(degraded=False)
    rows = backup.snapshot(all_paths=False).rows
    assert [(r.path, r.status.value, r.attempts) for r in rows] == [("notes/huge.md", "failed", 2)]
