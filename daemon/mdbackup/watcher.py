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
import queue
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserver

from mdbackup import logs
from mdbackup.inbox import Inbox
from mdbackup.patterns import StoreFilter
from mdbackup.watch_events import (
    IGNORE_FILE_NAME,
    WANTED_EVENTS,
    IgnoreRulesChanged,
    OverflowHook,
    StoreEventHandler,
    StoreReappeared,
)
from mdbackup.watch_inotify import StoreWatch

__all__ = ["OverflowHook", "StoreEventHandler", "Watcher", "inotify_watch_count"]

MAX_WATCHES_FILE = "/proc/sys/fs/inotify/max_user_watches"
MAX_INSTANCES_FILE = "/proc/sys/fs/inotify/max_user_instances"
STOP_SETTLE = 0.1
"""Seconds of an empty event queue that count as "watchdog has handed over everything"."""


class Watcher:
    """The observer on the store folder (inotify, or polling when configured)."""

    def __init__(
        self,
        *,
        workdir: Path,
        store_filter: StoreFilter,
        inbox: Inbox,
        poll_interval: float,
        git_dir: Path | None = None,
        excludes_file: Path | None = None,
    ) -> None:
        """`git_dir`: its info/exclude is watched; `excludes_file`: core.excludesFile, watched
        too (both: a change asks for a rescan, the ignore rules may have changed)."""
        self._workdir = workdir
        self._git_dir = git_dir
        self._excludes_file = excludes_file
        self._handler = StoreEventHandler(workdir=workdir, store_filter=store_filter, inbox=inbox)
        self._start_error_reported = False
        self._filter = store_filter
        self._inbox = inbox
        self._poll_interval = poll_interval
        self._observer: BaseObserver | None = None
        self._store_watch: StoreWatch | None = None
        """The store's own inotify watch (None when polling: then the observer watches it)."""
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
        """Start watching; False when the watcher could not start: then it is `degraded`,
        rescans every minute cover the store, and `recover` tries again at each of them."""
        logging.getLogger("watchdog.observers").addHandler(self._hook)
        self._handler = StoreEventHandler(workdir=self._workdir, store_filter=self._filter, inbox=self._inbox)
        try:
            self._observer = (
                PollingObserver(timeout=self._poll_interval) if self._poll_interval > 0 else Observer()
            )
            self._observer.name = "mdbackup-observer"
            self._observer.daemon = True
            self._schedule()
            self._observer.start()
        except OSError as exc:
            self._report_start_error(exc)
            self._abandon()
            return False
        return True

    def _abandon(self) -> None:
        """Forget an observer that failed to start (its emitters closed)."""
        observer, self._observer = self._observer, None
        self._watches.clear()
        self._stop_store_watch(drain=False)
        if observer is None:
            return
        try:
            observer.unschedule_all()
        except (OSError, KeyError) as exc:
            self.log.debug("unschedule_failed", error=str(exc))

    def unwatched(self, folder: bytes | str) -> bool:
        """True for a folder (absolute path) that holds nothing wanted, so is not watched:
        `.git` and excluded folders (runs on watchdog's threads: never raises)."""
        text = os.fsdecode(folder)
        root = os.fsdecode(self._workdir)
        if not text.startswith(root + "/"):
            return False
        try:
            return not self._filter.might_contain(text[len(root) + 1 :])
        except Exception as exc:  # a bug here must not stop watchdog: watch the folder
            self.log.error("prune_failed", path=text[-300:], error=repr(exc)[:300])
            return False

    def recover(self) -> bool:
        """At a degraded rescan: start the watcher again if it is down, watch every folder
        again if some were left out; True (logged once) when it now watches everything."""
        if not self.degraded:
            return True
        if self._observer is None or not self._observer.is_alive():
            self.stop(drain=False)
            if not self.start():
                return False
        else:
            self._partial = False
            self.rewatch()
        if self._partial or not self.check_coverage():
            return False
        self._limit_reported = self._start_error_reported = False
        self.log.info("watch_recovered", path=str(self.store_dir), detail="every folder is watched again")
        return True

    def _schedule(self) -> None:
        assert self._observer is not None
        store = self.store_dir
        handler = self._handler
        info = self._git_info_dir()
        if info is not None:
            self._watches.append(
                self._observer.schedule(
                    IgnoreRulesChanged(
                        names={"exclude"}, inbox=self._inbox, reason=".git/info/exclude changed"
                    ),
                    str(info),
                    recursive=False,
                )
            )
        if self._excludes_file is not None and self._excludes_file.parent.is_dir():
            self._watches.append(
                self._observer.schedule(
                    IgnoreRulesChanged(
                        names={self._excludes_file.name},
                        inbox=self._inbox,
                        reason="core.excludesFile changed",
                    ),
                    str(self._excludes_file.parent),
                    recursive=False,
                )
            )
        for folder in _folders_between(self._workdir, store):
            self._watches.append(
                self._observer.schedule(
                    IgnoreRulesChanged(
                        names={IGNORE_FILE_NAME}, inbox=self._inbox, reason=f"{IGNORE_FILE_NAME} changed"
                    ),
                    str(folder),
                    recursive=False,
                )
            )
        if store != self._workdir:
            self._watches.append(
                self._observer.schedule(
                    StoreReappeared(store_dir=str(store), inbox=self._inbox),
                    str(store.parent),
                    recursive=False,
                )
            )
        if not store.is_dir():
            self.log.warning("store_missing", path=str(store), detail="watching for it to appear")
        elif self._poll_interval > 0:
            self._watches.append(
                self._observer.schedule(handler, str(store), recursive=True, event_filter=WANTED_EVENTS)
            )
        else:
            watch = StoreWatch(
                root=os.fsencode(store), sink=handler, unwatched=self.unwatched, on_limit=self._limit_hit
            )
            watch.start()
            self._store_watch = watch

    def _limit_hit(self, exc: OSError) -> None:
        """A folder could not be watched (ENOSPC): degraded, reported once."""
        self._report_start_error(exc)

    def _stop_store_watch(self, *, drain: bool, settle_within: float = 2.0, timeout: float = 5.0) -> None:
        watch, self._store_watch = self._store_watch, None
        if watch is not None:
            watch.stop(drain=drain, settle_within=settle_within, quiet=STOP_SETTLE, timeout=timeout)

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
        self._stop_store_watch(drain=False)
        try:
            self._schedule()
        except OSError as exc:
            self._report_start_error(exc)

    def _git_info_dir(self) -> Path | None:
        info = self._git_dir / "info" if self._git_dir is not None else None
        return info if info is not None and info.is_dir() else None

    def _report_start_error(self, exc: OSError) -> None:
        if exc.errno == errno.ENOSPC:
            self._partial = True
            self._report_limit(watched=inotify_watch_count(), folders=None)
            return
        if self._start_error_reported:
            return
        self._start_error_reported = True
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            self.log.error(
                "inotify_instance_limit",
                error=str(exc),
                limit=_read_int(MAX_INSTANCES_FILE),
                detail="cannot watch the store (no inotify instance or file descriptor left); "
                "backups continue through rescans every minute and watching resumes by itself "
                "when one frees up. Raise the limit with: sudo sysctl fs.inotify.max_user_instances=512",
            )
        else:
            self.log.error(
                "watch_failed",
                error=str(exc),
                path=str(self.store_dir),
                detail="backups continue through rescans every minute; watching is retried at each",
            )

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
        folders = _watchable_folders(self.store_dir, self.unwatched)
        if watched is not None and watched >= folders:
            return True
        self._partial = True
        self._report_limit(watched=watched, folders=folders)
        return False

    def stop(self, *, drain: bool = True, settle_within: float = 2.0, timeout: float = 5.0) -> None:
        """Stop watching. With `drain`, first let the store watch and watchdog hand over
        what they have read (up to `settle_within` s each, until nothing was pending for
        STOP_SETTLE s), then hand every event still queued to the handler: nothing they
        saw is dropped."""
        logging.getLogger("watchdog.observers").removeHandler(self._hook)
        self._stop_store_watch(drain=drain, settle_within=settle_within, timeout=timeout)
        observer = self._observer
        if observer is None:
            return
        if drain and observer.is_alive():
            _settle(observer.event_queue, within=settle_within)
        observer.stop()
        if observer.is_alive():
            observer.join(timeout)
        if drain:
            self._dispatch_leftovers(observer)
        self._observer = None
        self._watches.clear()

    def _dispatch_leftovers(self, observer: BaseObserver) -> None:
        while True:
            try:
                entry = observer.event_queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(entry, tuple) and entry and isinstance(entry[0], FileSystemEvent):
                self._handler.on_any_event(entry[0])

    @property
    def degraded(self) -> bool:
        """True when some changes are only found by rescans (the watcher could not start,
        or the inotify watch limit left folders unwatched)."""
        if self._partial or self._observer is None or not self._observer.is_alive():
            return True
        watch = self._store_watch
        return (
            self._poll_interval <= 0 and self.store_dir.is_dir() and (watch is None or not watch.is_alive())
        )


def _folders_between(workdir: Path, store: Path) -> list[Path]:
    """The folders from `workdir` down to `store`'s parent (their .gitignore applies too)."""
    if store == workdir:
        return []
    found, folder = [], store.parent
    while True:
        if folder.is_dir():
            found.append(folder)
        if folder == workdir or folder == folder.parent:
            return found
        folder = folder.parent


def _watchable_folders(store: Path, unwatched: Callable[[str], bool]) -> int:
    """How many folders a complete watch of `store` holds (`unwatched` ones left out)."""
    count = 0
    for root, dirnames, _ in os.walk(store):
        count += 1
        dirnames[:] = [d for d in dirnames if not unwatched(os.path.join(root, d))]
    return count


def _settle(events: queue.Queue[object], *, within: float) -> None:
    """Wait (at most `within` s) until `events` has stayed empty for STOP_SETTLE s."""
    deadline = time.monotonic() + within
    quiet_since: float | None = None
    while (now := time.monotonic()) < deadline:
        if not events.empty():
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= STOP_SETTLE:
            return
        time.sleep(0.01)


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
