"""The worker thread's scheduling, in process: a real `Backup` and watcher, a fake clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mdbackup.backup import Backup, Tick
from mdbackup.inbox import Inbox
from mdbackup.watcher import Watcher
from mdbackup.worker import Worker
from tests.support.backup import FakeClock, make_config
from tests.support.git import head_files
from tests.support.wait import wait_until


def real_watcher(backup: Backup, inbox: Inbox) -> Watcher:
    return Watcher(workdir=backup.config.repo, store_filter=backup.filter, inbox=inbox, poll_interval=0)


class Started:
    """A worker started on `repo`'s store, with what its callbacks saw."""

    def __init__(self, repo: Path, clock: FakeClock, body: str) -> None:
        self.ready = threading.Event()
        self.exited = threading.Event()
        self.statuses: list[str] = []
        backup = Backup.open(make_config(repo, body), clock=clock)
        self.worker = Worker(
            backup=backup,
            make_watcher=real_watcher,
            on_ready=self.ready.set,
            on_status=self.statuses.append,
            on_exit=self.exited.set,
            clock=clock,
        )
        self.worker.start()
        assert self.ready.wait(10), "worker never became ready"

    def stop(self) -> None:
        self.worker.stop(flush_bound=10)
        self.worker.join(15)
        assert not self.worker.is_alive()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def started(repo: Path, store: Path, clock: FakeClock) -> Iterator[Started]:
    s = Started(repo, clock, "[watch]\ndebounce = 30.0\nmax_delay = 600.0\n")
    yield s
    if s.worker.is_alive():
        s.stop()


def test_start_up_commits_what_changed_while_down_before_ready(
    repo: Path, store: Path, clock: FakeClock
) -> None:
    (store / "offline.md").write_text("written while down\n")
    s = Started(repo, clock, "")
    assert head_files(repo)["notes/offline.md"] == "written while down\n"
    assert s.statuses and "0 pending" in s.statuses[0]
    s.stop()


def test_a_save_is_committed_when_the_clock_reaches_its_deadline(
    started: Started, repo: Path, store: Path, clock: FakeClock
) -> None:
    (store / "a.md").write_text("a\n")
    wait_until(lambda: any(text.startswith("1 pending") for text in started.statuses), message="recorded")
    assert "notes/a.md" not in head_files(repo)  # 30 s of fake quiet have not passed
    clock.now += 30.0
    started.worker.inbox.wake()
    wait_until(lambda: head_files(repo).get("notes/a.md") == "a\n", message="committed at the deadline")


def test_stop_commits_what_is_pending_at_once(started: Started, repo: Path, store: Path) -> None:
    (store / "late.md").write_text("late\n")
    wait_until(lambda: any(text.startswith("1 pending") for text in started.statuses), message="recorded")
    started.stop()
    assert started.exited.is_set() and started.worker.stopped.clean
    assert head_files(repo)["notes/late.md"] == "late\n"


def test_stop_right_after_a_burst_hands_over_every_event(started: Started, repo: Path, store: Path) -> None:
    """Why (SIGTERM after a burst): stopping dropped the events watchdog still held, so saves
    made just before the stop were neither committed nor recorded."""
    names = {}
    for i in range(800):
        sub = store / f"d{i % 30}"
        sub.mkdir(exist_ok=True)
        (sub / f"f{i}.md").write_text(f"file {i}\n")
        names[f"notes/d{i % 30}/f{i}.md"] = f"file {i}\n"
    started.stop()
    head = head_files(repo)
    missing = [p for p, text in names.items() if head.get(p) != text]
    assert not missing, f"{len(missing)} saves dropped, e.g. {missing[:3]}"


def test_a_burst_sends_few_status_lines_and_the_last_one_is_true(started: Started, store: Path) -> None:
    """Why: the status line cost four queries and a datagram at every wake-up of a burst;
    it is now sent at most once a second, and the line in force after the burst is true."""
    before = len(started.statuses)
    for i in range(60):
        (store / f"s{i}.md").write_text(f"{i}\n")
        time.sleep(0.01)  # paced over 0.6 s: each save is its own wake-up
    wait_until(lambda: started.statuses[-1].startswith("60 pending"), message="the true line", timeout=10)
    assert len(started.statuses) - before <= 8, started.statuses[before:]


def test_a_burst_skips_run_due_until_its_deadline_but_a_wake_runs_it(
    started: Started, store: Path, clock: FakeClock, repo: Path
) -> None:
    """Why: run_due's queries ran at every wake-up of a burst, each over every pending
    path; while the batch deadline is ahead, changes can only put it later, so they are
    skipped. A wake (a `retry`/`resume` signal) must still run it."""
    backup = started.worker.backup
    calls: list[float] = []
    real_run_due = backup.run_due

    def counting_run_due(*, degraded: bool) -> Tick:
        calls.append(clock.monotonic())
        return real_run_due(degraded=degraded)

    backup.run_due = counting_run_due  # type: ignore[method-assign]
    for i in range(30):
        (store / f"b{i}.md").write_text(f"{i}\n")
        time.sleep(0.01)  # paced: each save is its own wake-up
    wait_until(lambda: started.statuses[-1].startswith("30 pending"), message="all recorded", timeout=10)
    assert len(calls) <= 3, f"run_due ran {len(calls)} times during the burst"
    before = len(calls)
    started.worker.inbox.wake()
    wait_until(lambda: len(calls) > before, message="a wake runs run_due")
    clock.now += 30.0  # the debounce has passed: the next wake-up commits
    started.worker.inbox.wake()
    wait_until(lambda: head_files(repo).get("notes/b29.md") == "29\n", message="committed at the deadline")
