"""When to fetch the remote and bring its commits in, and the sync state it leaves.

Owned and called by `Backup` only. With `[sync] enabled`, the remote and branch of
`[push]` are fetched (`git/fetch.py`, the push's credentials and host checks) at start,
every `sync.interval` seconds while idle, before a push and when a push is refused; then
the branch fast-forwards or gets a merge commit (`git/merge.py`), and the working tree
and index follow (`git/update.py`). Pending changes are committed first (through the
`commit_first` callback `Backup` gives): a store file the user changed is never
overwritten, it is committed and merged. A change outside the store where the remote
changed too blocks the sync (`blocked`) and nothing is written; backups go on.

The state (`disabled`, `idle`, `behind`, `merging`, `blocked`, `failed`) is recorded with
what this process uses, so `status` shows the syncing process's truth.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import pygit2

from mdbackup import logs
from mdbackup.clock import Clock, SteadyClock, backoff
from mdbackup.config import Config
from mdbackup.crashpoints import Step
from mdbackup.git import branch, fetch, merge, update, workfiles
from mdbackup.git.index_lock import IndexFiles
from mdbackup.git.repo import git_dir, head_info
from mdbackup.patterns import StoreFilter
from mdbackup.pushing import Pusher, credentials
from mdbackup.state.repository import RepositoryState
from mdbackup.statuses import PushStatus, SyncStatus


class _Pass(Protocol):
    """What the syncer reads of a commit pass (`backup.PassReport`)."""

    @property
    def commit_id(self) -> str | None: ...


_ATTEMPTS = 4
"""Plans tried in one sync: each commit of the user's changes first means planning again."""
BUSY_RETRY = 5.0
"""Seconds before trying again when git was busy (index.lock held, an operation running)."""


@dataclass(frozen=True)
class SyncReport:
    """What one sync did: `moved` (the branch went to a synced commit), the resulting
    status, and the conflict copies written."""

    status: SyncStatus
    moved: bool = False
    conflicts: tuple[str, ...] = ()


