"""The worker thread: records what the watcher saw, and commits when a batch is due.

A batch is due when its paths have had `watch.debounce` seconds of quiet (the
newest change is that old), or its oldest change is `watch.max_delay` old, or a
failed path's retry time has come. Between deadlines the thread sleeps on the
inbox's condition: when nothing changes, nothing runs.

The worker owns the watcher and the `Backup` (its SQLite connection and libgit2
repository are used from this thread only).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import peewee
import pygit2

from mdbackup import logs
from mdbackup.backup import Backup
from mdbackup.config import Config
from mdbackup.notify import Notifier
from mdbackup.queue import Window, now
from mdbackup.watcher import Drained, Inbox, Watcher

DEGRADED_RESCAN = 60.0  # seconds between rescans while the watcher cannot run
BUSY_RETRY_MIN, BUSY_RETRY_MAX = 0.5, 30.0  # seconds between tries while git is busy
_MAX_CONSECUTIVE_ERRORS = 10


def batch_deadline(window: Window, *, debounce: float, max_delay: float) -> float | None:
    """When the pending paths are due (epoch seconds), or None when none is pending.

    Failed paths are due at their own retry time.
    """
    candidates: list[float] = []
    if window.pending and window.newest_event_at is not None:
        quiet = window.newest_event_at + debounce
        oldest = window.oldest_change_at if window.oldest_change_at is not None else quiet
        candidates.append(min(quiet, oldest + max_delay))
    if window.next_retry_at is not None:
        candidates.append(window.next_retry_at)
    return min(candidates) if candidates else None


@dataclass(frozen=True)
class Stopped:
    """How the worker ended: `clean` unless it gave up after repeated errors."""

    clean: bool


class Worker(threading.Thread):
    """Owns the watcher, the queue writes, the commits and the pushes."""

    def __init__(
        self, *, backup: Backup, notifier: Notifier, on_ready: Callable[[], None], on_exit: Callable[[], None]
    ) -> None:
        # A daemon thread: a stop that overruns its bound must not keep the process alive;
        # being cut off anywhere is a crash the next start recovers from.
        super().__init__(name="mdbackup-worker", daemon=True)
        self.backup = backup
        self.inbox = Inbox()
        self.notifier = notifier
        self._on_ready = on_ready
        self._on_exit = on_exit
        self._stop_requested = threading.Event()
        self._new_config: Config | None = None
        self._config_lock = threading.Lock()
        self.watcher = self._make_watcher()
        self.stopped = Stopped(clean=True)
        self.flush_deadline: float | None = None
        self.log = logs.get()
        self._next_rescan: float | None = None
        self._busy_retry_at: float | None = None
        self._busy_wait = BUSY_RETRY_MIN

    def _make_watcher(self) -> Watcher:
        config = self.backup.config
        return Watcher(
            workdir=config.repo,
            store_filter=self.backup.filter,
            inbox=self.inbox,
            poll_interval=config.watch.poll_interval,
        )

    # -- called from the main thread ----------------------------------------------------

    def stop(self, *, flush_bound: float) -> None:
        """Stop watching, commit everything pending at once, push; within `flush_bound` s."""
        self.flush_deadline = time.monotonic() + flush_bound
        self._stop_requested.set()
        self.inbox.wake()

    def reload(self, config: Config) -> None:
        """Use `config` from the next iteration on (watcher restarted, full rescan)."""
        with self._config_lock:
            self._new_config = config
        self.inbox.wake()

    # -- the thread ----------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._start_up()
            self._on_ready()
            self._loop()
        except Exception as exc:  # the thread must not die silently: log, then exit 1
            self.log.exception("worker_crashed", error=repr(exc))
            self.stopped = Stopped(clean=False)
        finally:
            try:
                self._shut_down()
            finally:
                self.backup.queue.close()
                self._on_exit()

    def _start_up(self) -> None:
        """Watch first (no change slips between scan and watch), then recover and scan."""
        started = now()
        self.backup.clear_leftovers()
        self.watcher.start()
        queue = self.backup.queue
        requeued = queue.requeue_interrupted(now=started)
        if self.backup.config.commit.enabled:
            queue.enable_disabled(now=started)
        self.log.info("starting", requeued=requeued, store=str(self.watcher.store_dir))
        self.backup.scan(now=started, reason="start")
        self.watcher.check_coverage()
        self.backup.commit_due(now=now(), failed_too=True)
        self.backup.push_if_due(now=now(), force=True)
        self._schedule_rescan()
        self._report()

    def _loop(self) -> None:
        errors = 0
        while not self._stop_requested.is_set():
            try:
                timeout = self._iterate()
                errors = 0
            except (pygit2.GitError, OSError, peewee.DatabaseError) as exc:
                errors += 1
                self.log.error("worker_error", error=str(exc), consecutive=errors)
                if errors >= _MAX_CONSECUTIVE_ERRORS:
                    raise
                timeout = min(
                    self.backup.config.push.retry_max, self.backup.config.push.retry_min * 2 ** (errors - 1)
                )
            self.inbox.wait(timeout)

    def _iterate(self) -> float | None:
        """One round: apply a reload, take in what the watcher saw, commit/push/rescan
        what is due. Returns how long to sleep (None: until woken)."""
        self._apply_reload()
        self._take_in_all()
        current = now()
        if self._next_rescan is not None and current >= self._next_rescan:
            self.backup.scan(now=current, reason="periodic")
            self.watcher.check_coverage()
            self._schedule_rescan()
        deadline = self._commit_deadline()
        if deadline is not None and deadline <= current:
            self._note_busy(self.backup.commit_due(now=current).busy, current)
            self._report()
            deadline = self._commit_deadline()
        push_at = self.backup.push_deadline()
        if push_at is not None and push_at <= now():
            self.backup.push_if_due(now=now())
            self._report()
            push_at = self.backup.push_deadline()
        wakeups = [t for t in (deadline, push_at, self._next_rescan) if t is not None]
        return max(0.0, min(wakeups) - now()) if wakeups else None

    def _commit_deadline(self) -> float | None:
        if self.backup.queue.paused() or not self.backup.config.commit.enabled:
            return None
        watch = self.backup.config.watch
        deadline = batch_deadline(
            self.backup.queue.window(), debounce=watch.debounce, max_delay=watch.max_delay
        )
        if deadline is not None and self._busy_retry_at is not None:
            return max(deadline, self._busy_retry_at)
        return deadline

    def _note_busy(self, busy: str | None, current: float) -> None:
        """While git is busy, try again after a growing pause instead of spinning."""
        if busy is None:
            self._busy_retry_at, self._busy_wait = None, BUSY_RETRY_MIN
            return
        self._busy_retry_at = current + self._busy_wait
        self._busy_wait = min(BUSY_RETRY_MAX, self._busy_wait * 2)

    def _take_in_all(self) -> None:
        """Record what the watcher collected, again and again while more arrives (a
        burst keeps its batch open), but no longer than `watch.max_delay`."""
        until = time.monotonic() + self.backup.config.watch.max_delay
        drained = self.inbox.drain()
        while drained.paths or drained.folders or drained.rescan or drained.rewatch:
            self._take_in(drained)
            if time.monotonic() >= until:
                break
            drained = self.inbox.drain()

    def _take_in(self, drained: Drained) -> None:
        """Record one drained lot; each change is stamped when it is recorded."""
        if drained.paths:
            self.backup.record(drained.paths, now=now())
        if drained.rewatch:
            self.watcher.rewatch()
        if drained.rescan:
            self.backup.scan(now=now(), reason=drained.rescan)
        else:
            for folder in sorted(drained.folders):
                self.backup.scan(now=now(), reason="folder changed", folder=folder)

    def _schedule_rescan(self) -> None:
        interval = self.backup.config.watch.rescan_interval
        if self.watcher.degraded:
            interval = min(interval, DEGRADED_RESCAN) if interval > 0 else DEGRADED_RESCAN
        self._next_rescan = now() + interval if interval > 0 else None

    def _apply_reload(self) -> None:
        with self._config_lock:
            config, self._new_config = self._new_config, None
        if config is None:
            return
        self.watcher.stop()
        self.backup.reconfigure(config)
        self.watcher = self._make_watcher()
        self.watcher.start()
        self.backup.scan(now=now(), reason="config reloaded")
        self._schedule_rescan()
        self.log.info("reloaded", source=str(config.source))

    def _shut_down(self) -> None:
        """Stop watching, then commit what is pending at once and push, within the bound."""
        self.watcher.stop()
        if not self.stopped.clean:
            return
        drained = self.inbox.drain()
        self._take_in(Drained(paths=drained.paths, folders=drained.folders))
        self.backup.commit_due(now=now())
        left = None if self.flush_deadline is None else self.flush_deadline - time.monotonic()
        if left is None or left > 1:
            self.backup.push_if_due(now=now(), force=True, timeout=left)
        self._report()

    def _report(self) -> None:
        counts = self.backup.queue.counts()
        last = self.backup.queue.last_backup_at()
        when = time.strftime("%H:%M", time.localtime(last)) if last else "never"
        text = f"{counts['pending']} pending, {counts['failed']} failed, last backup {when}"
        push = self.backup.push_summary()
        if push:
            text += f", push {push}"
        if self.backup.queue.paused():
            text = "paused; " + text
        self.notifier.status(text)
