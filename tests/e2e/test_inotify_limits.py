"""The kernel's inotify limits, made real by lowering them (root only; restored after)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.daemon import Daemon
from tests.support.git import head_files
from tests.support.wait import wait_until

SYSCTL = Path("/proc/sys/fs/inotify")


@contextmanager
def sysctl(name: str, value: int) -> Iterator[None]:
    path = SYSCTL / name
    try:
        old = path.read_text().strip()
        path.write_text(str(value))
    except OSError as exc:
        pytest.skip(f"cannot set fs.inotify.{name} here: {exc}")
    try:
        yield
    finally:
        path.write_text(old)


def watches_in_use(uid: int) -> int:
    """inotify watches held by processes of `uid` (the limit is per user)."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
            for fd in os.listdir(f"/proc/{pid}/fdinfo"):
                total += Path(f"/proc/{pid}/fdinfo/{fd}").read_text().count("inotify wd:")
        except OSError:
            continue
    return total


@pytest.fixture
def store(repo: Path) -> Path:
    path = repo / "notes"
    for i in range(40):
        (path / f"f{i:02d}").mkdir(parents=True)
    return path


def test_watch_limit_is_reported_once_and_rescans_keep_backups_going(repo, home, store) -> None:
    limit = watches_in_use(os.getuid()) + 8  # far fewer than the store's 41 folders
    d = Daemon(repo=repo, home=home, config="[watch]\ndebounce = 0.1\nrescan_interval = 1\n")
    try:
        with sysctl("max_user_watches", limit):
            d.start()
            wait_until(lambda: "inotify_watch_limit" in d.log(), message="limit reported")
            (store / "f39/deep.md").write_text("in an unwatched folder\n")
            wait_until(
                lambda: head_files(repo).get("notes/f39/deep.md") == "in an unwatched folder\n",
                timeout=15,
                message="found by a rescan",
            )
            assert d.stop() == 0
        reports = [line for line in d.log().splitlines() if "inotify_watch_limit" in line]
        assert len(reports) == 1
        assert "max_user_watches" in reports[0] and str(limit) in reports[0]
    finally:
        d.close()


def test_queue_overflow_triggers_a_rescan_and_nothing_is_missed(repo, home, store) -> None:
    d = Daemon(repo=repo, home=home, config="[watch]\ndebounce = 0.5\nmax_delay = 5\n")
    try:
        with sysctl("max_queued_events", 16):  # read when the daemon's inotify is created
            d.start()
        # One write per folder, as fast as possible: far more than 16 queued events.
        for i in range(40):
            for j in range(10):
                (store / f"f{i:02d}" / f"n{j}.md").write_text(f"{i}/{j}\n")
        wait_until(lambda: "overflow" in d.log().lower(), message="overflow seen")
        wait_until(
            lambda: sum(p.startswith("notes/") for p in head_files(repo)) == 400,
            timeout=30,
            interval=0.25,
            message="all 400 files committed",
        )
        assert d.stop() == 0
    finally:
        d.close()
