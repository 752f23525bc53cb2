"""A short randomized crash soak (the engine is bench/soak.py; long runs live there).

    pytest tests/test_soak.py --soak-iterations 200 --soak-seed 7

Random file operations, kill -9 at random moments (timed, at a random crash
point, during start-up), restart, every invariant checked after each recovery.
On failure the message names the seed and iteration: `python bench/soak.py
--seed N --iterations M` replays the same operations and kill plans.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from bench.soak import Mutator, Soak, Stats
from tests.invariants import STORE, World


def test_soak_kill_9_at_random_moments(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    iterations = request.config.getoption("--soak-iterations")
    seed = request.config.getoption("--soak-seed")
    lines: list[str] = []
    soak = Soak(tmp_path / "world", seed=seed, iterations=iterations, say=lines.append,
                report_every=0)
    stats = soak.run()
    print("\n".join(lines))
    assert not stats.violations, (
        f"soak seed {seed} found violations (replay: python bench/soak.py --seed {seed} "
        f"--iterations {iterations}):\n" + "\n".join(lines))
    assert stats.iterations == iterations
    assert stats.kills >= iterations  # every iteration killed the daemon at least once


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