class Syncer:
    """Fetches and merges one repository's remote branch as configured; records the state."""

    def __init__(
        self,
        *,
        config: Config,
        repo: pygit2.Repository,
        state: RepositoryState,
        clock: Clock,
        step: Step,
        is_store: Callable[[str], bool],
        commit_first: Callable[[Sequence[str]], bool],
        signature: Callable[[], pygit2.Signature],
    ) -> None:
        """`commit_first(paths)` records `paths` (store paths the user changed) and commits
        everything pending now; True when it made a commit. `signature()`: the merge's author."""
        self._config = config
        self._sync = config.sync
        self._repo = repo
        self._state = state
        self._clock = clock
        self._step = step
        self._is_store = is_store
        self._commit_first = commit_first
        self._signature = signature
        self._files = IndexFiles(git_dir(repo))
        self._next_at: float | None = None
        self._fetched_at: float | None = None
        self._failures = 0
        self.log = logs.get()

    @property
    def enabled(self) -> bool:
        return self._sync.enabled

    def _branches(self) -> tuple[str | None, str | None]:
        local = head_info(self._repo).branch
        return local, (self._config.push.branch or local)

    def deadline(self) -> float | None:
        """When the next fetch is due (the clock's wall seconds); None when sync is off."""
        if not self.enabled:
            return None
        return self._clock.wall() if self._next_at is None else self._next_at

    def start(self) -> SyncReport:
        """Start-up: remove the temporary files a killed sync left, then sync."""
        removed = workfiles.clear_temp(git_dir(self._repo))
        if removed:
            self.log.warning("sync_temp_removed", files=removed, detail="left by an interrupted sync")
        return self.sync(reason="start")

    def around_push(self, push: Callable[[bool], bool]) -> bool:
        """Push through `push(force)`; with sync on, fetch and merge first when something is
        to be pushed, and once more (then push again at once) when the push is refused."""
        due = self._state.push_state().status in (PushStatus.PENDING, PushStatus.FAILED)
        if self.enabled and due and not self._just_fetched():
            self.sync(reason="before push")
        if push(False):
            return True
        if self.enabled and self.sync(reason="push refused").moved:
            return push(True)
        return False

    def _just_fetched(self) -> bool:
        """A fetch succeeded less than a second ago (start-up: the sync right before the push)."""
        return self._fetched_at is not None and self._clock.wall() - self._fetched_at < 1.0

    def _record(
        self,
        status: SyncStatus,
        *,
        fetched: bool = False,
        conflicts: tuple[str, ...] | None = None,
        blocked_by: str | None = None,
        error: str | None = None,
    ) -> None:
        """Record `status` with what this process uses (see `RepositoryState.record_sync`)."""
        self._state.record_sync(
            status=status,
            enabled=self.enabled,
            remote=self._config.push.remote,
            branch=self._branches()[1],
            at=self._clock.wall(),
            fetched=fetched,
            conflicts=conflicts,
            blocked_by=blocked_by,
            error=error,
        )

    def sync(self, *, reason: str) -> SyncReport:
        """Fetch, then fast-forward or merge. Never raises for a network or git problem:
        the state says `failed`, retried with backoff up to `sync.interval`."""
        if not self.enabled:
            if self._state.sync_state().status is not SyncStatus.DISABLED:
                self._record(SyncStatus.DISABLED)
            return SyncReport(SyncStatus.DISABLED)
        now = self._clock.wall()
        self._next_at = now + self._sync.interval
        local, remote_branch = self._branches()
        if local is None or remote_branch is None:
            return self._failed("HEAD is detached (not on a branch); nothing to sync")
        try:
            return self._fetch_and_bring_in(remote_branch, reason=reason)
        except (pygit2.GitError, OSError) as exc:  # the repository cannot be written, disk full, ...
            return self._failed(f"sync failed: {exc}")

    def _fetch_and_bring_in(self, remote_branch: str, *, reason: str) -> SyncReport:
        result = fetch.fetch_branch(
            self._repo,
            remote_name=self._config.push.remote,
            remote_branch=remote_branch,
            credentials=credentials(self._config, repo=self._repo),
        )
        if not result.ok:
            return self._failed(result.error or "fetch failed", kind=result.kind)
        self._failures = 0
        self._fetched_at = self._clock.wall()
        self._step("sync_fetched")
        self.log.debug("sync_fetched", reason=reason, received=result.received, elapsed_ms=result.elapsed_ms)
        if result.remote_oid is None:  # the remote has no such branch yet: the push creates it
            self._record(SyncStatus.IDLE, fetched=True)
            return SyncReport(SyncStatus.IDLE)
        return self._bring_in(pygit2.Oid(hex=result.remote_oid), reason=reason)

    def _bring_in(self, theirs: pygit2.Oid, *, reason: str) -> SyncReport:
        """Fast-forward or merge to `theirs`, committing the user's changes first."""
        for attempt in range(_ATTEMPTS):
            try:
                ref_name, head = branch.checked_out(self._repo)
            except branch.Detached as exc:
                return self._failed(str(exc))
            ours = None if head is None else head.id
            plan = merge.plan_merge(
                self._repo,
                ours=ours,
                theirs=theirs,
                label=str(theirs)[:7],
                stamp=merge.stamp(self._clock.wall()),
            )
            if plan.kind == merge.UP_TO_DATE:
                self._record(SyncStatus.IDLE, fetched=True)
                return SyncReport(SyncStatus.IDLE)
            if self._state.paused():  # paused: nothing is committed, merges neither
                self._record(SyncStatus.BEHIND, fetched=True)
                return SyncReport(SyncStatus.BEHIND)
            if self._commit_first(()):
                continue  # pending changes became a commit: plan again on top of it
            self._record(SyncStatus.MERGING, fetched=True)
            new = merge.commit_merge(
                self._repo,
                plan,
                message=self._message(plan),
                author=self._signature(),
                committer=self._signature(),
            )
            done = update.update_to(
                self._repo,
                files=self._files,
                ref_name=ref_name,
                old=ours,
                new=new,
                is_store=self._is_store,
                step=self._step,
                dirty_is_raced=attempt > 0,  # saved again since it was committed: the save wins
            )
            if done.done:
                return self._merged(plan, new, done, reason=reason)
            if done.dirty:
                self.log.info("sync_commit_first", paths=len(done.dirty), detail="changed here and there")
                self._commit_first(done.dirty)
                continue
            if done.blocked_by is not None:
                return self._blocked(done.blocked_by)
            if done.busy is not None:
                self._next_at = self._clock.wall() + min(BUSY_RETRY, self._sync.interval)
                self.log.info("sync_deferred", reason=done.busy)
                self._record(SyncStatus.BEHIND, fetched=True, error=None)
                return SyncReport(SyncStatus.BEHIND)
        self._record(SyncStatus.BEHIND, fetched=True)
        return SyncReport(SyncStatus.BEHIND)

    def _message(self, plan: merge.MergePlan) -> str:
        remote, branch_name = self._config.push.remote, self._branches()[1]
        copies = [c.copy for c in plan.conflicts if c.copy]
        text = f"sync: merge {remote}/{branch_name} ({socket.gethostname()})"
        if copies:
            text += "\n\nConflicts kept as copies:\n" + "".join(f"  {c}\n" for c in copies)
        return text

    def _merged(
        self, plan: merge.MergePlan, new: pygit2.Oid, done: update.UpdateResult, *, reason: str
    ) -> SyncReport:
        copies = tuple(c.copy for c in plan.conflicts if c.copy)
        for conflict in plan.conflicts:  # path, kind, kept ("ours"/"theirs"), copy
            self.log.warning("sync_conflict", **dataclasses.asdict(conflict))
        if done.raced:  # saved while we wrote: committed next, on top (the remote's version is in history)
            self.log.info("sync_save_kept", paths=list(done.raced))
            self._commit_first([p for p in done.raced if self._is_store(p)])
        self.log.info(
            "sync",
            kind=plan.kind,
            reason=reason,
            commit=str(new),
            behind=plan.behind,
            files=len(done.written),
            conflicts=len(copies),
        )
        if plan.kind == merge.MERGE:
            self._record(SyncStatus.IDLE, fetched=True, conflicts=copies)
            if self._config.push.enabled:  # the merge is what the remote lacks: push it now
                self._state.mark_push_pending(ahead=None)
                self._state.retry_push()  # a push refused as diverged waits out no backoff
        else:
            self._record(SyncStatus.IDLE, fetched=True)
        return SyncReport(SyncStatus.IDLE, moved=True, conflicts=copies)

    def _blocked(self, path: str) -> SyncReport:
        state = self._state.sync_state()
        if state.status is not SyncStatus.BLOCKED or state.blocked_by != path:
            self.log.warning(
                "sync_blocked",
                path=path,
                detail="the remote changed a file mdbackup may not write (outside the store and changed "
                "by you, or under a filter driver such as git-crypt or LFS): commit, undo or merge by hand",
            )
        self._record(SyncStatus.BLOCKED, fetched=True, blocked_by=path)
        return SyncReport(SyncStatus.BLOCKED)

    def _failed(self, error: str, *, kind: str | None = None) -> SyncReport:
        self._failures += 1
        retry_in = backoff(self._failures, minimum=min(5.0, self._sync.interval), maximum=self._sync.interval)
        self._next_at = self._clock.wall() + retry_in
        self._record(SyncStatus.FAILED, error=logs.scrub(error))
        self.log.warning("sync_failed", error=error, kind=kind, attempts=self._failures, retry_in_s=retry_in)
        return SyncReport(SyncStatus.FAILED)

    def check(self) -> tuple[bool, str]:
        """For `check`: fetch (no ref of ours moves) and say whether a merge would be clean,
        keep conflict copies, or be blocked; changes nothing else. (ok, one line)."""
        remote = self._config.push.remote
        local, remote_branch = self._branches()
        if local is None or remote_branch is None:
            return False, "HEAD is detached (not on a branch); nothing to sync"
        creds = credentials(self._config, repo=self._repo)
        result = fetch.peek_branch(
            self._repo, remote_name=remote, remote_branch=remote_branch, credentials=creds
        )
        if not result.ok:
            return False, logs.scrub(result.error or "fetch failed")
        if result.remote_oid is None:
            return True, f"ok ({remote}/{remote_branch} not there yet: the first push creates it)"
        head = branch.checked_out(self._repo)[1]
        plan = merge.plan_merge(
            self._repo,
            ours=None if head is None else head.id,
            theirs=pygit2.Oid(hex=result.remote_oid),
            label=result.remote_oid[:7],
            stamp=merge.stamp(self._clock.wall()),
        )
        counts = f"{plan.behind} behind, {plan.ahead} ahead"
        if plan.kind == merge.UP_TO_DATE or plan.tree is None:
            return True, f"ok ({remote}/{remote_branch}: up to date, {plan.ahead} ahead)"
        changes = update.changes_between(self._repo, None if head is None else head.tree_id, plan.tree)
        index = pygit2.Repository(self._repo.path).index  # read only: our index copy is the daemon's
        _dirty, blocked = update.preflight(self._repo, changes, is_store=self._is_store, index=index)
        if blocked is not None:
            return False, (
                f"blocked ({counts}): the remote changed {blocked}, outside the store, and so did you; "
                "commit or undo your change there and the merge goes on"
            )
        copies = [c.path for c in plan.conflicts if c.copy]
        if copies:
            return True, f"ok ({counts}); a merge would keep both versions of: {', '.join(copies)}"
        return True, f"ok ({counts}); a {plan.kind} would be clean"


