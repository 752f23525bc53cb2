"""The named steps of a batch, and a step callback that can die at one of them.

The steps are reached through a `Step` callback handed to the code that does the
work (`Backup`, the git layer); by default it does nothing. FOR TESTS ONLY: when
the environment variable `MDBACKUP_CRASH_AT` is `STEP` or `STEP:N`,
`from_environ` gives a callback that kills the process with SIGKILL the first (or
N-th) time it reaches that step, the way a power cut or `kill -9` would.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Mapping

Step = Callable[[str], None]
"""Called with a step's name each time the work reaches it."""

STEPS: tuple[str, ...] = (
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

ENV = "MDBACKUP_CRASH_AT"


def no_step(_step: str) -> None:
    """The step callback of real use: does nothing."""


def from_environ(environ: Mapping[str, str]) -> Step:
    """`no_step`, or (tests only, `MDBACKUP_CRASH_AT=STEP[:N]`) a callback that SIGKILLs
    this process the N-th time it reaches STEP. Exits with a message for an unknown step."""
    value = environ.get(ENV)
    if not value:
        return no_step
    target, _, count = value.partition(":")
    if target not in STEPS:
        raise SystemExit(f"{ENV}: unknown step {target!r}; steps: {', '.join(STEPS)}")
    times = int(count) if count else 1
    seen = 0

    def reach(step: str) -> None:
        nonlocal seen
        if step != target:
            return
        seen += 1
        if seen >= times:
            os.kill(os.getpid(), signal.SIGKILL)

    return reach
