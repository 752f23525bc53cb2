"""The store's own inotify watch, on real folders with real writes."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mdbackup.watch_inotify import StoreWatch
from mdbackup.watcher import inotify_watch_count
from tests.support.wait import wait_until


class Sink:
    """Records what the watch hands over (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.changed: list[tuple[str, bool, bool]] = []
        self.gone: list[str] = []
        self.overflows: list[str] = []

    def path_changed(self, raw: bytes, *, is_directory: bool, deleted: bool) -> None:
        with self._lock:
            self.changed.append((os.fsdecode(raw), is_directory, deleted))

    def store_gone(self, reason: str) -> None:
        with self._lock:
            self.gone.append(reason)

    def overflowed(self, detail: str) -> None:
        with self._lock:
            self.overflows.append(detail)

    def paths(self) -> set[str]:
        with self._lock:
            return {path for path, _, _ in self.changed}


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    (root / ".git" / "objects" / "ab").mkdir(parents=True)
    (root / "skipped" / "deep").mkdir(parents=True)
    (root / "notes").mkdir()
    return root


@pytest.fixture
def watched(store: Path) -> Iterator[tuple[StoreWatch, Sink]]:
    sink = Sink()
    limits: list[OSError] = []
    watch = StoreWatch(
        root=os.fsencode(store),
        sink=sink,
        unwatched=lambda p: os.path.basename(p) in (b".git", b"skipped"),
        on_limit=limits.append,
    )
    before = inotify_watch_count() or 0
    watch.start()
    try:
        assert (inotify_watch_count() or 0) - before == 2  # the store and notes/, nothing else
        yield watch, sink
    finally:
        watch.stop(drain=False, settle_within=0, quiet=0, timeout=5)
    assert not watch.is_alive() and not limits


def test_a_folder_created_after_start_is_watched_before_it_is_reported(watched, store: Path) -> None:
    """What lands in a new folder before its watch is found by the scan the report asks for;
    that only works when the report comes after the watch: then every later write is seen."""
    _, sink = watched
    (store / "notes" / "new" / "deeper").mkdir(parents=True)
    wait_until(lambda: str(store / "notes/new") in sink.paths(), message="the new folder reported")
    (store / "notes" / "new" / "deeper" / "a.md").write_text("a\n")
    wait_until(lambda: str(store / "notes/new/deeper/a.md") in sink.paths(), message="file in a new folder")
    assert (str(store / "notes/new"), True, False) in sink.changed


def test_git_internals_and_unwatched_folders_report_nothing(watched, store: Path) -> None:
    _, sink = watched
    (store / ".git" / "objects" / "ab" / "cdef").write_text("object\n")
    (store / "skipped" / "deep" / "x.md").write_text("x\n")
    (store / "notes" / "marker.md").write_text("m\n")
    wait_until(lambda: str(store / "notes/marker.md") in sink.paths(), message="the marker")
    assert not [p for p in sink.paths() if "/.git/" in p or "/skipped/" in p]


def test_a_folder_moved_inside_the_store_is_watched_at_its_new_path(watched, store: Path) -> None:
    _, sink = watched
    (store / "notes" / "old").mkdir()
    wait_until(lambda: str(store / "notes/old") in sink.paths(), message="folder created")
    (store / "notes" / "old").rename(store / "notes" / "new")
    (store / "notes" / "new" / "after.md").write_text("after the move\n")
    wait_until(lambda: str(store / "notes/new/after.md") in sink.paths(), message="file under the new path")
    assert (str(store / "notes/old"), True, True) in sink.changed
    assert not [p for p in sink.paths() if p.startswith(str(store / "notes/old") + "/")]


def test_a_folder_moved_out_is_no_longer_watched(watched, store: Path, tmp_path: Path) -> None:
    _, sink = watched
    (store / "notes" / "leaving").mkdir()
    wait_until(lambda: str(store / "notes/leaving") in sink.paths(), message="folder created")
    before = inotify_watch_count()
    (store / "notes" / "leaving").rename(tmp_path / "outside")
    wait_until(lambda: (str(store / "notes/leaving"), True, True) in sink.changed, message="moved out")
    wait_until(lambda: inotify_watch_count() == (before or 0) - 1, message="its watch removed")
    (tmp_path / "outside" / "late.md").write_text("not ours any more\n")
    (store / "notes" / "marker.md").write_text("m\n")
    wait_until(lambda: str(store / "notes/marker.md") in sink.paths(), message="the marker")
    assert not [p for p in sink.paths() if p.endswith("late.md")]


def test_the_store_folder_deleted_is_reported_as_gone(watched, store: Path) -> None:
    _, sink = watched
    shutil.rmtree(store)
    wait_until(lambda: bool(sink.gone), message="store gone")


def test_a_stop_with_drain_hands_over_what_was_written_just_before(store: Path) -> None:
    sink = Sink()
    watch = StoreWatch(root=os.fsencode(store), sink=sink, unwatched=lambda p: False, on_limit=lambda e: None)
    watch.start()
    for i in range(200):
        (store / "notes" / f"n{i}.md").write_text(f"{i}\n")
    watch.stop(drain=True, settle_within=5, quiet=0.1, timeout=5)
    assert not watch.is_alive()
    assert {str(store / "notes" / f"n{i}.md") for i in range(200)} <= sink.paths()


def test_a_root_that_cannot_be_watched_raises_and_leaves_nothing_open(tmp_path: Path) -> None:
    before = set(os.listdir("/proc/self/fd"))
    missing = os.fsencode(tmp_path / "missing")
    watch = StoreWatch(root=missing, sink=Sink(), unwatched=lambda p: False, on_limit=lambda e: None)
    with pytest.raises(OSError):
        watch.start()
    assert not watch.is_alive()
    assert set(os.listdir("/proc/self/fd")) == before
