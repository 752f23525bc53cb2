"""The watcher's handler (`mdbackup.watcher.StoreEventHandler`) fed synthetic watchdog events."""

from __future__ import annotations

import os
import resource
from pathlib import Path

import pytest
import structlog
from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
)

from mdbackup.inbox import Inbox
from mdbackup.patterns import StoreFilter
from mdbackup.watcher import OverflowHook, StoreEventHandler, Watcher
from tests.support.wait import wait_until

ROOT = Path("/work/tree")


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
def handler(inbox: Inbox) -> StoreEventHandler:
    store_filter = StoreFilter.build(store_prefix="notes", include=("**/*.md",), exclude=())
    return StoreEventHandler(workdir=ROOT, store_filter=store_filter, inbox=inbox)


def test_a_wanted_file_event_reaches_the_inbox_as_a_repo_relative_path(
    handler: StoreEventHandler, inbox: Inbox
) -> None:
    handler.on_any_event(FileModifiedEvent(str(ROOT / "notes/a.md")))
    handler.on_any_event(FileCreatedEvent(str(ROOT / "notes/sub/b.md")))
    assert inbox.drain().paths == {"notes/a.md", "notes/sub/b.md"}


def test_unwanted_files_temp_files_and_git_internals_are_dropped(
    handler: StoreEventHandler, inbox: Inbox
) -> None:
    for name in (
        "notes/a.txt",
        "notes/a.md.swp",
        "notes/4913",
        "notes/.git/index",
        "other/a.md",
        ".git/HEAD",
    ):
        handler.on_any_event(FileModifiedEvent(str(ROOT / name)))
    handler.on_any_event(FileModifiedEvent("/elsewhere/notes/a.md"))
    drained = inbox.drain()
    assert drained.paths == set() and drained.folders == set() and drained.rescan is None


def test_reads_are_ignored(handler: StoreEventHandler, inbox: Inbox) -> None:
    handler.on_any_event(FileOpenedEvent(str(ROOT / "notes/a.md")))
    handler.on_any_event(FileClosedNoWriteEvent(str(ROOT / "notes/a.md")))
    assert inbox.drain().paths == set()


def test_an_atomic_save_names_the_target_through_the_move(handler: StoreEventHandler, inbox: Inbox) -> None:
    handler.on_any_event(FileMovedEvent(str(ROOT / "notes/.a.md.tmp"), str(ROOT / "notes/a.md")))
    assert inbox.drain().paths == {"notes/a.md"}


def test_folder_moves_and_deletions_ask_for_a_scan_of_the_folder(
    handler: StoreEventHandler, inbox: Inbox
) -> None:
    handler.on_any_event(DirDeletedEvent(str(ROOT / "notes/gone")))
    handler.on_any_event(DirMovedEvent(str(ROOT / "notes/old"), str(ROOT / "notes/new")))
    handler.on_any_event(DirCreatedEvent(str(ROOT / "notes/fresh")))
    assert inbox.drain().folders == {"notes/gone", "notes/old", "notes/new", "notes/fresh"}


def test_the_store_folder_deleted_asks_for_a_rescan_and_a_new_watch(
    handler: StoreEventHandler, inbox: Inbox
) -> None:
    handler.on_any_event(DirDeletedEvent(str(ROOT / "notes")))
    drained = inbox.drain()
    assert drained.rescan == "store folder deleted" and drained.rewatch is True


def test_an_inotify_overflow_warning_asks_for_a_rescan(inbox: Inbox) -> None:
    import logging

    hook = OverflowHook(inbox)
    record = logging.LogRecord(
        "watchdog.observers.inotify_c", logging.WARNING, "", 0, "Inotify queue overflowed", (), None
    )
    hook.emit(record)
    assert inbox.drain().rescan == "watchdog: Inotify queue overflowed"


def _no_free_descriptor() -> int:
    """The lowest free descriptor number: a soft RLIMIT_NOFILE there makes every new one fail."""
    used = {int(fd) for fd in os.listdir("/proc/self/fd")}
    return next(n for n in range(len(used) + 2) if n not in used)


def test_inotify_instances_exhausted_degrade_then_recover_by_themselves(tmp_path: Path) -> None:
    """Why: no inotify instance left (EMFILE) at start: the watcher is degraded (rescans
    cover it) with one clear log line, and the next degraded rescan's `recover` watches again."""
    (tmp_path / "notes").mkdir()
    inbox = Inbox()
    store_filter = StoreFilter.build(store_prefix="notes", include=("**/*.md",), exclude=())
    watcher = Watcher(workdir=tmp_path, store_filter=store_filter, inbox=inbox, poll_interval=0)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with structlog.testing.capture_logs() as logged:
        resource.setrlimit(resource.RLIMIT_NOFILE, (_no_free_descriptor(), hard))
        try:
            started = watcher.start()
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        try:
            assert started is False and watcher.degraded
            assert [e["event"] for e in logged if e["log_level"] == "error"] == ["inotify_instance_limit"]
            assert watcher.recover() is True and not watcher.degraded
            (tmp_path / "notes" / "a.md").write_text("a\n")
            wait_until(lambda: "notes/a.md" in inbox.drain().paths, message="an event once recovered")
        finally:
            watcher.stop()
