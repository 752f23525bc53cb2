"""mdbackup.crashpoints: the named steps, and MDBACKUP_CRASH_AT dying at one of them."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from mdbackup.crashpoints import ENV, STEPS, from_environ, no_step
from tests.support.cli import PYTHONPATH

# Reaches every step in order, three times over, saying so after each step.
WALK = """
import sys
from mdbackup.crashpoints import STEPS, from_environ
step = from_environ({"MDBACKUP_CRASH_AT": sys.argv[1]})
for round in range(3):
    for name in STEPS:
        step(name)
        print(round, name, flush=True)
print("done", flush=True)
"""


def walk(crash_at: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WALK, crash_at],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": PYTHONPATH, "PATH": "/usr/bin:/bin"},
        check=False,
    )


def test_steps_are_unique_names() -> None:
    assert len(set(STEPS)) == len(STEPS)
    assert all(step.isidentifier() for step in STEPS)


@pytest.mark.parametrize("environ", [{}, {ENV: ""}, {"OTHER": "recorded"}])
def test_unset_is_the_step_that_does_nothing(environ: dict[str, str]) -> None:
    step = from_environ(environ)
    assert step is no_step
    for name in STEPS:
        step(name)  # returns: nothing dies


@pytest.mark.parametrize("value", ["bogus", "bogus:2", "Recorded"])
def test_an_unknown_step_exits_naming_the_steps(value: str) -> None:
    with pytest.raises(SystemExit) as exc:
        from_environ({ENV: value})
    message = str(exc.value.code)
    assert ENV in message and repr(value.partition(":")[0]) in message
    assert all(step in message for step in STEPS)


def test_a_process_dies_by_sigkill_the_first_time_it_reaches_the_step() -> None:
    done = walk("tree_written")
    assert done.returncode == -signal.SIGKILL
    assert done.stdout.splitlines() == ["0 recorded", "0 queued", "0 blobs_written"]


def test_a_process_dies_the_nth_time_it_reaches_the_step() -> None:
    done = walk("queued:3")
    assert done.returncode == -signal.SIGKILL
    lines = done.stdout.splitlines()
    assert lines.count("0 queued") == lines.count("1 queued") == 1
    assert lines[-1] == "2 recorded"  # the third `queued` never printed


def test_a_step_reached_fewer_times_than_asked_never_kills() -> None:
    done = walk("push_done:4")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "done"


def test_hang_at_blocks_the_thread_at_the_nth_step_and_beats_before() -> None:
    import threading

    from mdbackup.crashpoints import from_environ, release_hangs

    seen: list[str] = []
    step = from_environ({"MDBACKUP_HANG_AT": "queued:2"}, on_step=seen.append)
    step("queued")  # first time: passes
    worker = threading.Thread(target=step, args=("queued",), daemon=True)
    worker.start()
    worker.join(0.3)
    try:
        assert worker.is_alive()  # stuck on purpose at the second time
        assert seen == ["queued", "queued"]
    finally:
        release_hangs()
        worker.join(5)


def test_progress_points_are_named_apart_from_the_steps_and_can_be_hung_at() -> None:
    """`scanning` and `pushing` come many times inside one scan or push: they are not steps
    of a batch (the crash tests walk those), yet the hooks accept them like steps."""
    from mdbackup.crashpoints import HANG_ENV, PROGRESS

    assert set(PROGRESS) == {"scanning", "pushing"} and not set(PROGRESS) & set(STEPS)
    seen: list[str] = []
    step = from_environ({HANG_ENV: "scanning:1000", ENV: "pushing:1000"}, on_step=seen.append)
    for name in PROGRESS:
        step(name)  # reached once: neither hangs nor dies
    assert seen == list(PROGRESS)
    with pytest.raises(SystemExit) as exc:
        from_environ({HANG_ENV: "scan"})
    assert all(point in str(exc.value.code) for point in PROGRESS)
