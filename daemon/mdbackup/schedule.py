"""When things are due: the batch deadline and the named pauses between retries.

Pure functions and constants; `Backup` computes every deadline from them, once.
"""

from __future__ import annotations

from dataclasses import dataclass

from mdbackup.state.queue import Window

PATH_RETRY_MIN, PATH_RETRY_MAX = 5.0, 900.0
"""Seconds: a failed path is retried after PATH_RETRY_MIN, doubling up to PATH_RETRY_MAX."""
BUSY_RETRY_MIN, BUSY_RETRY_MAX = 0.5, 30.0
"""Seconds between commit tries while git is busy (a lock held, a merge in progress)."""
DEGRADED_RESCAN = 60.0
"""Seconds between rescans while the watcher cannot see every folder."""


def batch_deadline(window: Window, *, debounce: float, max_delay: float) -> float | None:
    """When the pending paths are due (epoch seconds), or None when none is pending.

    Due after `debounce` seconds of quiet, or when the oldest change is `max_delay`
    old, whichever comes first; failed paths are due at their own retry time.
    """
    candidates: list[float] = []
    if window.pending and window.newest_event_at is not None:
        quiet = window.newest_event_at + debounce
        oldest = window.oldest_change_at if window.oldest_change_at is not None else quiet
        candidates.append(min(quiet, oldest + max_delay))
    if window.next_retry_at is not None:
        candidates.append(window.next_retry_at)
    return min(candidates) if candidates else None


def rescan_interval(configured: float, *, degraded: bool) -> float | None:
    """Seconds to the next periodic rescan (None: off): `watch.rescan_interval`, at most
    DEGRADED_RESCAN while the watcher cannot see every folder (then never off)."""
    if degraded:
        return min(configured, DEGRADED_RESCAN) if configured > 0 else DEGRADED_RESCAN
    return configured if configured > 0 else None


@dataclass
class BusyBackoff:
    """While git is busy, commit tries wait a growing pause instead of spinning: BUSY_RETRY_MIN,
    doubling up to BUSY_RETRY_MAX; the first try that is not busy resets it."""

    until: float | None = None
    _wait: float = BUSY_RETRY_MIN

    def note(self, busy: str | None, *, now: float) -> None:
        """Record a try's outcome at `now`: `busy` is why git was busy, or None."""
        if busy is None:
            self.until, self._wait = None, BUSY_RETRY_MIN
            return
        self.until = now + self._wait
        self._wait = min(BUSY_RETRY_MAX, self._wait * 2)
