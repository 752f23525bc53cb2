"""The named steps of a batch, and a step callback that can die at one of them.

The steps are reached through a `Step` callback handed to the code that does the
work (`Backup`, the git layer); by default it does nothing. The `PROGRESS` points are
reached through the same callback, many times, inside a long scan or push. FOR TESTS ONLY: when
the environment variable `MDBACKUP_CRASH_AT` is `STEP` or `STEP:N`,
`from_environ` gives a callback that kills the process with SIGKILL the first (or
N-th) time it reaches that step, the way a power cut or `kill -9` would; when
`MDBACKUP_HANG_AT` is `STEP` or `STEP:N`, the callback blocks for ever there instead
(a worker stuck inside a commit, for the liveness tests).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping

Step = Callable[[str], None]
"""Called with a step's name each time the work reaches it."""

BATCH_STEPS: tuple[str, ...] = (
    "recorded",  # changes written to the state database
    "queued",  # a batch taken: its paths marked queued
    "blobs_written",  # blob objects of the batch written
    "tree_written",  # the new tree written
    "index_written",  # the new index written beside the real one (index.lock held; not in place yet)
    "commit_written",  # the commit object written
    "ref_moved",  # the branch moved to the commit (the new index not yet renamed into place)
    "db_marked",  # the batch's outcome written to the state database
    "push_started",  # about to push
    "push_done",  # the remote has the commit, push state not yet recorded
)
"""The steps of a batch and its push: every start with push on reaches them."""

SYNC_STEPS: tuple[str, ...] = (
    "sync_fetched",  # the remote's branch fetched (remote-tracking ref moved), nothing merged yet
    "sync_tree_written",  # the synced files written into the working tree (index, branch not yet)
    "sync_index_written",  # the synced index written beside the real one (index.lock held)
    "sync_ref_moved",  # the branch moved to the synced commit (the new index not yet in place)
)
"""The steps of a sync (`[sync] enabled`): fetch, working tree, index, branch."""

STEPS: tuple[str, ...] = BATCH_STEPS + SYNC_STEPS
"""Every named step."""


PROGRESS: tuple[str, ...] = (
    "scanning",  # a scan walked a folder, hashed a file or read a chunk of one
    "pushing",  # libgit2 reported push progress (objects packed or sent, a server message)
)
"""Points reached again and again inside a long scan or push: the step callback gets them
too, so the heartbeat beats while a long operation makes progress (and tests can hang
or crash there as at a step)."""

ENV = "MDBACKUP_CRASH_AT"
HANG_ENV = "MDBACKUP_HANG_AT"


def no_step(_step: str) -> None:
    """The step callback of real use: does nothing."""


def from_environ(environ: Mapping[str, str], *, on_step: Step = no_step) -> Step:
    """The step callback of this process: `on_step` (e.g. the worker's heartbeat) at every
    step, and FOR TESTS ONLY, with `MDBACKUP_CRASH_AT=STEP[:N]`, SIGKILL this process the
    N-th time it reaches STEP, or with `MDBACKUP_HANG_AT=STEP[:N]` block for ever there.
    Exits with a message for an unknown step."""
    actions = [on_step]
    crash = _at(environ, ENV)
    if crash is not None:
        actions.append(_nth(*crash, lambda _step: os.kill(os.getpid(), signal.SIGKILL)))
    hang = _at(environ, HANG_ENV)
    if hang is not None:
        actions.append(_nth(*hang, _hang))
    if len(actions) == 1:
        return on_step

    def reach(step: str) -> None:
        for action in actions:
            action(step)

    return reach


def _at(environ: Mapping[str, str], name: str) -> tuple[str, int] | None:
    value = environ.get(name)
    if not value:
        return None
    target, _, count = value.partition(":")
    if target not in STEPS + PROGRESS:
        raise SystemExit(f"{name}: unknown step {target!r}; steps: {', '.join(STEPS + PROGRESS)}")
    return target, int(count) if count else 1


def _nth(target: str, times: int, action: Step) -> Step:
    seen = 0

    def reach(step: str) -> None:
        nonlocal seen
        if step != target:
            return
        seen += 1
        if seen >= times:
            action(step)

    return reach


_RELEASE = threading.Event()


def release_hangs() -> None:
    """Let threads stuck by `MDBACKUP_HANG_AT` go on (in-process tests clean up with it)."""
    _RELEASE.set()


def _hang(step: str) -> None:
    """Block the calling thread until `release_hangs` (tests only), saying so on stderr."""
    print(f'{{"event": "hang_for_tests", "step": "{step}"}}', file=sys.stderr, flush=True)
    _RELEASE.wait()
