"""What the commands read and change through `Backup`: status, the systemd status line,
`check`'s facts, pause and retry.

A mixin of `Backup` (the only caller of the state database and git/), kept apart
because none of it is on the path of a save.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pygit2

from mdbackup.clock import Clock
from mdbackup.git import repo as gitrepo
from mdbackup.pushing import Pusher, RemoteCheck
from mdbackup.state.queue import PathQueue, PathRow
from mdbackup.state.repository import PushState, RepositoryState


@dataclass(frozen=True)
class Snapshot:
    """What `status` shows, read at one moment."""

    paused: bool
    counts: dict[str, int]
    rows: tuple[PathRow, ...]
    last_backup_at: float | None
    head: gitrepo.HeadInfo
    push: PushState


@dataclass(frozen=True)
class RepositoryFacts:
    """What `check` says about the repository."""

    head: gitrepo.HeadInfo
    busy: str | None
    hooks: tuple[str, ...]


class Reporting:
    """Status and control of one repository's backup (mixed into `Backup`, which sets these)."""

    repo: pygit2.Repository
    _queue: PathQueue
    _repository: RepositoryState
    _pusher: Pusher
    _clock: Clock

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
        """What `status` shows."""
        return Snapshot(
            paused=self._repository.paused(),
            counts=self._queue.counts(),
            rows=tuple(self._queue.rows(include_success=all_paths)),
            last_backup_at=self._queue.last_backup_at(),
            head=gitrepo.head_info(self.repo),
            push=self._repository.push_state(),
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
