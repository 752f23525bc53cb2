"""mdbackup.inbox.Inbox: the hand-over from the watcher's thread to the worker's."""

from __future__ import annotations

import threading
import time

from mdbackup.inbox import Drained, Inbox


def test_wait_returns_when_woken_from_another_thread() -> None:
    inbox = Inbox()
    returned = threading.Event()

    def worker() -> None:
        inbox.wait(timeout=30)
        returned.set()

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert not returned.wait(0.1)  # nothing arrived: it sleeps
        started = time.monotonic()
        inbox.add_path("notes/a.md")
        assert returned.wait(5), "wait() did not return when a path arrived"
        assert time.monotonic() - started < 5
    finally:
        inbox.wake()
        thread.join(timeout=5)
    assert inbox.drain().paths == {"notes/a.md"}


def test_a_wake_before_the_wait_is_not_lost() -> None:
    inbox = Inbox()
    inbox.wake()
    started = time.monotonic()
    inbox.wait(timeout=30)
    assert time.monotonic() - started < 1
    # and it counts once: the next wait sleeps until its timeout
    started = time.monotonic()
    inbox.wait(timeout=0.05)
    assert time.monotonic() - started >= 0.04


def test_wait_returns_after_its_timeout_when_nothing_comes() -> None:
    started = time.monotonic()
    Inbox().wait(timeout=0.05)
    assert 0.04 <= time.monotonic() - started < 5


def test_drain_hands_over_everything_and_empties_the_inbox() -> None:
    inbox = Inbox()
    inbox.add_path("notes/a.md")
    inbox.add_path("notes/a.md")
    inbox.add_path("notes/b.md")
    inbox.add_folder("notes/sub")
    drained = inbox.drain()
    assert drained.paths == {"notes/a.md", "notes/b.md"}
    assert drained.folders == {"notes/sub"}
    assert inbox.drain() == Drained()


def test_the_first_rescan_reason_is_kept_and_rewatch_sticks() -> None:
    inbox = Inbox()
    inbox.request_rescan("overflow", rewatch=True)
    inbox.request_rescan("signal")
    drained = inbox.drain()
    assert drained.rescan == "overflow"
    assert drained.rewatch is True
    inbox.request_rescan("signal")
    assert (inbox.drain().rescan, Drained().rewatch) == ("signal", False)


def test_put_back_merges_with_what_arrived_meanwhile() -> None:
    from mdbackup.inbox import Drained, Inbox

    inbox = Inbox()
    inbox.add_path("notes/a.md")
    drained = inbox.drain()
    inbox.add_path("notes/b.md")
    inbox.put_back(Drained(paths=drained.paths, folders={"notes/x"}, rescan="why"))
    again = inbox.drain()
    assert (
        again.paths == {"notes/a.md", "notes/b.md"} and again.folders == {"notes/x"} and again.rescan == "why"
    )
    inbox.wait(0)  # woken by the put-back: returns at once


def test_topmost_keeps_only_folders_no_other_one_holds() -> None:
    from mdbackup.inbox import topmost

    assert topmost({"notes/a/b", "notes/a", "notes/ab", "notes/c/d"}) == ["notes/a", "notes/ab", "notes/c/d"]
    assert topmost({"", "notes/a"}) == [""]


def test_wait_says_whether_it_was_woken() -> None:
    inbox = Inbox()
    assert inbox.wait(timeout=0.01) is False
    inbox.add_path("notes/a.md")
    assert inbox.wait(timeout=30) is True


def test_a_path_carries_when_it_arrived_and_put_back_keeps_the_newest() -> None:
    """Why: the worker lets a save's events gather before taking them in; the debounce must
    still run from when the change arrived, not from when it was taken in."""
    now = [100.0]
    inbox = Inbox(now=lambda: now[0])
    assert inbox.drain().newest_at is None
    inbox.add_path("notes/a.md")
    now[0] = 101.5
    inbox.add_path("notes/b.md")
    drained = inbox.drain()
    assert drained.newest_at == 101.5
    now[0] = 102.0
    inbox.add_folder("notes/sub")  # a folder is scanned when taken in: no arrival time
    inbox.put_back(drained)
    assert inbox.drain().newest_at == 101.5
