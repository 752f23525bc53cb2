"""The worker thread: schedules only.

It drains the inbox into `Backup`, lets `Backup` do what is due, and sleeps on the
inbox until `Backup`'s next deadline or until something arrives: when nothing
changes, nothing runs. It owns the watcher's life (start, rewatch, restart on a
reload, stop) because a watcher's events must never outlive the worker that takes
them in.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from mdbackup import logs
from mdbackup.backup import ERRORS, Backup, Tick
from mdbackup.clock import SYSTEM_CLOCK, Clock, Heartbeat, backoff
from mdbackup.config import Config
from mdbackup.inbox import Drained, Inbox, topmost
from mdbackup.watcher import Watcher

ERROR_PAUSE_MIN, ERROR_PAUSE_MAX = 1.0, 60.0
"""Seconds the worker waits after an unexpected error, doubling while errors repeat."""
MAX_CONSECUTIVE_ERRORS = 10
"""After this many errors in a row the worker gives up (the service exits 1)."""

WatcherFactory = Callable[[Backup, Inbox], Watcher]


@dataclass(frozen=True)
class Stopped:
    """How the worker ended: `clean` unless it gave up after repeated errors."""

    clean: bool


class Worker(threading.Thread):
    """Takes in what the watcher saw and runs `Backup` when it is due."""

    def __init__(
        self,
        *,
        backup: Backup,
        make_watcher: WatcherFactory,
        on_ready: Callable[[], None],
        on_status: Callable[[str], object],
        on_exit: Callable[[], None],
        clock: Clock = SYSTEM_CLOCK,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        """`heartbeat`: beaten at every round (and, through the step callback the caller
        gave `Backup`, at every step of a commit); idle while asleep."""
        # A daemon thread: a stop that overruns its bound must not keep the process alive;
        # being cut off anywhere is a crash the next start recovers from.
        super().__init__(name="mdbackup-worker", daemon=True)
        self.backup = backup
        self.inbox = Inbox(now=clock.monotonic)
        self._make_watcher = make_watcher
        self._on_ready = on_ready
        self._on_status = on_status
        self._on_exit = on_exit
        self._clock = clock
        self._stop_requested = threading.Event()
        self._new_config: Config | None = None
        self._config_lock = threading.Lock()
        self.watcher = make_watcher(backup, self.inbox)
        self.stopped = Stopped(clean=True)
        self._flush_deadline: float | None = None
        self.heartbeat = heartbeat or Heartbeat(clock)
        self._tick = Tick(scanned=False, next_at=None)  # what the last run_due said
        self._status_sent_at: float | None = None
        self._status_line: str | None = None
        self._touched: set[str] = set()
        """Folders with a change taken in since the last full scan (scanned at stop)."""
        self.log = logs.get()

    # -- called from the main thread ----------------------------------------------------

    def stop(self, *, flush_bound: float) -> None:
        """Stop watching, commit everything pending at once, push; within `flush_bound` s."""
        self._flush_deadline = self._clock.monotonic() + flush_bound
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
            self.heartbeat.beat()
            self.watcher.start()  # watch first: no change slips between the scan and the watch
            self.backup.recover(reason="start")
            self._after_scan()
            self._on_status(self.backup.status_line())
            self._on_ready()
            self._loop()
        except Exception as exc:  # the thread must not die silently: log, then exit 1
            self.log.exception("worker_crashed", error=repr(exc))
            self.stopped = Stopped(clean=False)
        finally:
            try:
                self._shut_down()
            finally:
                self.backup.close()
                self._on_exit()

    def _loop(self) -> None:
        errors = 0
        while not self._stop_requested.is_set():
            self.heartbeat.beat()
            try:
                timeout = self._iterate()
                errors = 0
            except ERRORS as exc:
                errors += 1
                self.log.error("worker_error", error=str(exc), consecutive=errors)
                if errors >= MAX_CONSECUTIVE_ERRORS:
                    raise
                timeout = backoff(errors, minimum=ERROR_PAUSE_MIN, maximum=ERROR_PAUSE_MAX)
            self.heartbeat.idle()
            if self.inbox.wait(timeout):
                # One save is several events (modify, modify, close) microseconds apart:
                # gather them into one wake-up. Each path keeps its arrival time, so the
                # debounce does not move.
                self._stop_requested.wait(GATHER)

    def _iterate(self) -> float | None:
        """One round: apply a reload, take in what arrived, run what is due. Returns how
        long to sleep (None: until woken)."""
        reloaded = self._apply_reload()
        only_changes = self._take_in_all() and not reloaded
        last = self._tick
        due = None if last.pending_at is None or last.next_at is None else min(last.pending_at, last.next_at)
        if only_changes and due is not None and self._clock.monotonic() < due:
            # A burst: nothing is due yet, and changes recorded now can only put the batch
            # later; nothing else moved (no signal, reload or error). Skip run_due's queries
            # (four a wake-up, each over every pending path) until the deadline we know of.
            tick = Tick(scanned=False, next_at=last.next_at, pending_at=last.pending_at)
        else:
            tick = self._tick = self.backup.run_due(degraded=self.watcher.degraded)
        if tick.scanned:
            self._touched.clear()
            if self.watcher.degraded:
                self.watcher.recover()  # the limit may have freed up: watch again
                self.backup.rescan_after(degraded=self.watcher.degraded)
            else:
                self.watcher.check_coverage()
        waits = [] if tick.next_at is None else [tick.next_at - self._clock.monotonic()]
        status_at = self._status_due()
        waits += [] if status_at is None else [status_at - time.monotonic()]
        return max(0.0, min(waits)) if waits else None

    def _status_due(self) -> float | None:
        """Work out the status line and send it when it changed, at most every STATUS_EVERY
        seconds: a burst or an edit stream wakes the worker for every save and the line
        costs queries. Returns when a deferred line is due (`time.monotonic()`: a rate on
        real time, not on the injected clock; None: nothing deferred)."""
        now = time.monotonic()
        if self._status_sent_at is not None and now < self._status_sent_at + STATUS_EVERY:
            return self._status_sent_at + STATUS_EVERY
        self._status_sent_at = now
        line = self.backup.status_line()
        if line != self._status_line:
            self._status_line = line
            self._on_status(line)
        return None

    def _take_in_all(self) -> bool:
        """Take in what the watcher collected, again and again while more arrives (a burst
        keeps its batch open), but no longer than `watch.max_delay`. True when nothing but
        changes (paths, folders) arrived."""
        until = self._clock.monotonic() + self.backup.config.watch.max_delay
        drained = self.inbox.drain()
        only_changes = True
        while True:
            only_changes = only_changes and not (drained.poked or drained.rescan or drained.rewatch)
            if not (drained.paths or drained.folders or drained.rescan or drained.rewatch):
                return only_changes
            self._take_in(drained)
            if self._clock.monotonic() >= until:
                return only_changes
            drained = self.inbox.drain()

    def _take_in(self, drained: Drained) -> None:
        """Record `drained`; on any error it goes back into the inbox before the error
        propagates, so a locked or full state database delays a change, never drops it."""
        try:
            if drained.rewatch:
                self.watcher.rewatch()
            self._touched.update(_folder(p) for p in drained.paths)
            self._touched.update(drained.folders)
            if self.backup.take_in(drained) and drained.rescan:
                self._after_scan()
        except BaseException:
            self.inbox.put_back(drained)
            raise

    def _after_scan(self) -> None:
        """A full scan ran: check what the watcher covers, and time the next rescan."""
        self._touched.clear()
        self.watcher.check_coverage()
        self.backup.rescan_after(degraded=self.watcher.degraded)

    def _apply_reload(self) -> bool:
        """Use a config `reload` handed over, if any; True when it did."""
        with self._config_lock:
            config, self._new_config = self._new_config, None
        if config is None:
            return False
        self.watcher.stop(drain=False)  # a full scan follows
        self.backup.reload(config)
        self.watcher = self._make_watcher(self.backup, self.inbox)
        self.watcher.start()
        self.backup.scan(reason="config reloaded")
        self._after_scan()
        self.log.info("reloaded", source=str(config.source))
        return True

    def _shut_down(self) -> None:
        """Stop watching (watchdog hands over every event it still holds), record what
        arrived, scan the folders touched since the last scan when the bound allows, then
        commit what is pending at once and push, within the bound. What is not committed by
        then is pending in the state database (or found by the next start's scan)."""
        self.heartbeat.beat()
        self.watcher.stop(drain=self.stopped.clean)
        if not self.stopped.clean:
            return
        drained = self.inbox.drain()
        self._touched.update(_folder(p) for p in drained.paths)
        self._touched.update(drained.folders)
        self.backup.take_in(Drained(paths=drained.paths, folders=drained.folders))
        if self._time_left() is None or (self._time_left() or 0.0) > FINAL_SCAN_MIN:
            for folder in topmost(self._touched):
                self.heartbeat.beat()
                self.backup.scan(reason="stopping", folder=folder)
        self.heartbeat.beat()
        self.backup.flush(time_left=self._time_left())
        self._on_status(self.backup.status_line())

    def _time_left(self) -> float | None:
        return None if self._flush_deadline is None else self._flush_deadline - self._clock.monotonic()


GATHER = 0.005
"""Seconds the worker lets events gather after being woken, before it takes them in."""

STATUS_EVERY = 1.0
"""Seconds between two status lines while changes keep arriving (the last one is never lost)."""

FINAL_SCAN_MIN = 5.0
"""Seconds of the stop bound that must be left for the final scan of the touched folders."""


def _folder(path: str) -> str:
    return path.rpartition("/")[0]
