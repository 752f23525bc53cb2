"""The repository's own state: the paused flag and the push state.

Push state is kept apart from the paths: `disabled`, `success` (the remote has the
local head), `pending` (local is ahead, a push is due), `failed` (`last_error`,
`next_attempt_at`; retried with backoff). Each change of it is one typed method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mdbackup.state.db import StateDB
from mdbackup.statuses import PushStatus


@dataclass(frozen=True)
class PushState:
    status: PushStatus
    last_push_at: float | None
    last_error: str | None
    next_attempt_at: float | None
    attempts: int
    ahead: int | None


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

    def mark_pushed(self, *, at: float | None) -> None:
        """The remote has the local head (`at`: when a push put it there; None when nothing
        needed pushing)."""
        columns: dict[str, object] = {
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
