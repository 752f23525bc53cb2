"""The watcher's handler (`mdbackup.watcher.StoreEventHandler`) fed synthetic watchdog events."""

from __future__ import annotations

from pathlib import Path

import pytest
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
from mdbackup.watcher import OverflowHook, StoreEventHandler

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
