"""What the commands read and change through `Backup`: status, the systemd status line,
`check`'s facts, pause and retry, the daemon's recorded config, dropping unwanted paths.

A mixin of `Backup` (the only caller of the state database and git/), kept apart
because none of it is on the path of a save.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pygit2
import structlog

from mdbackup.clock import SteadyClock
from mdbackup.config import Config
from mdbackup.git import repo as gitrepo
from mdbackup.git.scan import path_is_ignored
from mdbackup.patterns import StoreFilter
from mdbackup.pushing import Pusher, RemoteCheck
from mdbackup.reading import Snapshot, daemon_config, take_snapshot
from mdbackup.state.db import StateDB
from mdbackup.state.queue import PathQueue
from mdbackup.state.repository import RepositoryState
from mdbackup.syncing import Syncer


@dataclass(frozen=True)
class RepositoryFacts:
    """What `check` says about the repository."""

    head: gitrepo.HeadInfo
    busy: str | None
    hooks: tuple[str, ...]


class Reporting:
    """Status and control of one repository's backup (mixed into `Backup`, which sets these)."""

    repo: pygit2.Repository
    _state: StateDB
    _queue: PathQueue
    _repository: RepositoryState
    _pusher: Pusher
    _syncer: Syncer
    _clock: SteadyClock
    _serving_pid: int | None
    config: Config
    filter: StoreFilter
    log: structlog.typing.FilteringBoundLogger

    def status_line(self) -> str:
        """A few words for systemd's STATUS= line."""
        counts = self._queue.counts()
        last = self._queue.last_backup_at()
        when = datetime.fromtimestamp(last).strftime("%H:%M") if last else "never"
        text = f"{counts['pending']} pending, {counts['failed']} failed, last backup {when}"
        push = self._pusher.summary()
        if push:
            text += f", push {push}"
        return ("paused; " + text) if self._repository.paused() else text

    def paused(self) -> bool:
        return self._repository.paused()

    def set_paused(self, paused: bool) -> None:
        self._repository.set_paused(paused)

    def retry_now(self) -> tuple[int, bool]:
        """Failed paths and a failed push become due now: (paths, whether the push was failed)."""
        return self._queue.retry_failed(now=self._clock.wall()), self._repository.retry_push()

    def snapshot(self, *, all_paths: bool) -> Snapshot:
        """What `status` shows (see `reading.take_snapshot`)."""
        return take_snapshot(
            state=self._state,
            queue=self._queue,
            repository=self._repository,
            repo=self.repo,
            pusher=self._pusher,
            all_paths=all_paths,
            sync_enabled=self.config.sync.enabled,
        )

    def repository_facts(self) -> RepositoryFacts:
        """The checked-out branch and whether git is busy now (for `check`)."""
        return RepositoryFacts(
            head=gitrepo.head_info(self.repo),
            busy=gitrepo.busy_reason(self.repo),
            hooks=gitrepo.commit_hooks(self.repo),
        )

    def check_remote(self) -> RemoteCheck:
        """Reach the remote with the configured credentials; changes nothing."""
        return self._pusher.check()

    def check_sync(self) -> tuple[bool, str]:
        """With sync on: fetch and say whether a merge would conflict or be blocked; changes
        nothing. (ok, one line)."""
        return self._syncer.check()

    def serving(self, *, pid: int) -> None:
        """This process is the daemon: record its effective config now and on every
        `reconfigure`, for `status`."""
        self._serving_pid = pid
        self._record_daemon()

    def _record_daemon(self) -> None:
        if self._serving_pid is not None:
            config = daemon_config(self.config, pid=self._serving_pid, at=self._clock.wall())
            self._repository.record_daemon(config)

    def forget_unwanted(self) -> int:
        """Drop the recorded paths the config in force no longer wants (excluded, ignored
        by a new include, ...) and those that are untracked files git ignores now (a row
        left `success` while its file came back under an ignore rule, the daemon down):
        they are never committed and `status` stops counting them."""
        index = self.repo.index
        index.read(False)  # libgit2 keeps the index it read first; ours is written apart
        recorded = [row.path for row in self._queue.rows(include_success=True)]
        unwanted = [p for p in recorded if not self.filter.wants(p) or _ignored(self.repo, index, p)]
        if unwanted:
            self.log.info(
                "paths_dropped",
                paths=len(unwanted),
                reason="the configuration no longer wants them, or git ignores them (untracked)",
            )
        return self._queue.forget(unwanted)


def _ignored(repo: pygit2.Repository, index: pygit2.Index, path: str) -> bool:
    """`path` is not in the index and git's ignore rules ignore it."""
    try:
        if path in index:
            return False
    except UnicodeEncodeError:  # a name that is not UTF-8: keep its row
        return False
    return path_is_ignored(repo, path)
