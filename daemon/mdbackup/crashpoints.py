"""The named steps of a batch, and a way for tests to die at one of them.

FOR TESTS ONLY: when the environment variable `MDBACKUP_CRASH_AT` is `STEP` or
`STEP:N`, the process kills itself with SIGKILL the first (or N-th) time it reaches
that step, the way a power cut or `kill -9` would. The variable is read once, here,
at import; unset (always, in real use) `reach` is a dictionary lookup that does
nothing.
"""

from __future__ import annotations

import os
import signal

STEPS: tuple[str, ...] = (
    "recorded",  # changes written to the state database
    "queued",  # a batch taken: its paths marked queued
    "blobs_written",  # blob objects of the batch written
    "tree_written",  # the new tree written
    "index_written",  # the real index written with the committed entries
    "commit_written",  # the commit object written
    "ref_moved",  # the branch moved to the commit
    "db_marked",  # the batch's outcome written to the state database
    "push_started",  # about to push
    "push_done",  # the remote has the commit, push state not yet recorded
)

ENV = "MDBACKUP_CRASH_AT"


def _parse(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    step, _, count = value.partition(":")
    if step not in STEPS:
        raise SystemExit(f"{ENV}: unknown step {step!r}; steps: {', '.join(STEPS)}")
    return step, int(count) if count else 1


_target = _parse(os.environ.get(ENV))
_seen: dict[str, int] = {}


def reach(step: str) -> None:
    """Mark that the process reached `step`; dies there when the test asked for it."""
    if _target is None or _target[0] != step:
        return
    _seen[step] = _seen.get(step, 0) + 1
    if _seen[step] >= _target[1]:
        os.kill(os.getpid(), signal.SIGKILL)
