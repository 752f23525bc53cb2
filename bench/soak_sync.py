"""Seeded sync soak: three machines on one bare remote, random edits, new notes, renames and
deletions on all of them at once, SIGKILLs of random daemons; after every round all machines
converge and nothing anyone saved is lost.

    python bench/soak_sync.py --rounds 300 --seed 7        # a long run, prints figures
    python bench/soak_sync.py --rounds 20 --seed 7 --keep  # keep the repositories afterwards

One round: every machine makes 1-4 operations in a quick burst (edit a line, insert or append
one, save atomically, add a note, often under a name another machine may add too, rename,
delete), so concurrent edits of one note, modify/delete, both-add and rename/edit all happen.
Some rounds SIGKILL one or two daemons: before the burst (edits while down), a random moment
after it (debounce, commit, fetch, merge, push all fall in the range), or at a random sync
crash point (`MDBACKUP_CRASH_AT`, one of `mdbackup.crashpoints.SYNC_STEPS`);
each is restarted. Then `Cluster.wait_converged` (every head the remote's, every store equal
to it, git status clean, every daemon idle) and `Cluster.check_round` (every machine's last
save of every path at its path, merged in or in a conflict copy; no conflict markers; the
remote never rewound; every commit any branch pointed at is in the remote's history).

Every decision comes from `Random(f"{seed}:{round}:...")` and the converged files; which
machine merges first (and so the conflict copies' names) depends on timing, so a replay
is close, not exact. `tests/e2e/test_soak_sync.py` runs a short slice in CI.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mdbackup.crashpoints import SYNC_STEPS
from tests.support.invariants import git_text
from tests.support.sync import STORE, Cluster, Machine, is_conflict_copy

DEBOUNCE = 0.2
INTERVAL = 0.5
CRASH_WAIT = 4.0  # seconds crash-point daemons get to reach their step
MAX_FILES = 40  # past this many notes, operations lean to deleting
SHARED_NAMES = 6  # `notes/s<k>.md`: names every machine may add (both-add)


@dataclass
class SyncStats:
    rounds: int = 0
    ops: int = 0
    kills: int = 0
    kills_before: int = 0
    kills_after: int = 0
    crash_points: int = 0
    crash_point_deaths: int = 0
    crash_steps: dict[str, int] = field(default_factory=dict)  # step -> deaths there
    converge_s: list[float] = field(default_factory=list)  # to converged and every daemon idle
    trees_s: list[float] = field(default_factory=list)  # to the trees alone agreeing
    violations: list[str] = field(default_factory=list)
    repairs: int = 0
    merges: int = 0
    conflict_copies: int = 0  # ever committed
    files: int = 0
    started: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        times = self.converge_s or [0.0]
        return (
            f"rounds {self.rounds}  ops {self.ops}  kills {self.kills} (before {self.kills_before}, "
            f"after {self.kills_after}, crash points {self.crash_point_deaths}/{self.crash_points})  "
            f"converge median {statistics.median(times):.1f} s max {max(times):.1f} s "
            f"(trees agree {statistics.median(self.trees_s or [0.0]):.1f} s)  "
            f"merges {self.merges}  conflict copies {self.conflict_copies}  files {self.files}  "
            f"violations {len(self.violations)} (repairs {self.repairs})  "
            f"{time.monotonic() - self.started:.0f} s"
        )


class SyncMutator:
    """One machine's operations in one round; every choice from `rng` and the files on disk."""

    def __init__(self, machine: Machine, rng: random.Random, tag: str, stats: SyncStats) -> None:
        self.m = machine
        self.rng = rng
        self.tag = tag
        self.stats = stats
        self.n = 0

    def _notes(self) -> list[str]:
        return [p for p in self.m.store_files() if p.endswith(".md")]

    def _deletable(self, notes: list[str]) -> list[str]:
        return [p for p in notes if p != f"{STORE}/hot.md"]

    def _line(self) -> str:
        self.n += 1
        return f"{self.tag} #{self.n} {self.rng.randrange(10**6)}\n"

    def edit(self, notes: list[str]) -> None:
        if not notes:
            return self.new(notes)
        path = self.rng.choice(notes)
        lines = self.m.read(path).decode().splitlines(keepends=True)
        how = self.rng.choice(["replace", "insert", "append"])
        if how == "replace" and lines:
            lines[self.rng.randrange(len(lines))] = self._line()
        elif how == "insert":
            lines.insert(self.rng.randrange(len(lines) + 1), self._line())
        else:
            lines.append(self._line())
        self.m.write(path, "".join(lines), atomic=self.rng.random() < 0.3)

    def new(self, notes: list[str]) -> None:
        if self.rng.random() < 0.4:
            path = f"{STORE}/s{self.rng.randrange(SHARED_NAMES)}.md"
            if path in notes:
                return self.edit([path])
        else:
            folder = self.rng.choice(["", "", "d1/", "d2/sub/"])
            path = f"{STORE}/{folder}{self.tag.replace(' ', '-')}-{self.n}.md"
        body = "".join(self._line() for _ in range(self.rng.randrange(1, 12)))
        self.m.write(path, body)

    def delete(self, notes: list[str]) -> None:
        if self._deletable(notes):
            self.m.delete(self.rng.choice(self._deletable(notes)))

    def rename(self, notes: list[str]) -> None:
        if self._deletable(notes):
            src = self.rng.choice(self._deletable(notes))
            folder = self.rng.choice(["", "moved/"])
            self.n += 1
            self.m.rename(src, f"{STORE}/{folder}r-{self.tag.replace(' ', '-')}-{self.n}.md")

    def clash(self, notes: list[str]) -> None:
        """The first line of the hot note: two machines doing this in one round conflict."""
        path = f"{STORE}/hot.md"
        if path not in notes:
            return self.new(notes)
        lines = self.m.read(path).decode().splitlines(keepends=True) or ["\n"]
        lines[0] = self._line()
        self.m.write(path, "".join(lines))

    OPS = (("edit", 6.0), ("new", 2.0), ("delete", 1.0), ("rename", 1.0), ("clash", 1.5))

    def step(self) -> str:
        notes = self._notes()
        weights = [w * (4 if name == "delete" and len(notes) > MAX_FILES else 1) for name, w in self.OPS]
        op = self.rng.choices([name for name, _w in self.OPS], weights)[0]
        getattr(self, op)(notes)
        self.stats.ops += 1
        return op


