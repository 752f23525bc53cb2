"""One repository's backup steps: record, scan, commit what is due, push.

Thin orchestration over the queue (`mdbackup.queue`) and the libgit2 layer
(`mdbackup.git`): used alike by `run --once`, the daemon's worker and the flush on
SIGTERM.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pygit2

from mdbackup import crashpoints, logs
from mdbackup.config import Config
from mdbackup.git import layout, leftovers
from mdbackup.git import repo as gitrepo
from mdbackup.git.commit import Committer
from mdbackup.git.scan import ScanResult, changed_paths
from mdbackup.message import renderer
from mdbackup.patterns import StoreFilter
from mdbackup.pushing import Pusher
from mdbackup.queue import FORGET, SUCCESS, Batch, Outcome, Queue
from mdbackup.statuses import PathStatus


def _store_filter(config: Config) -> StoreFilter:
    return StoreFilter.build(
        store_prefix=config.store_prefix, include=config.store.include, exclude=config.store.exclude
    )


@dataclass(frozen=True)
class PassReport:
    """What one commit pass did. `busy` is set when git was busy (nothing lost)."""

    taken: int = 0
    commit_id: str | None = None
    committed: int = 0
    failed: int = 0
    busy: str | None = None
    paused: bool = False


class Backup:
    """The backup of one repository, as configured."""

    def __init__(self, *, config: Config, repo: pygit2.Repository, queue: Queue) -> None:
        self.config = config
        self.repo = repo
        self.queue = queue
        self.filter = _store_filter(config)
        self.committer = Committer(repo, step=crashpoints.reach)
        self.pusher = Pusher(config=config, repo=repo, queue=queue)
        self.log = logs.get()
        self._last_deferral: str | None = None

    @classmethod
    def open(cls, config: Config) -> Backup:
        """Open the configured repository and its state database."""
        repo = gitrepo.open_repository(config.repo)
        queue = Queue(layout.db_path(gitrepo.git_dir(repo), config.state.db))
        return cls(config=config, repo=repo, queue=queue)

    @property
    def git_dir(self) -> Path:
        return gitrepo.git_dir(self.repo)

    @property
    def state_dir(self) -> Path:
        return layout.state_dir(self.git_dir)

    def clear_leftovers(self) -> None:
        """Remove the lock files a killed mdbackup of ours left (never git's); call it
        while holding the repository lock, before the first commit."""
        for lock in leftovers.clear_left_behind(self.state_dir):
            self.log.warning(
                "stale_lock_removed", lock=str(lock), detail="left by an interrupted mdbackup write"
            )

    def record(self, paths: Iterable[str], *, now: float) -> int:
        """Record changes to the store paths among `paths` (others are ignored)."""
        wanted = [p for p in paths if self.filter.wants(p)]
        recorded = self.queue.record(wanted, now=now, disabled=not self.config.commit.enabled)
        if recorded:
            crashpoints.reach("recorded")
        return recorded

    def scan(self, *, now: float, reason: str, folder: str | None = None) -> ScanResult:
        """Record every store path (under `folder` when given) that differs from HEAD;
        logs what it found."""
        result = changed_paths(
            self.repo,
            store_prefix=self.config.store_prefix if folder is None else folder,
            wants=self.filter.wants,
            wants_dir=self.filter.might_contain,
        )
        self.record(result.changed, now=now)
        self.log.info(
            "scan",
            reason=reason,
            folder=folder,
            changed=len(result.changed),
            files=result.files_seen,
            hashed=result.hashed,
            elapsed_ms=result.elapsed_ms,
        )
        return result

    def commit_due(self, *, now: float, failed_too: bool = False) -> PassReport:
        """Commit every due path in one commit (failed ones too when `failed_too`).

        Never raises for a git problem: busy git defers the batch, anything else
        fails it with the reason, and the report says which.
        """
        if self.queue.paused():
            return PassReport(paused=True)
        if not self.config.commit.enabled:
            return PassReport()
        batch = self.queue.take_batch(now=now, include_failed_early=failed_too)
        if not batch:
            return PassReport()
        crashpoints.reach("queued")
        outcomes, report = self._commit(batch, now=now)
        self.queue.finish_batch(
            batch,
            outcomes,
            now=now,
            retry_min=self.config.push.retry_min,
            retry_max=self.config.push.retry_max,
        )
        crashpoints.reach("db_marked")
        return report

    def _commit(self, batch: Batch, *, now: float) -> tuple[dict[str, Outcome], PassReport]:
        try:
            result = self.committer.commit_paths(
                batch.paths,
                message=renderer(
                    template=self.config.commit.message,
                    store_prefix=self.filter.store_prefix,
                    hostname=socket.gethostname(),
                    now=lambda: datetime.now().astimezone(),
                ),
                author=self._signature(),
                committer=self._signature(),
                max_file_size=self.config.store.max_file_size,
            )
        except (pygit2.GitError, OSError) as exc:
            self.log.error("commit_error", error=str(exc), paths=len(batch))
            return self._fail_all(batch, f"commit failed: {exc}")
        if result.busy is not None:
            self._log_deferral(result.busy, len(batch))
            return {}, PassReport(taken=len(batch), busy=result.busy)
        if result.refused is not None:
            return self._fail_all(batch, result.refused)
        self._last_deferral = None
        outcomes: dict[str, Outcome] = {}
        for change in result.changes:
            outcomes[change.path] = SUCCESS
        for path in result.unchanged:
            outcomes[path] = SUCCESS
        for path in result.skipped:
            outcomes[path] = FORGET
        for path, reason in result.failed.items():
            outcomes[path] = Outcome(PathStatus.FAILED, error=reason)
            self.log.warning("path_failed", path=path, error=reason)
        if result.commit_id:
            self.pusher.committed()
            firsts = [i.first_seen_at for i in batch.items if i.first_seen_at is not None]
            latency = round((now - min(firsts)) * 1000) if firsts else None
            self.log.info(
                "commit",
                commit=result.commit_id,
                branch=result.branch,
                paths=len(result.changes),
                elapsed_ms=result.elapsed_ms,
                latency_ms=latency,
                failed=len(result.failed),
            )
        return outcomes, PassReport(
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
        name, email = gitrepo.identity(self.repo)
        commit = self.config.commit
        return pygit2.Signature(
            commit.author_name or name or "mdbackup",
            commit.author_email or email or f"mdbackup@{socket.gethostname()}",
        )

    def push_if_due(self, *, now: float, force: bool = False, timeout: float | None = None) -> bool:
        """Push when due (at once when `force`); True when the remote has the local head."""
        return self.pusher.push_if_due(now=now, force=force, timeout=timeout)

    def push_deadline(self) -> float | None:
        return self.pusher.deadline()

    def push_summary(self) -> str | None:
        return self.pusher.summary()

    def reconfigure(self, config: Config) -> None:
        """Use a reloaded config for the same repository from now on."""
        self.config = config
        self.filter = _store_filter(config)
        self.pusher = Pusher(config=config, repo=self.repo, queue=self.queue)

    def close(self) -> None:
        self.queue.close()
