"""What the observer thread runs: the watchdog event handlers, which only filter paths
and hand them to the `Inbox` (cheap work; SQLite and libgit2 run on the worker).

Every handler survives any exception in one event: it is logged and becomes a rescan.
A change to an ignore-rules file (.gitignore in the store or above it, .git/info/exclude,
core.excludesFile) asks for a scan of what it covers.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)

from mdbackup import logs
from mdbackup.inbox import Inbox
from mdbackup.patterns import StoreFilter

_IGNORED_EVENTS = (FileOpenedEvent, FileClosedNoWriteEvent)
_FOLDER_EVENTS = (DirCreatedEvent, DirDeletedEvent, DirMovedEvent)
# Asked of inotify: without a filter watchdog also subscribes to opens and read-only
# closes, waking the observer (and taking the GIL) for every file anyone reads,
# the daemon's own hashing included.
WANTED_EVENTS = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    FileClosedEvent,
    FileAttribEvent,  # a chmod: the executable bit is committed
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
]
IGNORE_FILE_NAME = ".gitignore"


def folder_of(rel: str) -> str:
    """The repo-relative folder holding `rel` ("" for the repository root)."""
    return rel.rpartition("/")[0]


class StoreEventHandler(FileSystemEventHandler):
    """Turns watchdog events under the store into inbox entries (observer thread)."""

    def __init__(self, *, workdir: Path, store_filter: StoreFilter, inbox: Inbox) -> None:
        self._root = os.fsdecode(workdir).rstrip("/") + "/"
        self._filter = store_filter
        self._inbox = inbox

    def _relative(self, path: bytes | str) -> str | None:
        text = os.fsdecode(path)
        if not text.startswith(self._root):
            return "" if text.rstrip("/") + "/" == self._root else None
        return text[len(self._root) :]

    def on_any_event(self, event: FileSystemEvent) -> None:
        """A watchdog event (the polling observer's): its paths go to `path_changed`."""
        if isinstance(event, _IGNORED_EVENTS):
            return
        if event.is_directory and not isinstance(event, _FOLDER_EVENTS):
            return  # a folder's own modification: its files' events say what changed
        gone = isinstance(event, (DirDeletedEvent, FileDeletedEvent, DirMovedEvent, FileMovedEvent))
        self.path_changed(event.src_path, is_directory=event.is_directory, deleted=gone)
        dest = getattr(event, "dest_path", "")
        if dest:
            self.path_changed(dest, is_directory=event.is_directory, deleted=False)

    def path_changed(self, raw: bytes | str, *, is_directory: bool, deleted: bool) -> None:
        """Something changed at `raw` (absolute): a file, or a folder created, deleted or
        moved (`deleted`: it is gone from there). Never raises: a path that cannot be
        handled is logged and its folder (the whole store when even that fails) is handed
        to the worker for a scan, so the watch lives on and the change is still found."""
        try:
            rel = self._relative(raw)
            if rel is None or rel == ".git" or rel.startswith(".git/") or "/.git/" in rel:
                return
            if is_directory:
                self._folder_changed(rel, deleted=deleted)
            elif rel.rpartition("/")[2] == IGNORE_FILE_NAME:
                # the rules of that folder changed: what they cover may now be wanted (or not)
                self._inbox.add_folder(folder_of(rel))
            elif self._filter.wants(rel):
                self._inbox.add_path(rel)
        except Exception as exc:  # RecursionError, MemoryError, a bug: the watch must live on
            self._failed(raw, exc)

    def store_gone(self, reason: str) -> None:
        """The store folder itself was deleted or moved: rescan, and watch it again."""
        self._inbox.request_rescan(reason, rewatch=True)

    def overflowed(self, detail: str) -> None:
        """Events were lost (a queue overflow): rescan the store."""
        self._inbox.request_rescan(detail)

    def _failed(self, raw: bytes | str, exc: Exception) -> None:
        try:
            logs.get().error(
                "watch_event_failed",
                path=os.fsdecode(raw)[-300:],
                error=repr(exc)[:300],
                detail="the store is rescanned instead",
            )
        finally:
            self._inbox.request_rescan(f"event not handled: {type(exc).__name__}")

    def _folder_changed(self, rel: str, *, deleted: bool) -> None:
        # A folder moved in gets no events for the files it holds, one moved out or
        # deleted none for those it held: a scoped scan of the folder finds them.
        if self._filter.might_contain(rel):
            self._inbox.add_folder(rel)
        if deleted and rel == self._filter.store_prefix:
            self._inbox.request_rescan("store folder deleted", rewatch=True)


class StoreReappeared(FileSystemEventHandler):
    """On the store's parent folder: the store folder was created or moved back in."""

    def __init__(self, *, store_dir: str, inbox: Inbox) -> None:
        self._store_dir = store_dir.rstrip("/")
        self._inbox = inbox

    def on_any_event(self, event: FileSystemEvent) -> None:
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            if raw and os.fsdecode(raw).rstrip("/") == self._store_dir:
                self._inbox.request_rescan("store folder changed", rewatch=True)


class OverflowHook(logging.Handler):
    """Watchdog reports an inotify queue overflow only as a log record: rescan on it."""

    def __init__(self, inbox: Inbox) -> None:
        super().__init__(level=logging.WARNING)
        self._inbox = inbox

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "overflow" in message.lower() or record.levelno >= logging.ERROR:
            self._inbox.request_rescan(f"watchdog: {message}")


class IgnoreRulesChanged(FileSystemEventHandler):
    """On a folder holding an ignore-rules file outside the store (.git/info/exclude,
    core.excludesFile): any change to it asks for a rescan of the store."""

    def __init__(self, *, names: set[str], inbox: Inbox, reason: str) -> None:
        self._names = names
        self._inbox = inbox
        self._reason = reason

    def on_any_event(self, event: FileSystemEvent) -> None:
        if isinstance(event, _IGNORED_EVENTS) or event.is_directory:
            return
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            if raw and os.path.basename(os.fsdecode(raw)) in self._names:
                self._inbox.request_rescan(self._reason)
