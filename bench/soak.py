"""Randomized crash soak: random file operations, kill -9 at random moments, check after each recovery.

    python bench/soak.py --iterations 1000 --seed 7        # long run, prints figures
    python bench/soak.py --iterations 50 --seed 7 --keep   # keep the repository afterwards

One iteration: random operations on the store (write, rewrite in the ways editors
save, delete, rename, folder move, nested folders, symlinks, chmod, temp files,
putting back the committed content) while the daemon runs; then the daemon dies
by SIGKILL, in one of three ways:

- `timed`: the running daemon is killed after a random delay (debounce, commit and
  push all fall in the range);
- `crashpoint`: a daemon started with `MDBACKUP_CRASH_AT=<random step>:<random n>`
  kills itself there (killed by us after the operations if it never got there);
- `startup`: a daemon is killed at a random moment of its start-up scan and commit.

and (issue 10, the loss oracle) faults that must lose nothing although no one is killed:

- `sigterm`: a burst of operations, then SIGTERM at once: the stop must exit 0;
- `dblock`: another process write-locks the state database longer than the busy
  timeout while operations happen (worker errors must delay, never drop, a change);
- `ignore`: `.git/info/exclude` hides `held-*.md`, such files are written, then the rule
  is removed: the same daemon (no restart, no hourly rescan) must commit them;
- `reload`: the same through the config file's `exclude` and SIGHUP, both ways;
- `gitignore`: the store's `.gitignore` gets new rules (none, or some of `GITIGNORE_LINES`:
  names the operations make, folders, negations) while files change;
- `include`: the config gets another `include`/`exclude` (`GLOB_VARIANTS`), then SIGHUP,
  while files change.

Rules persist across iterations (a restarted daemon gets the config in force). After
a rule change the same daemon must bring the store to what the new rules want (a
file no longer ignored or excluded is committed without a restart), and every commit
is checked against the rules in force when it was made (`Soak._verify_commits`):
it changes only paths the config wants and adds none that git ignores (`git
check-ignore`; a tracked path stays tracked). A commit logged before the daemon said
it applied new rules (`reloaded`, or its scan of the store) may obey the old ones.

Then perhaps more operations while it is down, a restart without the variable,
a bounded wait until idle and every invariant of `tests/support/invariants.py`. A
violation stops the run (the repository is kept; the seed and iteration are
printed) unless `--keep-going`.

Reproducible from the seed: each iteration draws every decision from its own
`Random(f"{seed}:{i}")` and the operations depend only on the files, never on
timing, so a seed replays the same operations and kill plans; only where in the
daemon's work a timed kill lands depends on the machine. `tests/e2e/test_soak.py`
runs a short soak with this engine.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mdbackup.crashpoints import BATCH_STEPS as STEPS  # a daemon without sync reaches these
from mdbackup.state.db import BUSY_TIMEOUT_MS
from tests.support.daemon import Daemon
from tests.support.invariants import (
    STORE,
    Checker,
    World,
    git_text,
    is_store_file,
    make_daemon,
    wait_idle,
)
from tests.support.rules import IgnoreOracle, Rules, commit_changes
from tests.support.wait import WaitTimeout, wait_until

DEBOUNCE = 0.15
MAX_FILES = 60  # past this many store files, operations lean to deleting
CRASH_WAIT = 1.5  # seconds a crash-point daemon gets to reach its step after the operations


@dataclass
class Stats:
    iterations: int = 0
    kills: int = 0
    crash_point_kills: int = 0
    timed_kills: int = 0
    startup_kills: int = 0
    idle_kills: int = 0
    clean_stops: int = 0
    sigterm_bursts: int = 0
    db_locks: int = 0
    ignore_edits: int = 0
    reloads: int = 0
    gitignore_edits: int = 0
    include_reloads: int = 0
    ops: int = 0
    files: set[str] = field(default_factory=set)
    violations: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    @property
    def faults(self) -> int:
        """Kills plus the faults that kill nothing."""
        return self.kills + self.lossless

    @property
    def lossless(self) -> int:
        return (
            self.sigterm_bursts
            + self.db_locks
            + self.ignore_edits
            + self.reloads
            + self.gitignore_edits
            + self.include_reloads
        )

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        return (
            f"iterations {self.iterations}  faults {self.faults}  kills {self.kills} (crash points "
            f"{self.crash_point_kills}, timed {self.timed_kills}, start-up "
            f"{self.startup_kills}, idle {self.idle_kills})  clean stops {self.clean_stops}  "
            f"SIGTERM bursts {self.sigterm_bursts}  db locks {self.db_locks}  "
            f"ignore edits {self.ignore_edits}  reloads {self.reloads}  "
            f".gitignore edits {self.gitignore_edits}  include reloads {self.include_reloads}  "
            f"ops {self.ops}  files {len(self.files)}  violations {len(self.violations)}  "
            f"{elapsed:.0f} s"
        )


KINDS = ("timed", "crashpoint", "startup", "sigterm", "dblock", "ignore", "reload", "gitignore", "include")
KIND_WEIGHTS = {
    "timed": 5,
    "crashpoint": 4,
    "startup": 1,
    "sigterm": 2,
    "dblock": 1,
    "ignore": 1,
    "reload": 1,
    "gitignore": 1.5,
    "include": 1.5,
}
LOSSLESS = ("sigterm", "dblock", "ignore", "reload", "gitignore", "include")

# Lines of the store's .gitignore (relative to the store folder): they cover the names the
# operations make (stems n, note, Notiz ü, with space, x; folders d<n> and moved-<n>).
GITIGNORE_LINES = (
    "n-*.md",
    "/x-*.md",
    "d*/",
    "*ü*",
    "with space-*.md",
    "note-[0-4]*.md",
    "moved-*/**/note-*.md",
    "*.md\n!note-*.md",
    "n-*.md\n!n-1*.md",
)

# (include, exclude) of the config; the first is the default.
GLOB_VARIANTS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("**/*.md",), ()),
    (("*.md", "*.txt"), ()),
    (("**/*.md",), ("d*/",)),
    (("n-*.md", "note-*.md", "x-*.md", "held-*.md"), ()),
    (("/*.md", "moved-*/**"), ()),
    (("**/*.md",), ("*ü*", "with space-*")),
)


@dataclass(frozen=True)
class Transition:
    """New rules being applied by `daemon`: its commits logged after event number `marker`
    obey the new rules; the ones before may obey `old`."""

    old: Rules
    daemon: Daemon
    marker: int


def _random_gitignore(rng: random.Random) -> str:
    """A new text for the store's .gitignore: none, or one to three of `GITIGNORE_LINES`."""
    count = rng.choice([0, 1, 1, 2, 3])
    lines = rng.sample(GITIGNORE_LINES, count)
    return "".join(line + "\n" for line in lines)


