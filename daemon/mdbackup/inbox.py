"""The hand-over from the watcher (and signals) to the worker: an inbox of changed paths.

The observer thread adds; the worker drains and sleeps on `wait`, which returns
when something arrives or its timeout passes: nothing polls.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Drained:
    """What the watcher collected since the worker last looked."""

    paths: set[str] = field(default_factory=set)
    folders: set[str] = field(default_factory=set)
    rescan: str | None = None
    rewatch: bool = False
    newest_at: float | None = None
    """When the newest of `paths` arrived (the inbox's monotonic clock), None without paths."""
    poked: bool = False
    """Woken for something other than changes (a signal, a stop, a reload, a put-back)."""


class Inbox:
    """Thread-safe hand-over from the observer (and signals) to the worker.

    `wait` blocks until something arrives or `timeout` passes; nothing polls.
    """

    def __init__(self, *, now: Callable[[], float] = time.monotonic) -> None:
        """`now`: the monotonic clock that stamps each path's arrival (`Drained.newest_at`)."""
        self._now = now
        self._cond = threading.Condition()
        self._pending = Drained()
        self._woken = False

    def add_path(self, path: str) -> None:
        arrived = self._now()
        with self._cond:
            self._pending.paths.add(path)
            self._pending.newest_at = arrived
            self._woken = True
            self._cond.notify()

    def add_folder(self, folder: str) -> None:
        """Every path under `folder` (repo-relative, "" for the root) may have changed."""
        with self._cond:
            self._pending.folders.add(folder)
            self._woken = True
            self._cond.notify()

    def request_rescan(self, reason: str, *, rewatch: bool = False) -> None:
        with self._cond:
            self._pending.rescan = self._pending.rescan or reason
            self._pending.rewatch = self._pending.rewatch or rewatch
            self._woken = True
            self._cond.notify()

    def wake(self) -> None:
        with self._cond:
            self._pending.poked = True
            self._woken = True
            self._cond.notify()

    def wait(self, timeout: float | None) -> bool:
        """Return when woken (or at once if woken since the last wait), or after `timeout`;
        True when woken."""
        with self._cond:
            if not self._woken:
                self._cond.wait(timeout)
            woken, self._woken = self._woken, False
            return woken

    def put_back(self, drained: Drained) -> None:
        """Return what was drained and could not be recorded: it is taken in again next time
        (merged with whatever arrived meanwhile)."""
        with self._cond:
            self._pending.paths |= drained.paths
            self._pending.folders |= drained.folders
            self._pending.rescan = self._pending.rescan or drained.rescan
            self._pending.rewatch = self._pending.rewatch or drained.rewatch
            if drained.newest_at is not None:
                self._pending.newest_at = max(self._pending.newest_at or drained.newest_at, drained.newest_at)
            self._pending.poked = True
            self._woken = True
            self._cond.notify()

    def drain(self) -> Drained:
        with self._cond:
            drained, self._pending = self._pending, Drained()
            return drained


def topmost(folders: set[str]) -> list[str]:
    """`folders` without those inside another one of them ("" holds everything): a scan
    of each of these covers them all."""
    kept: list[str] = []
    for folder in sorted(folders, key=lambda f: (f.count("/"), f)):
        if not any(k == "" or folder == k or folder.startswith(k + "/") for k in kept):
            kept.append(folder)
    return kept
