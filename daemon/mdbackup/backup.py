"""One repository's backup: take in changes, scan, commit what is due, sync, push.

The orchestration over the state database (`mdbackup.state`) and the libgit2 layer
(`mdbackup.git`) for `run --once`, the daemon's worker and the SIGTERM flush; their only
caller (pushing through its `Pusher`, syncing through its `Syncer`). Every "when" (a
batch, a retry, a rescan, a fetch, a push) is computed here, once, from the state
database and the injected clock.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from pathlib import Path

import peewee
import pygit2

from mdbackup import logs
from mdbackup.clock import SYSTEM_CLOCK, Clock, SteadyClock, backoff
from mdbackup.config import Config
from mdbackup.crashpoints import Step, no_step
from mdbackup.git import index_lock, layout
from mdbackup.git import repo as gitrepo
from mdbackup.git.commit import CommitResult, Committer
from mdbackup.git.scan import ScanResult, changed_paths
from mdbackup.inbox import Drained, topmost
from mdbackup.message import renderer
from mdbackup.patterns import StoreFilter
from mdbackup.pushing import Pusher
from mdbackup.reading import open_state
from mdbackup.reporting import Reporting
from mdbackup.schedule import PATH_RETRY_MAX, PATH_RETRY_MIN, BusyBackoff, batch_deadline, rescan_interval
from mdbackup.state.db import StateDB
from mdbackup.state.queue import FORGET, SUCCESS, Batch, Outcome, PathQueue
from mdbackup.state.repository import RepositoryState
from mdbackup.statuses import PathStatus
from mdbackup.syncing import Syncing

__all__ = ["ERRORS", "HOOKS_NOT_RUN", "Backup", "PassReport", "Tick"]

HOOKS_NOT_RUN = (
    "git's commit hooks are not run for backup commits: they are made with libgit2, which runs no "
    "hooks, and a hook that asks questions or fails would stop backups; run your checks in CI or "
    "on push instead"
)

ERRORS: tuple[type[Exception], ...] = (pygit2.GitError, OSError, peewee.DatabaseError)
"""What a `Backup` call may raise when git, the disk or the state database fails unexpectedly."""


@dataclass(frozen=True)
class PassReport:
    """What one commit pass did. `busy` is set when git was busy (nothing lost)."""

    taken: int = 0
    commit_id: str | None = None
    committed: int = 0
    failed: int = 0
    busy: str | None = None
    paused: bool = False


@dataclass(frozen=True)
class Tick:
    """What `run_due` did: whether it scanned, and when it is next due (`Clock.monotonic`
    seconds, so a wall-clock step neither delays nor hurries it; None: only when
    something arrives)."""

    scanned: bool
    next_at: float | None
    pending_at: float | None = None  # the pending paths' batch deadline: new changes only delay it


class Backup(Reporting, Syncing):
    """The backup of one repository, as configured."""

    def __init__(
        self,
        *,
        config: Config,
        repo: pygit2.Repository,
        state: StateDB,
        clock: Clock = SYSTEM_CLOCK,
        step: Step = no_step,
    ) -> None:
        self.repo = repo
        self._state = state
        self._queue = PathQueue(state)
        self._repository = RepositoryState(state)
        # every "when" is scheduled on steady time: stored times stay epoch seconds, but a
        # wall-clock step of either sign neither delays nor hurries a batch, retry or push
        self._clock = SteadyClock(clock)
        self._step = step
        self._committer = Committer(repo, step=step)
        self.log = logs.get()
        self._last_deferral: str | None = None
        self._busy = BusyBackoff()
        self._next_rescan: float | None = None
        self.state_note: str | None = None  # why the state shown is empty (read-only open)
        self._serving_pid: int | None = None  # set by `serving`: reconfigure records the config
        self._unfinished: tuple[Batch, dict[str, Outcome]] | None = None
        self._taken_at = 0.0
        self.reconfigure(config)

    @classmethod
    def open(
        cls,
        config: Config,
        *,
        clock: Clock = SYSTEM_CLOCK,
        step: Step = no_step,
        read_only: bool = False,
        repair: bool = True,
    ) -> Backup:
        """Open the configured repository and its state database (`reading.open_state`:
        owned by this repository; `read_only` for `status`; `repair` only under the lock)."""
        repo = gitrepo.open_repository(config.repo)
        git_dir = gitrepo.git_dir(repo)
        path = layout.db_path(git_dir, config.state.db)
        opened = open_state(git_dir, path, read_only=read_only, repair=repair)
        backup = cls(config=config, repo=repo, state=opened.state, clock=clock, step=step)
        backup.state_note = opened.note
        return backup

    def reconfigure(self, config: Config) -> None:
        """Use `config` (for the same repository) from now on."""
        self.config = config
        self.filter = StoreFilter.build(
            store_prefix=config.store_prefix, include=config.store.include, exclude=config.store.exclude
        )
        self._message = renderer(
            template=config.commit.message,
            store_prefix=config.store_prefix,
            hostname=socket.gethostname(),
            now=lambda: datetime.now().astimezone(),
        )
        self._pusher = Pusher(
            config=config, repo=self.repo, state=self._repository, clock=self._clock, step=self._step
        )
        self._syncer = self._make_syncer(config)
        self.rescan_after(degraded=False)
        self._record_daemon()

    def reload(self, config: Config) -> None:
        """A reloaded config for the same repository: use it, and drop what it no longer wants."""
        self.reconfigure(config)
        self.forget_unwanted()

    @property
    def git_dir(self) -> Path:
        return gitrepo.git_dir(self.repo)

    def close(self) -> None:
        self._state.close()

    def excludes_file(self) -> Path | None:
        """The repository's `core.excludesFile` (watched: its rules decide what is wanted)."""
        setting = gitrepo.excludes_file_setting(self.repo)
        return None if setting is None else self.config.repo / Path(setting).expanduser()

    # -- taking in changes --------------------------------------------------------------

    def record(self, paths: Iterable[str], *, at: float | None = None) -> int:
        """Record changes to `paths` (filtered where first seen), the newest arrived at `at`."""
        now = self._clock.wall_at(at)  # `Clock.monotonic` (None: now): the debounce runs from it
        recorded = self._queue.record(paths, now=now, disabled=not self.config.commit.enabled)
        if recorded:
            self._step("recorded")
        return recorded

    def take_in(self, drained: Drained) -> bool:
        """Record what the watcher collected and scan the folders it names (the whole
        store when it asks for a rescan). True when it scanned."""
        if drained.paths:
            self.record(drained.paths, at=drained.newest_at)
        if drained.rescan:
            self.scan(reason=drained.rescan)
            return True
        for folder in topmost(drained.folders):
            self.scan(reason="folder changed", folder=folder)
        return bool(drained.folders)

    def scan(self, *, reason: str, folder: str | None = None) -> ScanResult:
        """Record every store path (under `folder` when given) that differs from HEAD."""
        result = changed_paths(
            self.repo,
            store_prefix=self.config.store_prefix if folder is None else folder,
            wants=self.filter.wants,
            wants_dir=self.filter.might_contain,
            progress=partial(self._step, "scanning"),  # the heartbeat, at every folder and chunk
        )
        self.record(result.changed)
        counts = {"files": result.files_seen, "hashed": result.hashed, "elapsed_ms": result.elapsed_ms}
        self.log.info("scan", reason=reason, folder=folder, changed=len(result.changed), **counts)
        return result

    # -- passes ---------------------------------------------------------------------------

    def recover(self, *, reason: str) -> tuple[PassReport, bool]:
        """Start-up: remove lock files a killed mdbackup of ours left (never git's), put
        interrupted paths back to pending, scan the store, commit everything due (failed
        paths too), and push. Call it holding the repository lock, before the first
        new event is taken in (`run --once` and the daemon alike). Returns the commit
        pass's report and whether the remote has the local head (True when push is off)."""
        for cleared in index_lock.clear_left_behind(self.repo):
            self.log.warning(
                "stale_lock_removed" if cleared.action == "removed" else "interrupted_write_completed",
                lock=str(cleared.lock),
                detail="left by an interrupted mdbackup write",
            )
        now = self._clock.wall()
        requeued = self._queue.requeue_interrupted(now=now)
        if self.config.commit.enabled:
            self._queue.enable_disabled(now=now)
        self.log.info("starting", requeued=requeued, store=self.config.store_prefix or ".")
        hooks = gitrepo.commit_hooks(self.repo)
        if hooks:
            self.log.warning("hooks_not_run", hooks=list(hooks), detail=HOOKS_NOT_RUN)
        self.forget_unwanted()
        self.scan(reason=reason)
        report = self.commit_now(failed_too=True)
        return report, self._start_and_push()

    def commit_now(self, *, failed_too: bool = False) -> PassReport:
        """Commit every pending path at once, in one commit (failed ones too when
        `failed_too`), unless paused. Never raises for a git problem: see `PassReport`."""
        if self._repository.paused():
            return PassReport(paused=True)
        return self._commit_pass(failed_too=failed_too)

    def run_due(self, *, degraded: bool) -> Tick:
        """Do what is due now (a rescan, a batch, a push) and say when to come back.
        `degraded`: the watcher cannot see every folder (rescans every DEGRADED_RESCAN s)."""
        self._finish_batch()
        window = self._queue.window()
        if not window.pending and window.next_retry_at is None and self._nothing_due():
            self._clock.reanchor()  # nothing scheduled from stored times: follow the wall clock again
        now = self._clock.wall()
        scanned = self._next_rescan is not None and self._clock.monotonic() >= self._next_rescan
        if scanned:
            self.scan(reason="periodic")
            self.rescan_after(degraded=degraded)
        commit_at = self._commit_deadline()
        if commit_at is not None and commit_at <= now:
            self._commit_pass(failed_too=False)
            commit_at = self._commit_deadline()
        sync_at = self._sync_if_due()
        push_at = self._pusher.deadline()
        if push_at is not None and push_at <= self._clock.wall():
            self._push()
            push_at = self._pusher.deadline()
        wakeups = [self._clock.to_monotonic(t) for t in (commit_at, push_at, sync_at) if t is not None]
        wakeups += [self._next_rescan] if self._next_rescan is not None else []
        pending = self._commit_deadline(retries=False)  # 0.0 and None alike: nothing to wait for
        return Tick(scanned, min(wakeups) if wakeups else None, pending and self._clock.to_monotonic(pending))

    def flush(self, *, time_left: float | None) -> None:
        """Stopping: commit everything pending now (no debounce) and push, when more than a
        second of `time_left` (None: no bound) remains for it."""
        started = self._clock.monotonic()
        self.commit_now()
        left = None if time_left is None else time_left - (self._clock.monotonic() - started)
        if left is None or left > 1:
            self._pusher.push_if_due(force=True, timeout=left)

    def rescan_after(self, *, degraded: bool) -> None:
        """A full scan just ran (start, reload): the next periodic one is a full interval away."""
        interval = rescan_interval(self.config.watch.rescan_interval, degraded=degraded)
        self._next_rescan = None if interval is None else self._clock.monotonic() + interval

    def _commit_deadline(self, *, retries: bool = True) -> float | None:
        if not self.config.commit.enabled or self._repository.paused():
            return None
        watch, window = self.config.watch, self._queue.window()
        window = window if retries else replace(window, next_retry_at=None)
        deadline = batch_deadline(window, debounce=watch.debounce, max_delay=watch.max_delay)
        if deadline is not None and self._busy.until is not None:
            return max(deadline, self._busy.until)
        return deadline

    def _commit_pass(self, *, failed_too: bool) -> PassReport:
        self._finish_batch()
        if not self.config.commit.enabled:
            return PassReport()
        now = self._clock.wall()
        batch = self._queue.take_batch(now=now, include_failed_early=failed_too)
        if not batch:
            return PassReport()
        self._step("queued")
        self._taken_at = now  # the commit log's latency runs from the first change to here
        outcomes, report = self._commit(batch)
        self._busy.note(report.busy, now=self._clock.wall())
        self._unfinished = (batch, outcomes)
        self._finish_batch()
        return report

    def _visible(self, path: str) -> bool:
        """False for a path that cannot even be looked at (longer than PATH_MAX, ...): whether
        it is wanted is unknown, so the commit looks at it and reports it failed."""
        try:
            os.lstat(os.path.join(self.repo.workdir or "", path))
        except (FileNotFoundError, NotADirectoryError):
            return True
        except OSError:
            return False
        return True

    def _finish_batch(self) -> None:
        """Write the last batch's outcome; if the state database refuses (locked, full) it is
        written at the next pass, first: its paths stay queued meanwhile, never dropped."""
        if self._unfinished is not None:
            retry = partial(backoff, minimum=PATH_RETRY_MIN, maximum=PATH_RETRY_MAX)
            self._queue.finish_batch(*self._unfinished, now=self._clock.wall(), retry_delay=retry)
            self._unfinished = None
            self._step("db_marked")

    def _commit(self, batch: Batch) -> tuple[dict[str, Outcome], PassReport]:
        dropped = {path for path in batch.paths if not self.filter.wants(path) and self._visible(path)}
        if dropped:  # recorded under a config that wanted them; the one in force does not
            self.log.info(
                "paths_dropped", paths=len(dropped), reason="the configuration no longer wants them"
            )
            kept = Batch(tuple(item for item in batch.items if item.path not in dropped))
            outcomes, report = self._commit(kept) if kept else ({}, PassReport())
            return {**outcomes, **dict.fromkeys(dropped, FORGET)}, report
        try:
            result = self._committer.commit_paths(
                batch.paths,
                message=self._message,
                author=self._signature(),
                committer=self._signature(),
                max_file_size=self.config.store.max_file_size,
            )
        except (pygit2.GitError, OSError) as exc:  # cannot write the repository, disk full, ...
            self.log.error("commit_error", error=str(exc), paths=len(batch))
            return self._fail_all(batch, f"commit failed: {exc}")
        if result.busy:
            self._log_deferral(result.busy, len(batch))
            return {}, PassReport(taken=len(batch), busy=result.busy)
        if result.refused:
            return self._fail_all(batch, result.refused)
        self._last_deferral = None
        return self._outcomes(result), self._report(batch, result)

    def _outcomes(self, result: CommitResult) -> dict[str, Outcome]:
        outcomes: dict[str, Outcome] = {change.path: SUCCESS for change in result.changes}
        outcomes.update((path, SUCCESS) for path in result.unchanged)
        outcomes.update((path, FORGET) for path in result.skipped)
        for path, reason in result.failed.items():
            outcomes[path] = Outcome(PathStatus.FAILED, error=reason)
            self.log.warning("path_failed", path=path, error=reason)
        return outcomes

    def _report(self, batch: Batch, result: CommitResult) -> PassReport:
        if result.commit_id:
            self._pusher.committed()
            firsts = [i.first_seen_at for i in batch.items if i.first_seen_at is not None]
            latency = round((self._taken_at - min(firsts)) * 1000) if firsts else None
            self.log.info(
                "commit",
                commit=result.commit_id,
                branch=result.branch,
                paths=len(result.changes),
                elapsed_ms=result.elapsed_ms,
                latency_ms=latency,
                failed=len(result.failed),
            )
        return PassReport(
            taken=len(batch),
            commit_id=result.commit_id,
            committed=len(result.changes),
            failed=len(result.failed),
        )

    def _fail_all(self, batch: Batch, reason: str) -> tuple[dict[str, Outcome], PassReport]:
        self.log.error("commit_failed", error=reason, paths=len(batch))
        failed = Outcome(PathStatus.FAILED, error=reason)
        return {p: failed for p in batch.paths}, PassReport(taken=len(batch), failed=len(batch))

    def _log_deferral(self, reason: str, paths: int) -> None:
        if reason != self._last_deferral:
            self.log.warning("commit_deferred", reason=reason, paths=paths)
            self._last_deferral = reason

    def _signature(self) -> pygit2.Signature:
        commit = self.config.commit
        return gitrepo.signature(
            self.repo, name=commit.author_name, email=commit.author_email, hostname=socket.gethostname()
        )