class Syncing:
    """`Backup`'s side of the sync (a mixin, beside `Reporting`): builds its `Syncer`, and
    runs the push and the commits the syncer asks for."""

    repo: pygit2.Repository
    config: Config
    filter: StoreFilter
    _repository: RepositoryState
    _pusher: Pusher
    _syncer: Syncer
    _clock: SteadyClock
    _step: Step

    def record(self, paths: Iterable[str]) -> int:
        raise NotImplementedError  # Backup's

    def commit_now(self, *, failed_too: bool = False) -> _Pass:
        raise NotImplementedError  # Backup's

    def _signature(self) -> pygit2.Signature:
        raise NotImplementedError  # Backup's

    def _make_syncer(self, config: Config) -> Syncer:
        return Syncer(
            config=config,
            repo=self.repo,
            state=self._repository,
            clock=self._clock,
            step=self._step,
            is_store=self.filter.wants,
            commit_first=self._commit_first,
            signature=self._signature,
        )

    def _nothing_due(self) -> bool:
        """No push and no fetch scheduled."""
        return self._pusher.deadline() is None and self._syncer.deadline() is None

    def _sync_if_due(self) -> float | None:
        """Fetch and merge when due; when the next fetch is due (None: sync is off)."""
        due = self._syncer.deadline()
        if due is not None and due <= self._clock.wall():
            self._syncer.sync(reason="interval")
        return self._syncer.deadline()

    def _start_and_push(self) -> bool:
        """Start-up: sync (fetch, merge), then push; True when the remote has our head."""
        self._syncer.start()
        return self._push(force=True)

    def _push(self, *, force: bool = False) -> bool:
        """Push when due (`force`: now); with sync on, fetch and merge around it."""
        return self._syncer.around_push(lambda again: self._pusher.push_if_due(force=force or again))

    def _commit_first(self, paths: Sequence[str]) -> bool:
        """For the syncer: record `paths` and commit everything pending now; True when a
        commit was made."""
        if paths:
            self.record(paths)
        return self.commit_now().commit_id is not None
