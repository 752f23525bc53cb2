"""In-process soak of the scheduling against wall-clock steps (issue 10, the loss oracle).

    python bench/soak_clock.py --rounds 1000 --seed 7

A real repository and state database, `Backup` driven by a fake clock whose wall
time jumps by +-1 h at random while its monotonic time only moves forward. After
each round of saves (and perhaps a step), the fake time moves on by the debounce:
every save must then be committed (the store equals HEAD), whatever the wall clock
did. On wall-clock scheduling a step back held the commit an hour.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mdbackup.backup import Backup
from tests.support.backup import FakeClock, make_config
from tests.support.git import head_files, init_repo

DEBOUNCE, MAX_DELAY = 2.0, 10.0
STEP = 3600.0


@dataclass
class ClockStats:
    rounds: int = 0
    saves: int = 0
    steps_back: int = 0
    steps_forward: int = 0
    violations: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"rounds {self.rounds}  saves {self.saves}  wall steps -1 h {self.steps_back}, "
            f"+1 h {self.steps_forward}  violations {len(self.violations)}"
        )


def clock_soak(root: Path, *, seed: int, rounds: int) -> ClockStats:
    """`rounds` rounds of saves and wall-clock steps; returns the figures and violations."""
    repo = init_repo(root / "repo")
    store = repo / "notes"
    store.mkdir()
    clock = FakeClock()
    config = make_config(repo, f"[watch]\ndebounce = {DEBOUNCE}\nmax_delay = {MAX_DELAY}\n")
    backup = Backup.open(config, clock=clock)
    rng = random.Random(seed)
    stats = ClockStats()
    try:
        for i in range(rounds):
            for _ in range(rng.randrange(1, 4)):
                name = f"f{rng.randrange(20)}.md"
                (store / name).write_text(f"{i} {rng.random()}\n")
                backup.record([f"notes/{name}"])
                stats.saves += 1
                clock.now += rng.uniform(0, DEBOUNCE / 4)
            if rng.random() < 0.5:
                step = rng.choice([-STEP, STEP])
                clock.step_wall(step)
                stats.steps_back += step < 0
                stats.steps_forward += step > 0
            backup.run_due(degraded=False)
            clock.now += DEBOUNCE
            backup.run_due(degraded=False)
            stats.rounds += 1
            head = head_files(repo)
            stale = [p.name for p in store.iterdir() if head.get(f"notes/{p.name}") != p.read_text()]
            if stale:
                stats.violations.append(f"seed {seed} round {i}: not committed after the debounce: {stale}")
    finally:
        backup.close()
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--seed", type=int, default=None, help="default: a random one (printed)")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**9)
    with tempfile.TemporaryDirectory(prefix=f"mdbackup-clock-soak-{seed}-") as tmp:
        stats = clock_soak(Path(tmp), seed=seed, rounds=args.rounds)
    for line in stats.violations[:20]:
        print("VIOLATION " + line)
    print(f"RESULT seed={seed} " + stats.line(), flush=True)
    return 1 if stats.violations else 0


if __name__ == "__main__":
    sys.exit(main())
