"""mdbackup.schedule.batch_deadline: when the pending paths are due."""

from __future__ import annotations

from mdbackup.schedule import PATH_RETRY_MAX, PATH_RETRY_MIN, batch_deadline
from mdbackup.state.queue import Window

DEBOUNCE, MAX_DELAY = 2.0, 10.0


def deadline(window: Window) -> float | None:
    return batch_deadline(window, debounce=DEBOUNCE, max_delay=MAX_DELAY)


def test_nothing_pending_and_no_retry_is_never_due() -> None:
    nothing = Window(pending=0, newest_event_at=None, oldest_change_at=None, next_retry_at=None)
    assert deadline(nothing) is None


def test_due_after_the_debounce_of_quiet() -> None:
    window = Window(pending=2, newest_event_at=100.0, oldest_change_at=99.0, next_retry_at=None)
    assert deadline(window) == 102.0


def test_a_change_that_keeps_changing_is_due_max_delay_after_the_oldest_change() -> None:
    window = Window(pending=1, newest_event_at=109.5, oldest_change_at=100.0, next_retry_at=None)
    assert deadline(window) == 110.0  # not 111.5: max_delay wins


def test_without_an_oldest_change_the_debounce_decides() -> None:
    window = Window(pending=1, newest_event_at=100.0, oldest_change_at=None, next_retry_at=None)
    assert deadline(window) == 102.0


def test_a_failed_path_is_due_at_its_retry_time() -> None:
    window = Window(pending=0, newest_event_at=None, oldest_change_at=None, next_retry_at=150.0)
    assert deadline(window) == 150.0


def test_the_earliest_of_pending_and_retry_wins() -> None:
    soon_retry = Window(pending=1, newest_event_at=100.0, oldest_change_at=100.0, next_retry_at=101.0)
    assert deadline(soon_retry) == 101.0
    late_retry = Window(pending=1, newest_event_at=100.0, oldest_change_at=100.0, next_retry_at=500.0)
    assert deadline(late_retry) == 102.0


def test_pending_without_an_event_time_waits_only_for_retries() -> None:
    window = Window(pending=3, newest_event_at=None, oldest_change_at=None, next_retry_at=None)
    assert deadline(window) is None


def test_the_named_retry_pauses_are_ordered() -> None:
    assert 0 < PATH_RETRY_MIN < PATH_RETRY_MAX


def test_rescan_interval_is_capped_while_degraded_and_never_off_then() -> None:
    from mdbackup.schedule import DEGRADED_RESCAN, rescan_interval

    assert rescan_interval(3600, degraded=False) == 3600
    assert rescan_interval(0, degraded=False) is None
    assert rescan_interval(3600, degraded=True) == DEGRADED_RESCAN
    assert rescan_interval(0, degraded=True) == DEGRADED_RESCAN
    assert rescan_interval(10, degraded=True) == 10
