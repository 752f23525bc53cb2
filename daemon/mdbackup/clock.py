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
