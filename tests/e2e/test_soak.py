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

from bench.soak import GITIGNORE_LINES, GLOB_VARIANTS, Mutator, Soak, Stats, Transition
from bench.soak_clock import clock_soak
from mdbackup.patterns import StoreFilter
from tests.support.invariants import (
    STORE,
    Checker,
    World,
    make_daemon,
    run_git,
    run_once,
    wait_idle,
)
from tests.support.rules import Rules, check_ignore
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
    # every iteration but the lossless faults (SIGTERM burst, database lock, rule changes)
    # killed the daemon
    assert stats.kills >= iterations - stats.lossless
    if iterations >= 40:  # the loss-oracle faults are drawn too (seeded: deterministic)
        assert stats.sigterm_bursts and stats.db_locks, stats.line()
        assert stats.gitignore_edits and stats.include_reloads, stats.line()


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


SAMPLE_PATHS = [
    f"{STORE}/{rel}"
    for rel in (
        "a.md",
        "n-1.md",
        "x-2.md",
        "d12/x-3.md",
        "d12/sub/n-4.md",
        "d12/note-10.md",
        "Notiz ü-5.md",
        "with space-6.md",
        "note-7.md",
        "moved-8/note-9.md",
        "moved-8/deep/notes.txt",
        "moved-8/4913",
        "notes.txt",
        "d3/notes.txt",
        "held-1.md",
        "x.md~",
        "dd/with space-1.md",
        "moved-1/d2/Notiz ü-3.md",
    )
]


def test_the_oracle_reads_each_soak_glob_as_the_contract_says() -> None:
    """The soak's oracle (tests/support/rules.py) is its own implementation of the glob
    rules; on every config the soak uses it agrees with mdbackup.patterns path by path
    (two implementations of the contract: a disagreement means one of them is wrong)."""
    for include, exclude in GLOB_VARIANTS:
        rules = Rules(include=include, exclude=exclude)
        daemon = StoreFilter.build(store_prefix=STORE, include=include, exclude=exclude)
        for path in SAMPLE_PATHS:
            assert rules.config_wants(path) == daemon.wants(path), (include, exclude, path)
    anchored = Rules(include=("/*.md", "moved-*/**"))
    assert anchored.config_wants(f"{STORE}/a.md") and not anchored.config_wants(f"{STORE}/d12/x-3.md")
    assert anchored.config_wants(f"{STORE}/moved-8/deep/notes.txt")
    assert not anchored.config_wants(f"{STORE}/moved-8/4913")  # a temp name stays out


def test_gitignore_rules_of_the_soak_are_obeyed_as_git_obeys_them(tmp_path: Path) -> None:
    """Every .gitignore line the soak draws, alone and all together: `--once` adds exactly the
    new files git would add (`git check-ignore` decides) and keeps committing tracked ones."""
    world = World.create(tmp_path / "world", push=False)
    store = world.repo / STORE
    tracked = [
        f"{STORE}/{rel}" for rel in ("a.md", "n-1.md", "x-2.md", "d12/x-3.md", "Notiz ü-5.md", "note-7.md")
    ]
    for path in tracked:
        (world.repo / path).parent.mkdir(parents=True, exist_ok=True)
        (world.repo / path).write_text("tracked\n")
    assert run_once(world) == 0
    for n, text in enumerate([*GITIGNORE_LINES, "\n".join(GITIGNORE_LINES)]):
        (store / ".gitignore").write_text(text + "\n")
        for path in SAMPLE_PATHS:
            (world.repo / path).parent.mkdir(parents=True, exist_ok=True)
            (world.repo / path).write_text(f"round {n}\n")
        ignored = check_ignore(world.repo, SAMPLE_PATHS)
        assert run_once(world) == 0
        head = world.head_store()
        for path in SAMPLE_PATHS:
            if not Rules().config_wants(path):
                continue
            should = path in tracked or path not in ignored
            assert (path in head) == should, f"{text!r}: {path} (ignored by git: {path in ignored})"
        checker = Checker(world, rules=Rules(gitignore=text + "\n"))
        assert checker.store_equals_head() == [], text
        for path in SAMPLE_PATHS:  # the next round starts from the tracked files only
            if path not in tracked:
                (world.repo / path).unlink(missing_ok=True)
        assert run_once(world) == 0


def test_the_commit_check_flags_what_the_rules_in_force_refuse(tmp_path: Path) -> None:
    """The soak's per-commit check can fail: a commit adding a path that the rules in force
    ignore, or one the config does not want, is a violation; the same commit made while
    new rules were being applied (not logged after the daemon applied them) may obey the old."""
    lines: list[str] = []
    soak = Soak(tmp_path / "world", seed=1, iterations=0, say=lines.append)
    (soak.world.repo / STORE / "x-1.md").write_text("x\n")
    (soak.world.repo / STORE / "n-1.md").write_text("n\n")
    assert run_once(soak.world) == 0
    head = soak.world.head()
    base = soak.verified_head
    soak.rules = Rules(gitignore="x-*.md\n")
    soak._verify_commits(head)
    assert len(soak.stats.violations) == 1 and "x-1.md" in soak.stats.violations[0], lines
    soak.verified_head, soak.stats.violations = base, []
    soak.rules = Rules(include=("x-*.md",))
    soak._verify_commits(head)
    assert len(soak.stats.violations) == 1 and "n-1.md" in soak.stats.violations[0], lines
    soak.verified_head, soak.stats.violations = base, []
    daemon = make_daemon(soak.world)  # a log without a `commit` event: the commit came before
    try:
        soak._transition = Transition(old=Rules(), daemon=daemon, marker=0)
        soak._verify_commits(head)
    finally:
        daemon.close()
    assert soak.stats.violations == [], soak.stats.violations