def _write_atomically(path: Path, text: str) -> None:
    """`text` into `path` by rename (no moment with half the rules); "" removes the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not text:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_name(f".{path.name}.soak-new")
    tmp.write_text(text)
    os.replace(tmp, path)


def _write_rules(config_path: Path, rules: Rules) -> None:
    """Put the rules' `include` and `exclude` under `[store]` in the daemon's config file."""
    lines = config_path.read_text().splitlines(keepends=True)
    kept = "".join(line for line in lines if not line.startswith(("include = ", "exclude = ")))
    config_path.write_text(kept.replace("[store]\n", "[store]\n" + rules.toml(), 1))


def _marker(event: dict) -> str | None:
    """What a daemon log event says about rules being applied: "reloaded" (a new config in
    force), "scan" (a scan of the whole store after an ignore file changed), else None."""
    name = event.get("event")
    if name == "reloaded":
        return "reloaded"
    if name == "scan" and event.get("folder") in (None, STORE):
        return "scan"
    return None


class Mutator:
    """Random operations on the store; every choice comes from `rng` and the files on disk."""

    def __init__(self, world: World, rng: random.Random, stats: Stats) -> None:
        self.world = world
        self.root = world.repo / STORE
        self.rng = rng
        self.stats = stats

    # -- what is there ----------------------------------------------------------------

    def _walk(self) -> tuple[list[Path], list[Path], list[Path]]:
        """(store files, other files, folders below the root), sorted: deterministic."""
        files, junk, dirs = [], [], []
        for folder, subdirs, names in os.walk(self.root):
            subdirs.sort()
            for d in subdirs:
                dirs.append(Path(folder, d))
            for name in sorted(names):
                path = Path(folder, name)
                (files if is_store_file(self._rel(path)) else junk).append(path)
        return sorted(files), sorted(junk), sorted(dirs)

    def _rel(self, path: Path) -> str:
        return os.path.relpath(path, self.world.repo).replace(os.sep, "/")

    def _touch(self, *paths: Path) -> None:
        self.stats.files.update(self._rel(p) for p in paths)

    def _name(self, suffix: str = ".md") -> str:
        stem = self.rng.choice(["n", "note", "Notiz ü", "with space", "x"])
        return f"{stem}-{self.rng.randrange(1_000_000)}{suffix}"

    def _text(self) -> str:
        kind = self.rng.random()
        if kind < 0.05:
            return ""
        if kind < 0.1:
            return "big line of a big file\n" * self.rng.randrange(1000, 4000)
        return "".join(f"line {self.rng.randrange(10**6)}\n" for _ in range(self.rng.randrange(1, 8)))

    def _folder(self, dirs: list[Path]) -> Path:
        return self.rng.choice([self.root, self.root, *dirs])

    # -- the operations ---------------------------------------------------------------

    def write_new(self, files, junk, dirs) -> None:
        path = self._folder(dirs) / self._name()
        path.write_text(self._text())
        self._touch(path)

    def rewrite(self, files, junk, dirs) -> None:
        if not files:
            return self.write_new(files, junk, dirs)
        path = self.rng.choice(files)
        text = self._text()
        how = self.rng.choice(["plain", "append", "atomic", "vim", "truncate"])
        if how == "plain":
            path.write_text(text)
        elif how == "append":
            with path.open("a") as fh:
                fh.write(text)
        elif how == "truncate":
            path.write_text("")
        elif how == "atomic":
            tmp = path.with_name(f".{path.name}.{self.rng.randrange(1000)}.tmp")
            tmp.write_text(text)
            os.replace(tmp, path)
        else:  # vim: swap file, 4913 probe, rename to backup~, write, drop the backup
            swap = path.with_name(f".{path.name}.swp")
            swap.write_text("swap")
            probe = path.with_name("4913")
            probe.write_text("")
            probe.unlink()
            backup = path.with_name(path.name + "~")
            os.replace(path, backup)
            path.write_text(text)
            backup.unlink()
            swap.unlink()
        self._touch(path)

    def revert(self, files, junk, dirs) -> None:
        """Put back a file's committed content (an edit undone)."""
        entries = self.world.head_store()  # read once: the daemon moves HEAD meanwhile
        if not entries:
            return self.write_new(files, junk, dirs)
        rel = self.rng.choice(sorted(entries))
        mode, oid = entries[rel]
        data = git_text(self.world.repo, "cat-file", "blob", oid).encode("utf-8", "surrogateescape")
        path = self.world.repo / rel
        if os.path.islink(path) or (path.exists() and not path.is_file()):
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        if mode == "120000":
            path.unlink(missing_ok=True)
            os.symlink(os.fsdecode(data), path)
        else:
            path.write_bytes(data)
        self._touch(path)

    def delete(self, files, junk, dirs) -> None:
        if files:
            path = self.rng.choice(files)
            path.unlink()
            self._touch(path)

    def rename(self, files, junk, dirs) -> None:
        if files:
            path = self.rng.choice(files)
            target = self._folder(dirs) / self._name()
            os.rename(path, target)
            self._touch(path, target)

    def move_folder(self, files, junk, dirs) -> None:
        if not dirs:
            return self.nested(files, junk, dirs)
        folder = self.rng.choice(dirs)
        parents = [d for d in [self.root, *dirs] if d != folder and folder not in d.parents]
        target = self.rng.choice(parents) / f"moved-{self.rng.randrange(1_000_000)}"
        moved = [p for p in files if folder in p.parents]
        os.rename(folder, target)
        self._touch(*moved, *(target / p.relative_to(folder) for p in moved))

    def nested(self, files, junk, dirs) -> None:
        base = self._folder(dirs)
        depth = self.rng.randrange(1, 4)
        folder = base.joinpath(*(f"d{self.rng.randrange(1000)}" for _ in range(depth)))
        folder.mkdir(parents=True, exist_ok=True)
        for _ in range(self.rng.randrange(1, 4)):
            path = folder / self._name()
            path.write_text(self._text())
            self._touch(path)

    def delete_folder(self, files, junk, dirs) -> None:
        if dirs:
            folder = self.rng.choice(dirs)
            self._touch(*(p for p in files if folder in p.parents))
            shutil.rmtree(folder)

    def symlink(self, files, junk, dirs) -> None:
        folder = self._folder(dirs)
        siblings = [p.name for p in files if p.parent == folder]
        target = self.rng.choice(siblings) if siblings and self.rng.random() < 0.8 else "missing.md"
        path = folder / self._name()
        os.symlink(target, path)
        self._touch(path)

    def chmod(self, files, junk, dirs) -> None:
        regular = [p for p in files if not p.is_symlink()]
        if regular:
            path = self.rng.choice(regular)
            path.chmod(path.stat().st_mode ^ 0o100)
            self._touch(path)

    def temp_file(self, files, junk, dirs) -> None:
        """Editor leftovers: never committed, whatever happens."""
        if junk and self.rng.random() < 0.4:
            victim = self.rng.choice(junk)
            if victim.name not in (".gitkeep", ".gitignore"):  # the ignore rules are the soak's own
                victim.unlink()
            return
        folder = self._folder(dirs)
        name = self.rng.choice(
            [
                ".x.md.swp",
                "x.md~",
                "draft.tmp",
                "4913",
                ".#lock.md",
                "#auto.md#",
                "notes.txt",
                "y.md___jb_tmp___",
            ]
        )
        (folder / name).write_text("temp\n")

    OPS: ClassVar[dict[str, float]] = {
        "write_new": 3,
        "rewrite": 5,
        "revert": 1,
        "delete": 2,
        "rename": 2,
        "move_folder": 1,
        "nested": 1,
        "delete_folder": 0.3,
        "symlink": 0.5,
        "chmod": 0.5,
        "temp_file": 1,
    }

    def random_op(self) -> str:
        files, junk, dirs = self._walk()
        names = list(self.OPS)
        weights = [self.OPS[n] for n in names]
        if len(files) > MAX_FILES:
            leaning = ("delete", "delete_folder")
            weights = [w * (6 if n in leaning else 1) for n, w in zip(names, weights, strict=True)]
        op = self.rng.choices(names, weights)[0]
        getattr(self, op)(files, junk, dirs)
        self.stats.ops += 1
        return op

    def run(self, count: int, *, pause: float = 0.0) -> list[str]:
        """`count` operations; between them, now and then, a pause of up to `pause` s."""
        done = []
        for _ in range(count):
            done.append(self.random_op())
            if pause and self.rng.random() < 0.3:
                time.sleep(self.rng.uniform(0, pause))
        return done


