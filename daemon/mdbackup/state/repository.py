"""The repository's own state: the paused flag, the push state and the sync state.

Push state is kept apart from the paths: `disabled`, `success` (the remote has the
local head), `pending` (local is ahead, a push is due), `failed` (`last_error`,
`next_attempt_at`; retried with backoff). Each change of it is one typed method.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mdbackup.state.db import StateDB
from mdbackup.statuses import PushStatus, SyncStatus


@dataclass(frozen=True)
class PushState:
    status: PushStatus
    last_push_at: float | None
    last_error: str | None
    next_attempt_at: float | None
    attempts: int
    ahead: int | None
    enabled: bool | None = None  # as the last pushing process had it (None: none recorded)
    remote: str | None = None
    branch: str | None = None
    head: str | None = None  # the local head the remote was last known to have
    recorded_at: float | None = None


@dataclass(frozen=True)
class SyncState:
    """The sync as the process that last fetched recorded it (`enabled` None: nothing
    recorded yet). `conflicts`: the conflict copies the last merge wrote."""

    status: SyncStatus
    enabled: bool | None
    remote: str | None
    branch: str | None
    last_fetch_at: float | None
    conflicts: tuple[str, ...]
    blocked_by: str | None
    last_error: str | None
    recorded_at: float | None


@dataclass(frozen=True)
class PushTarget:
    """What a pushing process uses: push on/off, the remote and the remote branch."""

    enabled: bool
    remote: str
    branch: str | None


@dataclass(frozen=True)
class DaemonConfig:
    """A running daemon's effective config, as it recorded it at start or reload."""

    pid: int
    source: str | None
    store: str
    push_enabled: bool
    recorded_at: float


class RepositoryState:
    """The single `repository` row of the state database `state`."""

    def __init__(self, state: StateDB) -> None:
        self._state = state
        self._R: Any = state.RepoRecord

    def _update(self, **columns: object) -> None:
        with self._state.immediate():
            self._R.update(**columns).where(self._R.id == 1).execute()

    # -- paused ----------------------------------------------------------------------

    def paused(self) -> bool:
        return bool(self._R.get_by_id(1).paused)

    def set_paused(self, paused: bool) -> None:
        self._update(paused=paused)

    # -- push ------------------------------------------------------------------------

    def push_state(self) -> PushState:
        r = self._R.get_by_id(1)
        return PushState(
            status=PushStatus(r.push_status),
            last_push_at=r.push_last_push_at,
            last_error=r.push_last_error,
            next_attempt_at=r.push_next_attempt_at,
            attempts=r.push_attempts,
            ahead=r.push_ahead,
            enabled=None if r.push_enabled is None else bool(r.push_enabled),
            remote=r.push_remote,
            branch=r.push_branch,
            head=r.push_head,
            recorded_at=r.push_recorded_at,
        )

    def record_push_target(self, target: PushTarget, *, at: float) -> None:
        """The pushing process uses `target` (recorded whenever it pushes or decides not to)."""
        self._update(
            push_enabled=target.enabled,
            push_remote=target.remote,
            push_branch=target.branch,
            push_recorded_at=at,
        )

    def record_daemon(self, daemon: DaemonConfig) -> None:
        """A daemon started (or reloaded) with this effective config."""
        self._update(
            daemon_pid=daemon.pid,
            daemon_source=daemon.source,
            daemon_store=daemon.store,
            daemon_push_enabled=daemon.push_enabled,
            daemon_recorded_at=daemon.recorded_at,
        )

    def daemon(self) -> DaemonConfig | None:
        """The effective config the last daemon recorded, or None."""
        r = self._R.get_by_id(1)
        if r.daemon_pid is None or r.daemon_store is None or r.daemon_recorded_at is None:
            return None
        return DaemonConfig(
            pid=r.daemon_pid,
            source=r.daemon_source,
            store=r.daemon_store,
            push_enabled=bool(r.daemon_push_enabled),
            recorded_at=r.daemon_recorded_at,
        )

    def mark_push_disabled(self) -> None:
        """Push is turned off."""
        self._update(push_status=PushStatus.DISABLED.value, push_ahead=None)

    def mark_push_pending(self, *, ahead: int | None) -> None:
        """A commit was made: a push is due, unless the push is failed (it keeps its backoff)."""
        R = self._R
        with self._state.immediate():
            R.update(push_ahead=ahead).where(R.id == 1).execute()
            R.update(push_status=PushStatus.PENDING.value).where(
                (R.id == 1) & (R.push_status != PushStatus.FAILED.value)
            ).execute()

    def mark_pushed(self, *, at: float | None, head: str | None = None) -> None:
        """The remote has the local head `head` (`at`: when a push put it there; None when
        nothing needed pushing)."""
        columns: dict[str, object] = {
            "push_head": head,
            "push_status": PushStatus.SUCCESS.value,
            "push_last_error": None,
            "push_next_attempt_at": None,
            "push_attempts": 0,
            "push_ahead": 0,
        }
        if at is not None:
            columns["push_last_push_at"] = at
        self._update(**columns)

    def mark_push_failed(
        self, *, error: str, attempts: int, next_attempt_at: float, ahead: int | None
    ) -> None:
        """The push failed for the `attempts`-th time in a row; retried at `next_attempt_at`."""
        self._update(
            push_status=PushStatus.FAILED.value,
            push_last_error=error,
            push_attempts=attempts,
            push_next_attempt_at=next_attempt_at,
            push_ahead=ahead,
        )

    def retry_push(self) -> bool:
        """A failed push becomes pending and due now. True when it was failed."""
        R = self._R
        with self._state.immediate():
            return bool(
                R.update(push_status=PushStatus.PENDING.value, push_next_attempt_at=None)
                .where((R.id == 1) & (R.push_status == PushStatus.FAILED.value))
                .execute()
            )

    # -- sync ------------------------------------------------------------------------

    def sync_state(self) -> SyncState:
        r = self._R.get_by_id(1)
        try:
            conflicts = tuple(str(p) for p in json.loads(r.sync_conflicts or "[]"))
        except (ValueError, TypeError):
            conflicts = ()
        return SyncState(
            status=SyncStatus(r.sync_status or SyncStatus.DISABLED.value),
            enabled=None if r.sync_enabled is None else bool(r.sync_enabled),
            remote=r.sync_remote,
            branch=r.sync_branch,
            last_fetch_at=r.sync_last_fetch_at,
            conflicts=conflicts,
            blocked_by=r.sync_blocked_by,
            last_error=r.sync_last_error,
            recorded_at=r.sync_recorded_at,
        )

    def record_sync(
        self,
        *,
        status: SyncStatus,
        enabled: bool,
        remote: str,
        branch: str | None,
        at: float,
        fetched: bool = False,
        conflicts: tuple[str, ...] | None = None,
        blocked_by: str | None = None,
        error: str | None = None,
    ) -> None:
        """The syncing process's state now: `status` with what it uses; `fetched`: a fetch
        succeeded `at`; `conflicts` (None: keep those of the last merge)."""
        columns: dict[str, object] = {
            "sync_status": status.value,
            "sync_enabled": enabled,
            "sync_remote": remote,
            "sync_branch": branch,
            "sync_blocked_by": blocked_by,
            "sync_last_error": error,
            "sync_recorded_at": at,
        }
        if fetched:
            columns["sync_last_fetch_at"] = at
        if conflicts is not None:
            columns["sync_conflicts"] = json.dumps(list(conflicts))
        self._update(**columns)
