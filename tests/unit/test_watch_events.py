"""The observer thread's handlers (`mdbackup.watch_events`) fed real watchdog events."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest
from watchdog.events import DirCreatedEvent, FileCreatedEvent, FileModifiedEvent

from mdbackup.inbox import Inbox
from mdbackup.patterns import StoreFilter
from mdbackup.watch_events import IgnoreRulesChanged, StoreEventHandler

ROOT = Path("/work/tree")


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
def handler(inbox: Inbox) -> StoreEventHandler:
    store_filter = StoreFilter.build(store_prefix="notes", include=("**/*.md",), exclude=())
    return StoreEventHandler(workdir=ROOT, store_filter=store_filter, inbox=inbox)


def test_a_500_level_deep_path_does_not_kill_the_observer(handler: StoreEventHandler, inbox: Inbox) -> None:
    """Why: a folder tree ~500 levels deep raised RecursionError in the glob engine's folder
    cache from the handler, killing the observer thread. Handled now, and still wanted."""
    deep = "notes/" + "/".join(["d"] * 500)
    handler.on_any_event(DirCreatedEvent(str(ROOT / deep)))
    handler.on_any_event(FileCreatedEvent(str(ROOT / deep / "x.md")))
    drained = inbox.drain()
    assert drained.paths == {deep + "/x.md"} and drained.folders == {deep}


def test_an_event_that_raises_is_logged_and_becomes_a_rescan(inbox: Inbox) -> None:
    class Exploding:
        """A filter with a bug (any exception will do)."""

        def wants(self, repo_rel: str) -> bool:
            raise RuntimeError("boom")

    handler = StoreEventHandler(workdir=ROOT, store_filter=cast(StoreFilter, Exploding()), inbox=inbox)
    handler.on_any_event(FileModifiedEvent(str(ROOT / "notes/a.md")))  # must not raise
    assert inbox.drain().rescan == "event not handled: RuntimeError"


def test_a_gitignore_change_in_the_store_asks_for_a_scan_of_its_folder(
    handler: StoreEventHandler, inbox: Inbox
) -> None:
    handler.on_any_event(FileModifiedEvent(str(ROOT / "notes/sub/.gitignore")))
    assert inbox.drain().folders == {"notes/sub"}


def test_info_exclude_changed_asks_for_a_rescan(inbox: Inbox) -> None:
    hook = IgnoreRulesChanged(names={"exclude"}, inbox=inbox, reason=".git/info/exclude changed")
    hook.on_any_event(FileModifiedEvent(str(ROOT / ".git/info/other")))
    assert inbox.drain().rescan is None
    hook.on_any_event(FileModifiedEvent(str(ROOT / ".git/info/exclude")))
    assert inbox.drain().rescan == ".git/info/exclude changed"