class SyncSoak:
    """The soak on one cluster; `run()` returns the stats (violations included)."""

    def __init__(
        self,
        root: Path,
        *,
        seed: int,
        rounds: int,
        machines: int = 3,
        converge_timeout: float = 90.0,
        keep_going: bool = False,
        say: Callable[[str], None] = print,
        report_every: int = 10,
    ) -> None:
        self.seed = seed
        self.rounds = rounds
        self.converge_timeout = converge_timeout
        self.keep_going = keep_going
        self.report_every = report_every
        self._say = say
        self.log_path = root / "soak.log"
        files = {f"{STORE}/n{k}.md": "".join(f"seed line {i} of n{k}\n" for i in range(12)) for k in range(8)}
        files[f"{STORE}/hot.md"] = "the line every machine edits\n" + "".join(f"line {i}\n" for i in range(8))
        self.cluster = Cluster.create(
            root, machines=machines, files=files, interval=INTERVAL, debounce=DEBOUNCE
        )
        self.stats = SyncStats()
        self.ask = "db"  # the rounds ask each state.db; the last round asks `status --json`

    def say(self, text: str) -> None:
        with self.log_path.open("a") as fh:
            fh.write(text + "\n")
        self._say(text)

    def _violation(self, text: str) -> None:
        line = f"seed {self.seed} round {self.stats.rounds}: {text}"
        self.stats.violations.append(line)
        self.say("VIOLATION " + line)

    def round(self, r: int) -> None:
        rng = random.Random(f"{self.seed}:{r}")
        machines = self.cluster.machines
        plan = rng.choices(["none", "before", "after", "crashpoint"], [6, 1, 2, 1 if SYNC_STEPS else 0])[0]
        if r % 7 == 3 and SYNC_STEPS:  # every seed's short slice reaches the sync crash points too
            plan = "crashpoint"
        victims = rng.sample(machines, rng.choice([1, 1, 2])) if plan != "none" else []
        delay = rng.uniform(0, DEBOUNCE + INTERVAL + 0.5)
        step = rng.choice(SYNC_STEPS) if SYNC_STEPS else ""

        if plan in ("before", "crashpoint"):
            for m in victims:
                m.kill()
                self.stats.kills += 1
                self.stats.kills_before += plan == "before"
        if plan == "crashpoint":
            for m in victims:
                m.start(wait_ready=False, crash_at=f"{step}:1")
                self.stats.crash_points += 1

        mutators = [
            SyncMutator(m, random.Random(f"{self.seed}:{r}:{m.name}"), f"{m.name} r{r}", self.stats)
            for m in machines
        ]
        counts = [rng.randrange(1, 5) for _ in machines]
        for k in range(max(counts)):  # interleaved: the machines save at the same moments
            for mutator, count in zip(mutators, counts, strict=True):
                if k < count:
                    mutator.step()

        if plan == "after":
            time.sleep(delay)
            for m in victims:
                m.kill()
                self.stats.kills += 1
                self.stats.kills_after += 1
        if plan == "crashpoint":  # the others' pushes make the victim fetch and merge soon
            deadline = time.monotonic() + CRASH_WAIT
            for m in victims:
                assert m.daemon is not None
                code = m.daemon.wait_exit(timeout=max(0.01, deadline - time.monotonic()))
                if code is None:
                    m.kill()
                elif code == -9:
                    self.stats.crash_point_deaths += 1
                    self.stats.crash_steps[step] = self.stats.crash_steps.get(step, 0) + 1
                else:
                    self._violation(f"{m.name} with MDBACKUP_CRASH_AT={step}:1 exited {code}\n{m.log_tail()}")
        for m in machines:
            if not m.running():
                m.start(wait_ready=False)
        for m in machines:
            assert m.daemon is not None
            try:
                m.daemon.wait_ready(timeout=60)
            except AssertionError as exc:
                self._violation(f"{m.name} did not come back: {exc}")
                return

        started = time.monotonic()
        try:
            done = self.cluster.wait_converged(timeout=self.converge_timeout, ask=self.ask)
        except AssertionError as exc:
            self._violation(f"no convergence ({plan}, victims {[m.name for m in victims]}): {exc}")
            self._repair()
            return
        self.stats.converge_s.append(time.monotonic() - started)
        if self.cluster.trees_agreed_at is not None:
            self.stats.trees_s.append(self.cluster.trees_agreed_at - started)
        for problem in self.cluster.check_round(done):
            self._violation(problem)

    def _repair(self) -> None:
        """After a reported violation with --keep-going: put things right the way a user would
        (every daemon stopped, stale git locks removed, daemons restarted), wait for them to
        converge and go on from there; the ledger starts again."""
        if not self.keep_going:
            return
        for m in self.cluster.machines:
            m.kill()
            git_dir = m.repo / ".git"
            for lock in [*git_dir.glob("*.lock"), *(git_dir / "refs").rglob("*.lock")]:
                self.say(f"repair: removing {lock}")
                lock.unlink()
        self.stats.repairs += 1
        for m in self.cluster.machines:
            m.start(wait_ready=False)
        try:
            for m in self.cluster.machines:
                assert m.daemon is not None
                m.daemon.wait_ready(timeout=60)
            done = self.cluster.wait_converged(timeout=self.converge_timeout, ask="db")
        except AssertionError as exc:
            self._violation(f"no convergence after the repair either: {exc}")
            raise SystemExit(1) from None
        self.cluster.check_round(done)  # the ledger starts from here

    def run(self) -> SyncStats:
        self.say(f"sync soak: seed {self.seed}, {self.rounds} rounds, in {self.cluster.root}")
        try:
            self.cluster.start()
            for r in range(self.rounds):
                if self.stats.violations and not self.keep_going:
                    break
                self.ask = "status" if r == self.rounds - 1 else "db"
                self.round(r)
                self.stats.rounds += 1
                if self.report_every and self.stats.rounds % self.report_every == 0:
                    self.say(self.stats.line())
            self._final()
        finally:
            self.cluster.close()
        self.say(self.stats.line())
        return self.stats

    def _final(self) -> None:
        """Every daemon stops cleanly; history counted."""
        for m in self.cluster.machines:
            code = m.stop()
            if code not in (0, None):
                self._violation(f"{m.name} exited {code} on SIGTERM\n{m.log_tail()}")
        head = self.cluster.remote_head()
        if head is None:
            return
        files = self.cluster.remote_files(head)
        self.stats.files = len(files)
        merges = git_text(self.cluster.remote, "rev-list", "--merges", "--count", head).strip()
        self.stats.merges = int(merges or 0)
        added = git_text(
            self.cluster.remote, "log", "-m", "--diff-filter=A", "--name-only", "--format=", head
        )
        self.stats.conflict_copies = len({p for p in added.split("\n") if is_conflict_copy(p)})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--seed", type=int, default=None, help="default: a random one (printed)")
    parser.add_argument("--machines", type=int, default=3)
    parser.add_argument("--keep-going", action="store_true", help="go on after a violation")
    parser.add_argument("--keep", action="store_true", help="keep the repositories afterwards")
    parser.add_argument("--dir", type=Path, default=None, help="where to build the repositories")
    parser.add_argument("--report-every", type=int, default=10)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # stoppable in the background too
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**9)
    root = Path(tempfile.mkdtemp(prefix=f"mdbackup-soak-sync-{seed}-", dir=args.dir))
    soak = SyncSoak(
        root / "cluster",
        seed=seed,
        rounds=args.rounds,
        machines=args.machines,
        keep_going=args.keep_going,
        report_every=args.report_every,
        say=lambda s: print(s, flush=True),
    )
    stats = soak.run()
    failed = bool(stats.violations)
    if failed or args.keep:
        print(f"repositories kept: {root}", flush=True)
    else:
        with contextlib.suppress(OSError):
            shutil.rmtree(root)
    times = stats.converge_s or [0.0]
    print(
        f"RESULT seed={seed} rounds={stats.rounds} ops={stats.ops} kills={stats.kills} "
        f"crash_points={stats.crash_point_deaths}/{stats.crash_points} merges={stats.merges} "
        f"conflict_copies={stats.conflict_copies} files={stats.files} "
        f"converge_median_s={statistics.median(times):.2f} converge_max_s={max(times):.2f} "
        f"violations={len(stats.violations)}",
        flush=True,
    )
    print(f"crash point deaths by step: {stats.crash_steps}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
