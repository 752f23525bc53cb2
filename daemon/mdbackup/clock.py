"""Time: the clock the daemon schedules with, and the backoff between retries.

Everything that decides *when* asks a `Clock`, so tests can drive scheduling with a
fake one. Times are epoch seconds (`wall`) for what is stored and shown, and
`monotonic` seconds for measuring intervals inside one process.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """A source of time."""

    def wall(self) -> float:
        """Epoch seconds (what is stored in the state database and shown)."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never goes back (for intervals)."""
        ...


class SystemClock:
    """The real clocks: `time.time` and `time.monotonic`."""

    def wall(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


SYSTEM_CLOCK: Clock = SystemClock()


def backoff(attempts: int, *, minimum: float, maximum: float) -> float:
    """Seconds to wait after the `attempts`-th consecutive failure (1, 2, ...):
    `minimum`, doubling each time, never more than `maximum`."""
    exponent = min(max(0, attempts - 1), 64)  # beyond 2**64 every pause is the maximum anyway
    return float(min(maximum, minimum * 2.0**exponent))


class Heartbeat:
    """The worker's liveness: `beat` at every loop and every step of a long operation,
    `idle` while it sleeps with nothing to do. `alive` is what the systemd watchdog ping
    asks: a worker asleep on purpose is alive; a busy one is alive only while it beats."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._last = clock.monotonic()
        self._idle = False

    def beat(self, _step: str = "") -> None:
        """Progress was made (usable as a crashpoints `Step` callback)."""
        self._last = self._clock.monotonic()
        self._idle = False

    def idle(self) -> None:
        """About to sleep with nothing due: alive until the next `beat`."""
        self._last = self._clock.monotonic()
        self._idle = True

    def alive(self, *, within: float) -> bool:
        """Asleep on purpose, or beat during the last `within` seconds."""
        return self._idle or self._clock.monotonic() - self._last <= within


class SteadyClock:
    """Scheduling time that a wall-clock step cannot fool.

    `wall` is the wall time at the last `reanchor` plus the monotonic time since: epoch
    seconds, comparable with the times stored in the state database, but moving only with
    the monotonic clock. Re-anchor when nothing scheduled is pending, so what is stored and
    shown follows the real wall clock again after a step.
    """

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._wall0 = clock.wall()
        self._mono0 = clock.monotonic()

    def reanchor(self) -> None:
        self._wall0 = self._clock.wall()
        self._mono0 = self._clock.monotonic()

    def wall(self) -> float:
        return self._wall0 + (self._clock.monotonic() - self._mono0)

    def monotonic(self) -> float:
        return self._clock.monotonic()

    def wall_at(self, at: float | None) -> float:
        """`wall()` at the monotonic instant `at` (None: now), taken at most a second back
        (an arrival time stamped just before it is handed over)."""
        if at is None:
            return self.wall()
        return self.wall() - min(max(0.0, self._clock.monotonic() - at), 1.0)

    def to_monotonic(self, at: float) -> float:
        """The monotonic time at which `wall()` reaches `at`."""
        return at - self._wall0 + self._mono0
