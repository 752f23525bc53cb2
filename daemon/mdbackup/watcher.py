"""Watching the store with watchdog: events become paths in the `Inbox`, nothing more.

The handler runs on the observer's thread and does only cheap work: filter the
path, add it to the inbox, wake the worker. Everything slow (SQLite, libgit2)
happens on the worker thread, which keeps the observer reading the inotify queue.

What watchdog cannot report is covered by scans: a folder moved or deleted
(marks the folder for a scoped scan), an inotify queue overflow (watchdog says so
only as a WARNING on its logger: hooked here), the store folder deleted and
created again (a watch on its parent notices and the store is watched again).
"""

from __future__ import annotations

import errno
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
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserver

from mdbackup import logs
from mdbackup.inbox import Inbox
from mdbackup.patterns import StoreFilter

_IGNORED_EVENTS = (FileOpenedEvent, FileClosedNoWriteEvent)
# Asked of inotify: without a filter watchdog also subscribes to opens and read-only
# closes, waking the observer (and taking the GIL) for every file anyone reads,
# the daemon's own hashing included.
_WANTED_EVENTS = [
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
MAX_WATCHES_FILE = "/proc/sys/fs/inotify/max_user_watches"


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
        if isinstance(event, _IGNORED_EVENTS):
            return
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            if not raw:
                continue
            rel = self._relative(raw)
            if rel is None or rel == ".git" or rel.startswith(".git/") or "/.git/" in rel:
                continue
            if event.is_directory:
                self._folder_event(event, rel)
            elif self._filter.wants(rel):
                self._inbox.add_path(rel)

    def _folder_event(self, event: FileSystemEvent, rel: str) -> None:
        # A folder moved in gets synthetic events for its files; moved out or deleted
        # gets none: a scoped scan of the folder finds what changed either way.
        if isinstance(event, (DirDeletedEvent, DirMovedEvent, DirCreatedEvent)):
            if self._filter.might_contain(rel):
                self._inbox.add_folder(rel)
            if isinstance(event, DirDeletedEvent) and rel == self._filter.store_prefix:
                self._inbox.request_rescan("store folder deleted", rewatch=True)


class _StoreReappeared(FileSystemEventHandler):
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


class Watcher:
    """The observer on the store folder (inotify, or polling when configured)."""

    def __init__(
        self, *, workdir: Path, store_filter: StoreFilter, inbox: Inbox, poll_interval: float
    ) -> None:
        self._workdir = workdir
        self._filter = store_filter
        self._inbox = inbox
        self._poll_interval = poll_interval
        self._observer: BaseObserver | None = None
        self._watches: list[ObservedWatch] = []
        self._hook = OverflowHook(inbox)
        self._limit_reported = False
        self._partial = False
        self.log = logs.get()

    @property
    def store_dir(self) -> Path:
        prefix = self._filter.store_prefix
        return self._workdir / prefix if prefix else self._workdir

    def start(self) -> bool:
        """Start watching; False when the watcher could not start (rescans cover it)."""
        logging.getLogger("watchdog.observers").addHandler(self._hook)
        self._observer = (
            PollingObserver(timeout=self._poll_interval) if self._poll_interval > 0 else Observer()
        )
        self._observer.name = "mdbackup-observer"
        self._observer.daemon = True
        try:
            self._schedule()
            self._observer.start()
        except OSError as exc:
            self._report_start_error(exc)
            return False
        return True

    def _schedule(self) -> None:
        assert self._observer is not None
        store = self.store_dir
        handler = StoreEventHandler(workdir=self._workdir, store_filter=self._filter, inbox=self._inbox)
        if store != self._workdir:
            self._watches.append(
                self._observer.schedule(
                    _StoreReappeared(store_dir=str(store), inbox=self._inbox),
                    str(store.parent),
                    recursive=False,
                )
            )
        if store.is_dir():
            self._watches.append(
                self._observer.schedule(
                    handler,
                    str(store),
                    recursive=True,
                    event_filter=_WANTED_EVENTS,
                )
            )
        else:
            self.log.warning("store_missing", path=str(store), detail="watching for it to appear")

    def rewatch(self) -> None:
        """Drop every watch and watch the store folder again (it was deleted or moved)."""
        if self._observer is None:
            return
        for watch in self._watches:
            try:
                self._observer.unschedule(watch)
            except (KeyError, OSError) as exc:
                self.log.debug("unschedule_failed", error=str(exc))
        self._watches.clear()
        try:
            self._schedule()
        except OSError as exc:
            self._report_start_error(exc)

    def _report_start_error(self, exc: OSError) -> None:
        if exc.errno == errno.ENOSPC:
            self._partial = True
            self._report_limit(watched=inotify_watch_count(), folders=None)
        else:
            self.log.error("watch_failed", error=str(exc), path=str(self.store_dir))

    def _report_limit(self, *, watched: int | None, folders: int | None) -> None:
        if self._limit_reported:
            return
        self._limit_reported = True
        self.log.error(
            "inotify_watch_limit",
            limit=_read_int(MAX_WATCHES_FILE),
            watched=watched,
            folders=folders,
            detail="the inotify watch limit is reached, so some folders are not watched; "
            "backups continue through rescans every minute. Raise the limit with: "
            "sudo sysctl fs.inotify.max_user_watches=524288 "
            "(and persist it in /etc/sysctl.d/)",
        )

    def check_coverage(self) -> bool:
        """True when every folder of the store is watched.

        watchdog silently skips subfolders it cannot watch once the inotify watch
        limit is reached; the kernel's count of our watches (/proc/self/fdinfo) tells.
        """
        if self._poll_interval > 0 or self._observer is None:
            return not self.degraded
        watched = inotify_watch_count()
        folders = sum(1 for _ in os.walk(self.store_dir))
        if watched is not None and watched >= folders:
            return True
        self._partial = True
        self._report_limit(watched=watched, folders=folders)
        return False

    def stop(self, *, timeout: float = 5.0) -> None:
        logging.getLogger("watchdog.observers").removeHandler(self._hook)
        if self._observer is None:
            return
        self._observer.stop()
        if self._observer.is_alive():
            self._observer.join(timeout)
        self._observer = None
        self._watches.clear()

    @property
    def degraded(self) -> bool:
        """True when some changes are only found by rescans (the watcher could not start,
        or the inotify watch limit left folders unwatched)."""
        return self._partial or self._observer is None or not self._observer.is_alive()


def inotify_watch_count() -> int | None:
    """How many inotify watches this process holds (None when it holds no inotify fd)."""
    total, found = 0, False
    try:
        fds = os.listdir("/proc/self/fdinfo")
    except OSError:
        return None
    for fd in fds:
        try:
            text = Path("/proc/self/fdinfo", fd).read_text()
        except OSError:
            continue  # closed meanwhile
        count = text.count("inotify wd:")
        if count or "inotify" in text:
            found = True
            total += count
    return total if found else None


def _read_int(path: str) -> int | None:
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None
