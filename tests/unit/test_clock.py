"""mdbackup.clock: the backoff between retries, and the real clocks."""

from __future__ import annotations

import time

import pytest

from mdbackup.clock import SYSTEM_CLOCK, SystemClock, backoff


def test_backoff_starts_at_the_minimum_and_doubles() -> None:
    assert [backoff(n, minimum=5, maximum=900) for n in (1, 2, 3, 4)] == [5.0, 10.0, 20.0, 40.0]


def test_backoff_never_exceeds_the_maximum() -> None:
    assert backoff(8, minimum=5, maximum=900) == 640.0
    assert backoff(9, minimum=5, maximum=900) == 900.0
    assert backoff(1024, minimum=5, maximum=900) == 900.0


def test_backoff_stays_at_the_maximum_however_many_failures() -> None:
    """A push failing for weeks counts thousands of attempts: 2.0 ** 1024 once overflowed."""
    assert backoff(1025, minimum=5, maximum=900) == 900.0
    assert backoff(10**9, minimum=5, maximum=900) == 900.0


@pytest.mark.parametrize("attempts", [0, -3])
def test_backoff_before_any_failure_is_the_minimum(attempts: int) -> None:
    assert backoff(attempts, minimum=0.5, maximum=30) == 0.5


def test_backoff_is_a_float() -> None:
    assert isinstance(backoff(1, minimum=1, maximum=2), float)


def test_system_clock_reads_the_real_clocks() -> None:
    clock = SystemClock()
    before = time.time()
    wall = clock.wall()
    assert before <= wall <= time.time()
    first = clock.monotonic()
    time.sleep(0.01)
    assert clock.monotonic() - first >= 0.01


def test_the_default_clock_is_the_system_clock() -> None:
    assert isinstance(SYSTEM_CLOCK, SystemClock)


def test_heartbeat_is_alive_while_beating_or_idle_and_not_when_stuck() -> None:
    from mdbackup.clock import Heartbeat
    from tests.support.backup import FakeClock

    clock = FakeClock()
    heart = Heartbeat(clock)
    heart.beat("queued")
    clock.now += 5
    assert heart.alive(within=10)
    clock.now += 6
    assert not heart.alive(within=10)  # busy and silent for 11 s: stuck
    heart.idle()
    clock.now += 1000
    assert heart.alive(within=10)  # asleep on purpose
    heart.beat()
    clock.now += 11
    assert not heart.alive(within=10)


def test_steady_clock_ignores_wall_steps_until_reanchored() -> None:
    from mdbackup.clock import SteadyClock
    from tests.support.backup import FakeClock

    clock = FakeClock(wall=1000.0)
    steady = SteadyClock(clock)
    clock.now += 5
    clock.step_wall(-3600)
    assert steady.wall() == 1005.0
    assert steady.to_monotonic(1010.0) == clock.monotonic() + 5
    steady.reanchor()
    assert steady.wall() == clock.wall()


def test_wall_at_gives_the_wall_time_of_a_recent_monotonic_instant() -> None:
    from mdbackup.clock import SteadyClock
    from tests.support.backup import FakeClock

    fake = FakeClock()
    steady = SteadyClock(fake)
    arrived = fake.monotonic()
    fake.now += 0.25
    assert steady.wall_at(arrived) == steady.wall() - 0.25
    assert steady.wall_at(arrived - 60) == steady.wall() - 1.0  # never more than a second back
    assert steady.wall_at(fake.monotonic() + 5) == steady.wall()  # never ahead
