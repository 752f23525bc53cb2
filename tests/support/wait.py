"""The one bounded poll: wait until a condition holds, fail after a timeout (never a fixed sleep)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """`wait_until` gave up (an AssertionError: a test fails with it unless it expects it)."""


def wait_until(
    predicate: Callable[[], T],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str | Callable[[], str] = "condition",
) -> T:
    """Poll until `predicate()` is truthy and return that value; raise WaitTimeout after
    `timeout` seconds. `message` names what was awaited; a callable is asked only on failure
    (for details known then, such as a log)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            what = message() if callable(message) else message
            raise WaitTimeout(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
