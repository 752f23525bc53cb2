"""What `status` reads, and how the state database is opened for each kind of caller.

Orchestration beside `Backup` (which delegates here): opening the state database for
a repository (read-write and owned, or read-only for `status`), and the one-moment
`Snapshot` that `status` renders. Reading never writes: a read-only open creates,
changes and moves aside nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pygit2

from mdbackup.config import Config
from mdbackup.git import history
from mdbackup.git import repo as gitrepo
from mdbackup.pushing import Pusher
from mdbackup.state.db import StateDB, StateMissing, StateOwnedElsewhere
from mdbackup.state.queue import PathQueue, PathRow
from mdbackup.state.repository import DaemonConfig, PushState, PushTarget, RepositoryState, SyncState


@dataclass(frozen=True)
class Snapshot:
    """What `status` shows, read at one moment."""

    paused: bool
    counts: dict[str, int]
    rows: tuple[PathRow, ...]
    last_backup_at: float | None
    head: gitrepo.HeadInfo
    push: PushState
    push_target: PushTarget  # what this process's config would use
    ahead: int | None  # computed from the refs now, for the recorded (else own) remote and branch
    daemon: DaemonConfig | None  # the effective config the last daemon recorded
    sync: SyncState | None = None  # as the process that last fetched recorded it
    sync_enabled: bool = False  # this process's config (when nothing was recorded)
    behind: int | None = None  # remote-tracking commits the local branch lacks, from the refs now
    sync_ahead: int | None = None  # local commits the remote-tracking branch lacks, from the refs now


@dataclass(frozen=True)
class OpenedState:
    """A state database opened for one caller; `note` says why it is an empty stand-in."""

    state: StateDB
    note: str | None = None


def locate(config: Config) -> Path:
    """The git dir of the configured repository (where its lock lives), without opening
    the state database. Raises NotAWorkTree."""
    return gitrepo.git_dir(gitrepo.open_repository(config.repo))


def open_state(git_dir: Path, path: Path, *, read_only: bool, repair: bool) -> OpenedState:
    """The state database at `path` for the repository whose git dir is `git_dir`.

    Read-write: the owner is recorded or checked (StateOwnedElsewhere); without `repair`
    a damaged file raises StateCorrupt instead of being moved aside. Read-only: SQLite
    `mode=ro`; a missing file gives an empty in-memory stand-in with a note, a foreign
    one raises StateOwnedElsewhere, a locked or unreadable one StateUnavailable.
    """
    owner = str(git_dir.resolve())
    if not read_only:
        return OpenedState(StateDB(path, owner=owner, repair=repair))
    try:
        state = StateDB(path, read_only=True)
    except StateMissing as exc:  # nothing recorded yet: an empty state is the truth
        return OpenedState(StateDB(Path(":memory:")), note=str(exc))
    recorded = state.owner()
    if recorded is not None and recorded != owner and Path(recorded).is_dir():
        state.close()
        raise StateOwnedElsewhere(path, owner=owner, other=recorded)
    return OpenedState(state)


def take_snapshot(
    *,
    state: StateDB,
    queue: PathQueue,
    repository: RepositoryState,
    repo: pygit2.Repository,
    pusher: Pusher,
    all_paths: bool,
    sync_enabled: bool = False,
) -> Snapshot:
    """Read what `status` shows in one transaction; `ahead` is counted from the refs
    now, toward the remote and branch the last pushing process recorded (else this
    process's config); `behind`/`sync_ahead` likewise toward the last syncing process's."""
    with state.db.atomic():
        push = repository.push_state()
        paused = repository.paused()
        counts = queue.counts()
        rows = tuple(queue.rows(include_success=all_paths))
        last_backup_at = queue.last_backup_at()
        daemon = repository.daemon()
        sync = repository.sync_state()
    recorded = push.enabled is not None
    target = pusher.target()
    behind, sync_ahead = _sync_counts(
        repo, remote=sync.remote or target.remote, branch=sync.branch or target.branch
    )
    return Snapshot(
        paused=paused,
        counts=counts,
        rows=rows,
        last_backup_at=last_backup_at,
        head=gitrepo.head_info(repo),
        push=push,
        push_target=pusher.target(),
        ahead=pusher.ahead(
            remote=push.remote if recorded else None, branch=push.branch if recorded else None
        ),
        daemon=daemon,
        sync=sync,
        sync_enabled=sync_enabled,
        behind=behind,
        sync_ahead=sync_ahead,
    )


def _sync_counts(
    repo: pygit2.Repository, *, remote: str, branch: str | None
) -> tuple[int | None, int | None]:
    """(behind, ahead) of the local branch against `refs/remotes/<remote>/<branch>`, from the
    refs now; None where it cannot be counted (detached, unborn, never fetched)."""
    local = gitrepo.head_info(repo).branch
    if local is None or branch is None:
        return None, None
    ours = history.ref_commit(repo, f"refs/heads/{local}")
    theirs = history.ref_commit(repo, f"refs/remotes/{remote}/{branch}")
    if theirs is None:
        return None, None
    if ours is None:
        return history.count_commits(repo, theirs, []), 0
    return history.count_commits(repo, theirs, [ours]), history.count_commits(repo, ours, [theirs])


def daemon_config(config: Config, *, pid: int, at: float) -> DaemonConfig:
    """The effective config a daemon records for `status`."""
    return DaemonConfig(
        pid=pid,
        source=str(config.source) if config.source else None,
        store=config.store_prefix or ".",
        push_enabled=config.push.enabled,
        recorded_at=at,
    )
