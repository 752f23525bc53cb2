"""The long-running daemon: signals and systemd on the main thread, work on the worker.

Signal handlers only record the signal and set an Event; the main loop acts:
SIGTERM/SIGINT stop (flush within `FLUSH_BOUND` seconds, then exit 0), SIGHUP
reloads the config (a bad one is logged and the old one kept), SIGUSR1 (sent by
`retry`, `pause`, `resume`) wakes the worker to re-read the state database.
The main thread sleeps until a signal arrives, or until the next systemd
watchdog ping is due when `WATCHDOG_USEC` is set; it pings only while the worker's
heartbeat shows progress (or the worker sleeps with nothing to do), so a stuck
worker gets the daemon restarted by systemd.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from mdbackup import logs
from mdbackup.backup import Backup
from mdbackup.clock import Heartbeat
from mdbackup.config import ConfigError, Overrides, load_config
from mdbackup.exitcodes import ExitCode
from mdbackup.inbox import Inbox
from mdbackup.lock import WAKE_SIGNAL
from mdbackup.notify import Notifier, watchdog_interval
from mdbackup.watcher import Watcher
from mdbackup.worker import Worker

FLUSH_BOUND = 20.0  # seconds a stop may take (systemd's TimeoutStopSec is above it)
_HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, WAKE_SIGNAL)


def _watch_store(backup: Backup, inbox: Inbox) -> Watcher:
    """The watcher of `backup`'s store folder, as its config says."""
    config = backup.config
    return Watcher(
        workdir=config.repo,
        store_filter=backup.filter,
        inbox=inbox,
        poll_interval=config.watch.poll_interval,
        git_dir=backup.git_dir,
        excludes_file=backup.excludes_file(),
    )


class Service:
    """Runs the daemon for one opened `Backup` until a stop signal."""

    def __init__(
        self,
        backup: Backup,
        *,
        config_path: Path | None,
        overrides: Overrides | None = None,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        """`heartbeat`: the one `backup`'s step callback beats (see `crashpoints.from_environ`)."""
        self.backup = backup
        self.heartbeat = heartbeat or Heartbeat()
        self.config_path = config_path
        self.overrides = overrides or Overrides()
        self.notifier = Notifier.from_environ(os.environ)
        self.log = logs.get()
        self._signals: deque[int] = deque()
        self._signalled = threading.Event()
        self._stopping = False
        self._stuck_reported = False

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals.append(signum)
        self._signalled.set()

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in _HANDLED}
        worker = Worker(
            backup=self.backup,
            make_watcher=_watch_store,
            on_ready=self._ready,
            on_status=self.notifier.status,
            on_exit=self._signalled.set,
            heartbeat=self.heartbeat,
        )
        actions: dict[int, Callable[[Worker], None]] = {
            signal.SIGTERM: self._stop,
            signal.SIGINT: self._stop,
            signal.SIGHUP: self._reload,
            WAKE_SIGNAL: lambda w: w.inbox.wake(),
        }
        ping = watchdog_interval(os.environ)
        try:
            worker.start()
            while not self._stopping and worker.is_alive():
                self._signalled.wait(ping)
                self._signalled.clear()
                while self._signals:
                    actions[self._signals.popleft()](worker)
                if ping is not None and worker.is_alive():
                    self._ping(within=2 * ping)
            if worker.is_alive():
                worker.join(FLUSH_BOUND + 1)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if worker.is_alive():
            self.log.error(
                "stop_timeout",
                detail=f"flush did not finish in {FLUSH_BOUND} s; "
                "pending paths are committed at the next start",
            )
            return ExitCode.FAILED
        return ExitCode.OK if worker.stopped.clean else ExitCode.FAILED

    def _ping(self, *, within: float) -> None:
        """WATCHDOG=1 only when the worker made progress in the last `within` seconds (one
        WATCHDOG_USEC) or sleeps with nothing to do; said once when it stops."""
        if self.heartbeat.alive(within=within):
            self.notifier.watchdog()
            self._stuck_reported = False
        elif not self._stuck_reported:
            self._stuck_reported = True
            self.log.error(
                "worker_stuck", seconds=within, detail="watchdog pings stop; systemd restarts the daemon"
            )

    def _ready(self) -> None:
        self.notifier.ready()
        self.log.info("ready", pid=os.getpid())

    def _stop(self, worker: Worker) -> None:
        if self._stopping:
            return
        self._stopping = True
        self.notifier.stopping()
        self.log.info("stopping", detail="committing what is pending")
        worker.stop(flush_bound=FLUSH_BOUND)

    def _reload(self, worker: Worker) -> None:
        self.notifier.reloading()
        try:
            config = load_config(self.config_path, overrides=self.overrides, cwd=Path.cwd())
        except ConfigError as exc:
            for problem in exc.problems:
                self.log.error(
                    "reload_rejected", problem=problem, detail="the old configuration stays in use"
                )
            self.notifier.ready()
            return
        if config.repo != self.backup.config.repo:
            self.log.error(
                "reload_rejected",
                problem="store.repo changed",
                detail="a different repository needs a restart; old config kept",
            )
        else:
            worker.reload(config)
        self.notifier.ready()