class Soak:
    """The soak on one world; `run()` returns the stats (violations included)."""

    def __init__(
        self,
        root: Path,
        *,
        seed: int,
        iterations: int,
        keep_going: bool = False,
        fsck_every: int = 10,
        say: Callable[[str], None] = print,
        report_every: int = 10,
    ) -> None:
        self.world = World.create(root, push=True)
        self.log_path = root / "soak.log"
        self.seed = seed
        self.iterations = iterations
        self.keep_going = keep_going
        self.fsck_every = fsck_every
        self._say = say
        self.report_every = report_every
        self.stats = Stats()
        self.checker = Checker(self.world, fsck=False)
        self.daemon: Daemon | None = None
        self.config = self.world.config(debounce=DEBOUNCE)
        self.rules = Rules()  # the config's globs and the ignore files in force
        self.ignore_oracle = IgnoreOracle(root.parent / "ignore-oracle")
        self.verified_head = self.world.head()  # every commit up to here obeyed its rules
        self._transition: Transition | None = None

    def say(self, text: str) -> None:
        """Report a line, and keep it in `<root>/soak.log` next to the repository."""
        with self.log_path.open("a") as fh:
            fh.write(text + "\n")
        self._say(text)

    # -- the daemon ----------------------------------------------------------------------

    def _start(self, crash_at: str | None = None) -> Daemon:
        d = make_daemon(self.world, config=self.config, crash_at=crash_at)
        _write_rules(d.config_path, self.rules)
        self.daemon = d.start(wait_ready=False)
        return self.daemon

    def _stop_current(self, rng: random.Random) -> None:
        """The idle daemon goes: a clean stop (must exit 0) or kill -9."""
        d = self.daemon
        if d is None:
            return
        if d.proc.poll() is None:
            if rng.random() < 0.5:
                code = d.stop(timeout=30)
                self.stats.clean_stops += 1
                if code != 0:
                    self._violation(f"clean stop exited {code}", d)
            else:
                d.kill()
                self.stats.kills += 1
                self.stats.idle_kills += 1
        d.close()
        self.daemon = None

    def _kill_now(self, d: Daemon, what: str) -> None:
        """SIGKILL `d`; a daemon that already exited by itself is a violation."""
        code = d.proc.poll()
        if code is not None:
            self._violation(f"the daemon exited by itself with {code} before the {what} kill", d)
        else:
            d.kill()
            self.stats.kills += 1
        d.close()
        self.daemon = None

    def close(self) -> None:
        if self.daemon is not None:
            self.daemon.close()
            self.daemon = None

    # -- iterations ----------------------------------------------------------------------

    def _violation(self, text: str, daemon: Daemon | None = None) -> None:
        line = f"seed {self.seed} iteration {self.stats.iterations}: {text}"
        self.stats.violations.append(line)
        self.say("VIOLATION " + line)
        if daemon is not None:
            self.say("--- daemon log (tail):\n" + daemon.log()[-4000:])

    def iteration(self, i: int) -> None:
        rng = random.Random(f"{self.seed}:{i}")
        mutator = Mutator(self.world, rng, self.stats)
        kind = rng.choices(KINDS, [KIND_WEIGHTS[k] for k in KINDS])[0]
        live_ops = rng.randrange(1, 10)
        down_ops = rng.choice([0, 0, 1, 3])
        step, n = rng.choice(STEPS), rng.choice([1, 1, 1, 2, 3])
        delay = rng.uniform(0, DEBOUNCE * 2 + 0.3)

        if kind in LOSSLESS:
            self._lossless_fault(kind, mutator, rng, live_ops)
        elif kind == "timed":
            d = self.daemon
            assert d is not None
            mutator.run(live_ops, pause=DEBOUNCE * 2)
            time.sleep(delay)
            self._kill_now(d, "timed")
            self.stats.timed_kills += 1
        elif kind == "startup":
            self._stop_current(rng)
            mutator.run(live_ops)
            d = self._start()
            time.sleep(rng.uniform(0.2, 1.0))
            self._kill_now(d, "start-up")
            self.stats.startup_kills += 1
        else:
            self._stop_current(rng)
            mutator.run(rng.choice([0, 0, 2]))
            d = self._start(crash_at=f"{step}:{n}")
            try:
                d.ready_or_exited()
            except AssertionError as exc:
                self._violation(str(exc), d)
            mutator.run(live_ops, pause=DEBOUNCE * 2)
            code = d.wait_exit(timeout=CRASH_WAIT)
            if code is None:
                self._kill_now(d, "crash point never reached, so")
                self.stats.timed_kills += 1
            else:
                if code != -signal.SIGKILL:
                    self._violation(f"crash-point daemon ({step}:{n}) exited {code}", d)
                else:
                    self.stats.kills += 1
                    self.stats.crash_point_kills += 1
                d.close()
                self.daemon = None

        mutator.run(down_ops)
        self.recover(fsck=(i + 1) % self.fsck_every == 0)

    def _lossless_fault(self, kind: str, mutator: Mutator, rng: random.Random, ops: int) -> None:
        """A fault that kills nothing: the running daemon comes through it without a loss and
        then stops cleanly (SIGTERM, exit 0); `recover` restarts it and checks everything."""
        d = self.daemon
        assert d is not None
        if kind == "dblock":
            self._lock_database(d, mutator, rng, ops)
        elif kind in ("ignore", "reload"):
            self._hide_then_reveal(d, kind, rng)
        elif kind == "gitignore":
            self._new_rules(d, replace(self.rules, gitignore=_random_gitignore(rng)), mutator, ops)
            self.stats.gitignore_edits += 1
        elif kind == "include":
            now = (self.rules.include, self.rules.exclude)
            include, exclude = rng.choice([v for v in GLOB_VARIANTS if v != now])
            self._new_rules(d, replace(self.rules, include=include, exclude=exclude), mutator, ops)
            self.stats.include_reloads += 1
        else:
            mutator.run(ops * 5)  # a burst, then SIGTERM at once: every save committed or pending
            self.stats.sigterm_bursts += 1
        code = d.stop(timeout=40, kill_after=True)
        self.stats.clean_stops += 1
        if code != 0:
            self._violation(f"SIGTERM after a {kind} fault exited {code}", d)
        d.close()
        self.daemon = None

    # -- changing what is wanted while the daemon runs -------------------------------------

    def _new_rules(self, d: Daemon, rules: Rules, mutator: Mutator, ops: int) -> None:
        """Put `rules` in force on the running daemon (a `.gitignore` edit, or a config with
        another `include`/`exclude` and SIGHUP) while files change; then the same daemon (no
        restart, no periodic rescan) must bring the store to what the new rules want."""
        self._change_rules(d, rules, ops=lambda: mutator.run(ops, pause=DEBOUNCE))
        mutator.run(ops, pause=DEBOUNCE)
        self._settle(d, "after the rules changed")

    def _hide_then_reveal(self, d: Daemon, kind: str, rng: random.Random) -> None:
        """An ignore rule (`.git/info/exclude`, or the config's `exclude` + SIGHUP) hides
        `held-*.md` while such files are written (they must not be committed); once the rule
        goes, the running daemon must commit them within a bounded time, with no restart
        and no periodic rescan."""
        before = self.rules
        if kind == "ignore":
            hidden = replace(before, info_exclude="held-*.md\n")
            self.stats.ignore_edits += 1
        else:
            hidden = replace(before, exclude=(*before.exclude, "held-*.md"))
            self.stats.reloads += 1
        self._change_rules(d, hidden)
        folder = self.world.repo / STORE
        for _ in range(rng.randrange(1, 4)):
            (folder / f"held-{rng.randrange(10**6)}.md").write_text(f"held {rng.random()}\n")
        self.stats.ops += 1
        time.sleep(DEBOUNCE * 4)  # time enough to commit them, if the rule were not obeyed
        self._change_rules(d, before)
        self._settle(d, f"after the {kind} rule was removed")

    def _change_rules(self, d: Daemon, rules: Rules, *, ops: Callable[[], object] | None = None) -> None:
        """Write `rules` (ignore files atomically; the config file, then SIGHUP), run `ops`
        meanwhile, and wait until the daemon says it applied them: a `reloaded` event for
        the config, a scan of the store for an ignore file. Commits logged after that must
        obey `rules`; commits before it may obey the old ones (`Transition`)."""
        old = self.rules
        pre = self.world.head()
        self._verify_commits(pre)
        mark = len(d.events())
        expect = []
        if rules.gitignore != old.gitignore:
            _write_atomically(self.world.repo / STORE / ".gitignore", rules.gitignore)
            expect.append("scan")
        if rules.info_exclude != old.info_exclude:
            _write_atomically(self.world.git_dir / "info" / "exclude", rules.info_exclude)
            expect.append("scan")
        if (rules.include, rules.exclude) != (old.include, old.exclude):
            _write_rules(d.config_path, rules)
            d.signal(signal.SIGHUP)
            expect.append("reloaded")
        self.rules = rules
        self.checker.use_rules(rules)
        if ops is not None:
            ops()

        def applied() -> tuple[int] | None:
            seen = [_marker(e) for e in d.events()[mark:]]
            if all(kind in seen for kind in expect):
                return (mark + max(seen.index(kind) for kind in expect),)
            return None

        if not expect:  # the same rules again: nothing to apply
            return
        try:
            (marker,) = wait_until(applied, timeout=30, interval=0.05)
        except WaitTimeout:
            self._violation(f"the daemon never applied the new rules ({rules.describe()})", d)
            marker = len(d.events())
        self._transition = Transition(old=old, daemon=d, marker=marker)

    def _settle(self, d: Daemon, what: str) -> None:
        """Wait (bounded) until the store is what the rules in force want, report what is
        not, and check the commits made meanwhile."""
        with contextlib.suppress(WaitTimeout):  # a store still unequal is reported below
            wait_until(lambda: not self.checker.store_equals_head(), timeout=30, interval=0.1)
        for problem in self.checker.store_equals_head():
            self._violation(f"{what} ({self.rules.describe()}): {problem}", d)
        self._verify_commits(self.world.head())

    def _verify_commits(self, upto: str | None) -> None:
        """Every commit after the last verified one up to `upto` changed only paths the rules
        in force wanted (added no path git ignores); a commit made while new rules were
        being applied (logged before the daemon said so) may obey the old rules instead."""
        if upto is None or upto == self.verified_head:
            return
        changes = commit_changes(self.world.repo, self.verified_head, upto)
        transition, self._transition = self._transition, None
        strict: set[str] = set()
        if transition is not None:
            events = transition.daemon.events()[transition.marker + 1 :]
            strict = {e.get("commit", "") for e in events if e.get("event") == "commit"}
        refused = self._refused(self.rules, changes)
        if transition is not None:
            loose = [c for c in changes if c[0] not in strict and c in refused]
            refused -= set(loose) - self._refused(transition.old, loose)
        for commit, status, path in sorted(refused, key=changes.index):
            self._violation(
                f"commit {commit[:12]} changed ({status}) {path}, which the rules in force do not "
                f"want ({self.rules.describe()})"
            )
        self.verified_head = upto

    def _refused(self, rules: Rules, changes: list[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
        """The changes `rules` do not allow: a path the config does not want, or an added path
        that the ignore files ignore (a tracked path stays tracked: git's rule)."""
        refused = {c for c in changes if not rules.config_wants(c[2])}
        added = sorted({c[2] for c in changes if c[1] == "A" and c not in refused})
        ignored = self.ignore_oracle.ignored(rules, added)
        return refused | {c for c in changes if c[1] == "A" and c[2] in ignored}

    def _lock_database(self, d: Daemon, mutator: Mutator, rng: random.Random, ops: int) -> None:
        """Write-lock state.db past the busy timeout while files change; once it is free,
        the same daemon (no restart, no rescan) must commit what was saved meanwhile."""
        holder = sqlite3.connect(self.world.db, timeout=5, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            mutator.run(ops, pause=DEBOUNCE * 2)
            time.sleep(BUSY_TIMEOUT_MS / 1000 + rng.uniform(0.5, 1.5))
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        self.stats.db_locks += 1
        if d.proc.poll() is not None:
            self._violation(f"the daemon exited {d.proc.poll()} while the database was locked", d)
            return
        # state.db may look idle before the put-back changes are recorded: wait for the store
        with contextlib.suppress(WaitTimeout):  # a store still unequal is reported below
            wait_until(lambda: not self.checker.store_equals_head(), timeout=40, interval=0.1)
        not_idle = wait_idle(self.world, timeout=40, alive=lambda: d.proc.poll() is None)
        for problem in ([not_idle] if not_idle else []) + self.checker.check():
            self._violation(f"after the database lock: {problem}", d)

    def recover(self, *, fsck: bool = False) -> None:
        """Restart without the crash variable, wait until idle, check every invariant."""
        d = self._start()
        try:
            ready = d.ready_or_exited()
        except AssertionError as exc:
            ready = False
            self._violation(str(exc), d)
        if not ready:
            self._violation(f"the restarted daemon died (exit {d.proc.poll()})", d)
            self._repair()
            return
        not_idle = wait_idle(self.world, timeout=30, alive=lambda: d.proc.poll() is None)
        self.checker.fsck = fsck
        problems = ([not_idle] if not_idle else []) + self.checker.check()
        for problem in problems:
            self._violation(problem)
        self._verify_commits(self.world.head())
        if problems:
            self.say("--- daemon log (tail):\n" + d.log()[-4000:])
            self._repair()

    def _repair(self) -> None:
        """After a reported violation with --keep-going: put things right the way a user
        would (stale locks removed, the store's index entries reset) and go on."""
        if not self.keep_going:
            return
        self.close()
        for lock in [self.world.git_dir / "index.lock", *(self.world.git_dir / "refs").rglob("*.lock")]:
            lock.unlink(missing_ok=True)
        if self.world.remote is not None:
            for lock in (self.world.remote / "refs").rglob("*.lock"):
                lock.unlink()
        git_text(self.world.repo, "reset", "-q", "--", STORE)
        self._start()
        self.daemon.ready_or_exited()
        wait_idle(self.world, timeout=30)
        self.checker = Checker(self.world, fsck=False, rules=self.rules)
        self.verified_head = self.world.head()

    def run(self) -> Stats:
        self.say(f"soak: seed {self.seed}, {self.iterations} iterations, repository {self.world.repo}")
        try:
            self.recover(fsck=True)
            for i in range(self.iterations):
                if self.stats.violations and not self.keep_going:
                    break
                self.iteration(i)
                self.stats.iterations += 1
                if self.report_every and self.stats.iterations % self.report_every == 0:
                    self.say(self.stats.line())
            if not self.stats.violations or self.keep_going:
                self.checker.fsck = True
                for problem in self.checker.check():
                    self._violation(f"final check: {problem}")
                self._stop_current(random.Random(0))
        finally:
            self.close()
        self.say(self.stats.line())
        if self.stats.violations:
            self.say(
                f"violations found; replay with: python bench/soak.py --seed {self.seed} "
                f"--iterations {self.iterations}"
            )
        return self.stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--seed", type=int, default=None, help="default: a random one (printed)")
    parser.add_argument(
        "--keep-going", action="store_true", help="after a violation, repair like a user would and go on"
    )
    parser.add_argument("--keep", action="store_true", help="keep the repository afterwards")
    parser.add_argument("--dir", type=Path, default=None, help="where to build the repository")
    parser.add_argument("--report-every", type=int, default=10)
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**9)
    root = Path(tempfile.mkdtemp(prefix=f"mdbackup-soak-{seed}-", dir=args.dir))
    soak = Soak(
        root / "world",
        seed=seed,
        iterations=args.iterations,
        keep_going=args.keep_going,
        report_every=args.report_every,
        say=lambda s: print(s, flush=True),
    )
    stats = soak.run()
    failed = bool(stats.violations)
    if failed or args.keep:
        print(f"repository kept: {root}", flush=True)
    else:
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"RESULT seed={seed} iterations={stats.iterations} kills={stats.kills} "
        f"sigterm_bursts={stats.sigterm_bursts} db_locks={stats.db_locks} "
        f"ignore_edits={stats.ignore_edits} reloads={stats.reloads} "
        f"gitignore_edits={stats.gitignore_edits} include_reloads={stats.include_reloads} "
        f"faults={stats.faults} "
        f"ops={stats.ops} files={len(stats.files)} violations={len(stats.violations)}",
        flush=True,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
