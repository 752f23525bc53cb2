"""A short randomized crash soak (the engine is bench/soak.py; long runs live there).

    pytest tests/e2e/test_soak.py --soak-iterations 200 --soak-seed 7

Random file operations, kill -9 at random moments (timed, at a random crash
point, during start-up), restart, every invariant checked after each recovery.
On failure the message names the seed and iteration: `python bench/soak.py
--seed N --iterations M` replays the same operations and kill plans.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from bench.soak import Mutator, Soak, Stats
from bench.soak_clock import clock_soak
from tests.support.invariants import (
    STORE,
    Checker,
    World,
    make_daemon,
    run_git,
    run_once,
    wait_idle,
)
from tests.support.wait import wait_until


def test_soak_kill_9_at_random_moments(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    iterations = request.config.getoption("--soak-iterations")
    seed = request.config.getoption("--soak-seed")
    lines: list[str] = []
    soak = Soak(tmp_path / "world", seed=seed, iterations=iterations, say=lines.append, report_every=0)
    stats = soak.run()
    print("\n".join(lines))
    assert not stats.violations, (
        f"soak seed {seed} found violations (replay: python bench/soak.py --seed {seed} "
        f"--iterations {iterations}):\n" + "\n".join(lines)
    )
    assert stats.iterations == iterations
    # every iteration but the lossless faults (SIGTERM burst, database lock) killed the daemon
    assert stats.kills >= iterations - stats.sigterm_bursts - stats.db_locks
    if iterations >= 40:  # the loss-oracle faults are drawn too (seeded: deterministic)
        assert stats.sigterm_bursts and stats.db_locks, stats.line()


def test_clock_steps_soak_every_save_committed_after_the_debounce(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Wall-clock steps of +-1 h (in process, injected clock): after each round the debounce
    of monotonic time commits every save; on wall-clock scheduling a step back held it."""
    seed = request.config.getoption("--soak-seed")
    stats = clock_soak(tmp_path, seed=seed, rounds=60)
    assert stats.steps_back and stats.steps_forward
    assert not stats.violations, "\n".join(stats.violations[:10])


def _tree(root: Path) -> dict[str, bytes | str]:
    found: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            found[rel] = "-> " + str(path.readlink())
        elif path.is_file():
            found[rel] = path.read_bytes() + bytes([path.stat().st_mode & 0o100])
        else:
            found[rel] = "dir"
    return found


def test_the_operations_replay_from_the_seed(tmp_path: Path) -> None:
    """Same seed, same operations and files: a soak failure can be replayed."""
    trees = []
    for name in ("one", "two"):
        world = World.create(tmp_path / name, push=False)
        stats = Stats()
        for i in range(8):
            Mutator(world, random.Random(f"5:{i}"), stats).run(12)
        trees.append(_tree(world.repo / STORE))
        assert stats.ops == 96
    assert trees[0] == trees[1]
    assert len(trees[0]) > 10


# -- what the soak found, pinned down as deterministic tests --------------------------------


def _mode_in_head(world: World, path: str) -> str | None:
    entry = world.head_store().get(path)
    return None if entry is None else entry[0]


def test_chmod_while_running_is_committed(tmp_path: Path) -> None:
    world = World.create(tmp_path / "world", push=False)
    note = world.repo / STORE / "script.md"
    note.write_text("#!/bin/sh\n")
    daemon = make_daemon(world).start(wait_ready=False)
    try:
        assert daemon.ready_or_exited()
        wait_until(
            lambda: _mode_in_head(world, f"{STORE}/script.md") == "100644", message="the file committed"
        )
        note.chmod(0o755)
        wait_until(
            lambda: _mode_in_head(world, f"{STORE}/script.md") == "100755",
            timeout=10,
            message="the executable bit committed",
        )
    finally:
        daemon.close()


def test_chmod_while_down_is_found_by_the_start_up_scan(tmp_path: Path) -> None:
    world = World.create(tmp_path / "world", push=False)
    note = world.repo / STORE / "script.md"
    note.write_text("#!/bin/sh\n")
    assert run_once(world) == 0
    assert _mode_in_head(world, f"{STORE}/script.md") == "100644"
    past = time.time() - 60
    os.utime(note, (past, past))  # the index is written well after the file ("racy git")
    run_git(world.repo, "update-index", "-q", "--refresh")  # what `git status` does
    note.chmod(0o755)
    daemon = make_daemon(world).start(wait_ready=False)
    try:
        assert daemon.ready_or_exited()
        assert wait_idle(world, timeout=10) is None
        assert _mode_in_head(world, f"{STORE}/script.md") == "100755", Checker(world).check()
    finally:
        daemon.close()
