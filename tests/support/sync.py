"""Several machines backing up one store to one bare remote with `[sync]` on: the harness of
the sync scenario tests (tests/e2e/test_sync_machines.py), the sync soak (bench/soak_sync.py)
and the sync benchmarks (bench/bench_sync.py).

A `Cluster` is a bare remote and N `Machine`s: working clones, each with its own HOME, config
and real daemon (`tests.support.daemon.Daemon`) pushing to and syncing from the remote. Like
tests/support/invariants.py, everything about git is read with the git CLI, never with the
daemon's own code.

- `Cluster.convergence()` takes one snapshot, reading every changing ref once: the remote's
  head, then each machine's head; converged when every head is the remote's head and every
  machine's store folder in the working tree is exactly that commit's (no file more, none
  less, same content and mode) and `git status` shows nothing under the store.
- `Cluster.wait_converged()` waits (bounded) for that and for every daemon's `status --json`
  to say it has nothing left to do, then checks the snapshot again: the same commit.
- `Ledger` records what each machine saved since the last convergence (written through
  `Machine.write` / `delete` / `rename`); `Ledger.lost(files)` names every saved content that
  is neither at its path, nor merged into it (a three-way `git merge-file` of the final file,
  the round's base and the saved content is clean and changes nothing), nor in a conflict
  copy `<stem>.conflict-<who>-<yyyymmddThhmmssZ><ext>` beside it (following renames).
"""

from __future__ import annotations

import calendar
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.cli import Result, mdbackup
from tests.support.daemon import Daemon, watch_config
from tests.support.invariants import blob_id, git_text, run_git
from tests.support.wait import WaitTimeout, wait_until

STORE = "notes"
BRANCH = "main"
CONFLICT_MARKERS = (b"<<<<<<< ", b"\n=======\n", b">>>>>>> ")


def conflict_pattern(path: str) -> re.Pattern[str]:
    """The names of `path`'s conflict copies (repo-relative, same folder):
    `<stem>.conflict-<host or remote short id>-<UTC yyyymmddThhmmssZ><ext>`."""
    folder, _, name = path.rpartition("/")
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:  # no extension
        stem, ext = name, ""
    else:
        ext = "." + ext
    prefix = re.escape(f"{folder}/" if folder else "")
    return re.compile(
        rf"^{prefix}{re.escape(stem)}\.conflict-(?P<who>[^/]+)-(?P<stamp>\d{{8}}T\d{{6}}Z){re.escape(ext)}$"
    )


def conflict_copies(files: Iterable[str], path: str) -> list[str]:
    """The conflict copies of `path` among `files` (sorted)."""
    pattern = conflict_pattern(path)
    return sorted(f for f in files if pattern.match(f))


def is_conflict_copy(path: str) -> bool:
    return re.search(r"\.conflict-[^/]+-\d{8}T\d{6}Z(\.[^./]*)?$", path) is not None


# -- reading git ------------------------------------------------------------------------------


def ref(repo: Path, name: str = f"refs/heads/{BRANCH}") -> str | None:
    """A ref's commit id, read once (None when it does not exist)."""
    out = git_text(repo, "rev-parse", "--verify", "-q", name, check=False).strip()
    return out or None


def tree_entries(repo: Path, commit: str, folder: str = STORE) -> dict[str, tuple[str, str]]:
    """`commit`'s entries under `folder`: path -> (mode, blob id)."""
    entries = {}
    for line in git_text(repo, "ls-tree", "-r", "-z", commit, "--", folder).split("\0"):
        if line:
            meta, path = line.split("\t", 1)
            mode, _kind, oid = meta.split()
            entries[path] = (mode, oid)
    return entries


def read_blobs(repo: Path, oids: Iterable[str]) -> dict[str, bytes]:
    """Blob id -> content, with one `git cat-file --batch`."""
    wanted = sorted(set(oids))
    if not wanted:
        return {}
    proc = run_git_input(repo, ("cat-file", "--batch"), ("\n".join(wanted) + "\n").encode())
    blobs: dict[str, bytes] = {}
    data, pos = proc, 0
    for oid in wanted:
        end = data.index(b"\n", pos)
        header = data[pos:end].split()
        size = int(header[2])
        blobs[oid] = data[end + 1 : end + 1 + size]
        pos = end + 1 + size + 1
    return blobs


def run_git_input(repo: Path, args: tuple[str, ...], stdin: bytes) -> bytes:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["GIT_OPTIONAL_LOCKS"] = "0"
    result = subprocess.run(
        ["git", "-C", str(repo), *args], input=stdin, capture_output=True, env=env, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} in {repo} failed: {result.stderr.decode()}")
    return result.stdout


def commit_files(repo: Path, commit: str, folder: str = STORE) -> dict[str, bytes]:
    """`commit`'s files under `folder`: path -> content."""
    entries = tree_entries(repo, commit, folder)
    blobs = read_blobs(repo, (oid for _mode, oid in entries.values()))
    return {path: blobs[oid] for path, (_mode, oid) in entries.items()}


def is_ancestor(repo: Path, older: str, newer: str) -> bool:
    return run_git(repo, "merge-base", "--is-ancestor", older, newer, check=False).returncode == 0


def parents(repo: Path, commit: str) -> list[str]:
    return git_text(repo, "rev-list", "--parents", "-n", "1", commit).split()[1:]


def worktree_entries(repo: Path, folder: str = STORE) -> dict[str, tuple[str, str]]:
    """EVERY file under `folder` in the working tree (not only store files: a temp file left
    by an update counts), as git would store it: path -> (mode, blob id)."""
    files: dict[str, tuple[str, str]] = {}
    top = repo / folder
    for here, dirs, names in os.walk(top):
        for d in list(dirs):
            if os.path.islink(os.path.join(here, d)):
                names.append(d)
                dirs.remove(d)
        for name in names:
            full = os.path.join(here, name)
            rel = os.path.relpath(full, repo).replace(os.sep, "/")
            try:
                st = os.lstat(full)
                if stat.S_ISLNK(st.st_mode):
                    files[rel] = ("120000", blob_id(os.fsencode(os.readlink(full))))
                elif stat.S_ISREG(st.st_mode):
                    with open(full, "rb") as fh:
                        data = fh.read()
                    files[rel] = ("100755" if st.st_mode & stat.S_IXUSR else "100644", blob_id(data))
                else:
                    files[rel] = ("other", "")
            except FileNotFoundError:
                continue
    return files


def status_lines(repo: Path, folder: str = STORE) -> list[str]:
    """`git status --porcelain` under `folder` (untracked files too), no optional locks."""
    out = git_text(repo, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", folder)
    return [entry for entry in out.split("\0") if entry]


def merged_in(final: bytes, base: bytes, saved: bytes) -> bool:
    """`saved`'s change from `base` is already in `final`: a three-way merge of `saved` into
    `final` over `base` is clean and gives `final` back."""
    if saved in (final, base):
        return True
    with tempfile.TemporaryDirectory(prefix="mdbackup-merged-in-") as tmp:
        paths = []
        for name, data in (("final", final), ("base", base), ("saved", saved)):
            path = Path(tmp, name)
            path.write_bytes(data)
            paths.append(str(path))
        result = subprocess.run(
            ["git", "merge-file", "-p", "--quiet", *paths], capture_output=True, check=False
        )
    return result.returncode == 0 and result.stdout == final


# -- what each machine saved --------------------------------------------------------------


@dataclass
class Ledger:
    """What every machine saved since `base` (the store's files when all last converged)."""

    base: dict[str, bytes] = field(default_factory=dict)
    saved: dict[tuple[str, str], bytes | None] = field(default_factory=dict)  # (machine, path)
    origin: dict[tuple[str, str], str] = field(default_factory=dict)  # rename target -> source
    renamed: dict[str, set[str]] = field(default_factory=dict)  # source -> every rename target

    def restart(self, base: Mapping[str, bytes]) -> None:
        """A new round from the converged files `base`."""
        self.base = dict(base)
        self.saved.clear()
        self.origin.clear()
        self.renamed.clear()

    def touched(self) -> set[str]:
        return {path for _machine, path in self.saved}

    def _candidates(self, machine: str, path: str) -> tuple[str, list[str]]:
        """(the source this content came from, the paths where it may now be)."""
        source = self.origin.get((machine, path), path)
        paths = [path, source]
        todo = [source, path]
        while todo:  # renames of renames, by any machine
            for target in sorted(self.renamed.get(todo.pop(), ())):
                if target not in paths:
                    paths.append(target)
                    todo.append(target)
        return source, paths

    def lost(self, files: Mapping[str, bytes]) -> list[str]:
        """Every saved content that `files` (the converged store) lost, one line each."""
        problems = []
        for (machine, path), content in sorted(self.saved.items()):
            if content is None:
                if path in files and not self._kept_by_another(machine, path):
                    problems.append(f"{machine} deleted {path}; no one else changed it, yet it is back")
                continue
            source, paths = self._candidates(machine, path)
            base = self.base.get(source, b"")
            places = [p for c in paths for p in (c, *conflict_copies(files, c)) if p in files]
            if not any(files[p] == content or merged_in(files[p], base, content) for p in places):
                what = f"{machine}'s last save of {path} ({_short(content)})"
                problems.append(f"lost: {what} is at none of {places or paths}")
        for path, data in sorted(files.items()):
            if any(marker in data for marker in CONFLICT_MARKERS) and not any(
                marker in self.base.get(path, b"") for marker in CONFLICT_MARKERS
            ):
                problems.append(f"conflict markers in {path}")
        return problems

    def _kept_by_another(self, machine: str, path: str) -> bool:
        """Another machine saved content at `path` (modify/delete keeps the modified file)
        or renamed something onto it."""
        return any(p == path and m != machine and c is not None for (m, p), c in self.saved.items()) or any(
            path in targets for targets in self.renamed.values()
        )


def _short(data: bytes) -> str:
    text = data.decode("utf-8", "replace")
    return repr(text if len(text) <= 60 else text[:57] + "...")


# -- machines -------------------------------------------------------------------------------


def sync_config(
    *,
    name: str,
    debounce: float = 0.2,
    max_delay: float = 5.0,
    interval: float = 1,
    sync: bool = True,
    push: bool = True,
    extra: str = "",
) -> str:
    """A machine's config body (after `[store]` and `[log]`): push and sync on, fast retries,
    an author email naming the machine (as on separate hosts)."""
    text = watch_config(debounce=debounce, max_delay=max_delay)
    text += f"[push]\nenabled = {str(push).lower()}\nretry_min = 1\nretry_max = 2\n"
    text += f"[sync]\nenabled = {str(sync).lower()}\ninterval = {interval}\n"
    text += f'[commit]\nauthor_email = "mdbackup@{name}"\n'
    return text + extra


@dataclass
class Machine:
    """One working clone with its HOME and daemon; edits go through `write`/`delete`/`rename`
    so the ledger knows the last saved content of every path."""

    name: str
    repo: Path
    home: Path
    config: str
    ledger: Ledger
    env: dict[str, str] = field(default_factory=dict)
    daemon: Daemon | None = None
    past: list[Daemon] = field(default_factory=list)
    reflog_seen: int = 0

    # -- the daemon --------------------------------------------------------------------------

    def start(self, *, wait_ready: bool = True, crash_at: str | None = None) -> Daemon:
        """Start this machine's daemon (a previous one must be gone)."""
        assert self.daemon is None or self.daemon.proc is None or self.daemon.proc.poll() is not None
        if self.daemon is not None:
            self.daemon.close()
        env = dict(self.env)
        if crash_at:
            env["MDBACKUP_CRASH_AT"] = crash_at
        self.daemon = Daemon(repo=self.repo, home=self.home, config=self.config, store=STORE, env=env)
        self.past.append(self.daemon)
        return self.daemon.start(wait_ready=wait_ready)

    def running(self) -> bool:
        return self.daemon is not None and self.daemon.proc is not None and self.daemon.proc.poll() is None

    def stop(self) -> int | None:
        """SIGTERM and wait; the exit code (None when none was running)."""
        if not self.running():
            return None
        assert self.daemon is not None
        return self.daemon.stop(timeout=60)

    def kill(self) -> None:
        if self.daemon is not None and self.daemon.proc is not None:
            self.daemon.kill()

    def close(self) -> None:
        for d in self.past:
            d.close()

    def log_tail(self, chars: int = 3000) -> str:
        return self.daemon.log()[-chars:] if self.daemon is not None else "(no daemon)"

    # -- the user's edits ----------------------------------------------------------------------

    def path(self, rel: str) -> Path:
        return self.repo / rel

    def write(self, rel: str, data: bytes | str, *, atomic: bool = False) -> None:
        """Save `rel` (repo-relative) as an editor would; recorded in the ledger."""
        raw = data.encode() if isinstance(data, str) else data
        target = self.path(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        if atomic:
            tmp = target.with_name(f".{target.name}.save.tmp")
            tmp.write_bytes(raw)
            os.replace(tmp, target)
        else:
            target.write_bytes(raw)
        self.ledger.saved[(self.name, rel)] = raw

    def read(self, rel: str) -> bytes:
        return self.path(rel).read_bytes()

    def delete(self, rel: str) -> None:
        self.path(rel).unlink()
        self.ledger.saved[(self.name, rel)] = None

    def rename(self, src: str, dst: str) -> None:
        data = self.read(src)
        self.path(dst).parent.mkdir(parents=True, exist_ok=True)
        os.rename(self.path(src), self.path(dst))
        self.ledger.saved[(self.name, src)] = None
        self.ledger.saved[(self.name, dst)] = data
        self.ledger.origin[(self.name, dst)] = self.ledger.origin.get((self.name, src), src)
        self.ledger.renamed.setdefault(src, set()).add(dst)

    def store_files(self) -> list[str]:
        """The store's files in the working tree (repo-relative, sorted)."""
        return sorted(worktree_entries(self.repo))

    # -- what it says -----------------------------------------------------------------------

    def head(self) -> str | None:
        return ref(self.repo)

    def new_branch_positions(self) -> list[str]:
        """Every commit the branch pointed at since the last call (from its reflog)."""
        log = self.repo / ".git" / "logs" / "refs" / "heads" / BRANCH
        lines = log.read_text().splitlines() if log.exists() else []
        new, self.reflog_seen = lines[self.reflog_seen :], len(lines)
        return [line.split()[1] for line in new]

    def cli(self, *args: str, config: str | None = None, timeout: float = 120.0) -> Result:
        """`mdbackup ARGS` as the user of this machine, with the daemon's config or `config`."""
        path = self.home / ("mdbackup.toml" if config is None else "other.toml")
        if config is not None or not path.exists():  # the daemon's file is what Daemon writes
            head = f'[store]\nrepo = "{self.repo}"\npath = "{STORE}"\n[log]\nformat = "json"\n'
            path.write_text(head + (self.config if config is None else config))
        env = {**self.env, "MDBACKUP_CONFIG": str(path)}
        return mdbackup(*args, cwd=self.repo, home=self.home, env=env, timeout=timeout)

    def status(self) -> dict:
        result = self.cli("status", "--json")
        if result.code not in (0, 1):
            raise AssertionError(f"{self.name}: status --json exited {result.code}: {result.err}")
        return result.json()

    def state_problem(self) -> str | None:
        """Why the daemon still has work, from a read-only look at its state.db (paths
        pending, queued or failed; push or sync state not done); None: nothing left."""
        db = self.repo / ".git" / "mdbackup" / "state.db"
        try:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
            try:
                busy = conn.execute(
                    "SELECT path, status FROM paths WHERE status IN ('pending', 'queued', 'failed')"
                ).fetchall()
                row = conn.execute("SELECT push_status, sync_status FROM repository").fetchone()
            finally:
                conn.close()
        except sqlite3.Error as exc:
            return f"state.db unreadable: {exc}"
        if busy:
            return f"paths {busy[:5]}"
        if row is None or tuple(row) != ("success", "idle"):
            return f"push, sync state {row}"
        return None

    def commit_locally(self) -> None:
        """Commit what is saved with `mdbackup --once`, push and sync off (a backup made while
        the machine was offline)."""
        result = self.cli("--once", config=sync_config(name=self.name, sync=False, push=False))
        assert result.code == 0, f"{self.name}: --once exited {result.code}: {result.err}"
        assert not status_lines(self.repo), f"{self.name}: --once left {status_lines(self.repo)}"


def _status_problem(machine: Machine) -> str | None:
    return idle_problem(machine.status())


def idle_problem(doc: Mapping) -> str | None:
    """Why `status --json` says the daemon still has work (None: nothing left)."""
    if "sync" not in doc:
        raise AssertionError(f"status --json has no `sync` block (the contract's): {sorted(doc)}")
    counts, push, sync = doc["counts"], doc["push"], doc["sync"]
    if counts["pending"] or counts["queued"] or counts["failed"]:
        return f"counts {counts}"
    if push["status"] != "success":
        return f"push {push}"
    if sync["status"] != "idle" or sync["behind"] or sync["ahead"]:
        return f"sync {sync}"
    return None


# -- the cluster ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Converged:
    """All machines and the remote agree: on `commit`, whose store entries are `entries`."""

    commit: str
    entries: tuple[tuple[str, str, str], ...]  # (path, mode, blob id), sorted


@dataclass
class Cluster:
    """A bare remote and the machines syncing through it."""

    root: Path
    remote: Path  # the bare repository (the tests read it by path)
    url: str  # what the machines' `origin` points at
    machines: list[Machine]
    ledger: Ledger
    scratch: Path | None = None
    last_remote: str | None = None  # the remote's head at the last round's end
    trees_agreed_at: float | None = None  # monotonic: when the last wait_converged first saw it

    @classmethod
    def create(
        cls,
        root: Path,
        *,
        machines: int = 2,
        files: Mapping[str, bytes | str] | None = None,
        remote: Path | None = None,
        url: str | None = None,
        env: Mapping[str, str] | None = None,
        **config: object,
    ) -> Cluster:
        """A bare remote (or `remote`, already initialised, reached as `url`) holding one
        commit (README.txt outside the store and `files`, `{"notes/a.md": ...}`), and
        `machines` clones named m0, m1, ... (daemons not started). `config`: `sync_config`'s
        keywords (e.g. `interval=1`, `extra=auth_table`)."""
        root.mkdir(parents=True, exist_ok=True)
        if remote is None:
            remote = root / "remote.git"
            run_git(root, "init", "-q", "--bare", "-b", BRANCH, str(remote))
        seed = root / "seed"
        run_git(root, "init", "-q", "-b", BRANCH, str(seed))
        _identity(seed, "seed")
        (seed / "README.txt").write_text("outside the store\n")
        (seed / STORE).mkdir()
        (seed / STORE / "index.md").write_text("# notes\n")  # the store folder exists in every clone
        for rel, data in (files or {}).items():
            _put(seed / rel, data)
        run_git(seed, "add", "-A")
        run_git(seed, "commit", "-q", "-m", "seed")
        run_git(seed, "push", "-q", str(remote), f"{BRANCH}:{BRANCH}")
        shutil.rmtree(seed)
        ledger = Ledger()
        cluster = cls(root=root, remote=remote, url=url or str(remote), machines=[], ledger=ledger)
        for i in range(machines):
            cluster.add_machine(f"m{i}", env=env, **config)
        base = ref(remote)
        assert base is not None
        ledger.restart(commit_files(remote, base))
        cluster.last_remote = base
        return cluster

    def add_machine(self, name: str, *, env: Mapping[str, str] | None = None, **config: object) -> Machine:
        repo = self.root / name
        run_git(self.root, "clone", "-q", "--no-hardlinks", str(self.remote), str(repo))
        run_git(repo, "remote", "set-url", "origin", self.url)
        _identity(repo, name)
        home = self.root / f"home-{name}"
        home.mkdir()
        machine = Machine(
            name=name,
            repo=repo,
            home=home,
            config=sync_config(name=name, **config),  # type: ignore[arg-type]
            ledger=self.ledger,
            env=dict(env or {}),
        )
        self.machines.append(machine)
        return machine

    def start(self) -> None:
        for m in self.machines:
            m.start(wait_ready=False)
        for m in self.machines:
            assert m.daemon is not None
            m.daemon.wait_ready(timeout=60)

    def close(self) -> None:
        for m in self.machines:
            m.close()

    # -- the remote --------------------------------------------------------------------------

    def remote_head(self) -> str | None:
        return ref(self.remote)

    def remote_files(self, commit: str | None = None) -> dict[str, bytes]:
        head = commit or self.remote_head()
        assert head is not None
        return commit_files(self.remote, head)

    def push_commits(
        self, changes: Iterable[Mapping[str, bytes | str | None]], *, who: str = "elsewhere"
    ) -> str:
        """Commits made elsewhere with the git CLI (one per mapping: path -> content, None
        deletes) and pushed to the remote in one push; returns the remote's new head."""
        if self.scratch is None:
            self.scratch = self.root / "scratch"
            run_git(self.root, "clone", "-q", str(self.remote), str(self.scratch))
            _identity(self.scratch, who)
        else:
            run_git(self.scratch, "pull", "-q", "--ff-only", str(self.remote), BRANCH)
        for n, change in enumerate(changes):
            for rel, data in change.items():
                if data is None:
                    run_git(self.scratch, "rm", "-q", "--", rel)
                else:
                    _put(self.scratch / rel, data)
                    run_git(self.scratch, "add", "--", rel)
            run_git(self.scratch, "commit", "-q", "--allow-empty", "-m", f"{who} {n}")
        run_git(self.scratch, "push", "-q", str(self.remote), f"{BRANCH}:{BRANCH}")
        head = ref(self.scratch)
        assert head is not None
        return head

    # -- convergence -----------------------------------------------------------------------

    def convergence(self) -> tuple[Converged | None, str]:
        """One snapshot (each ref read once): (Converged, "") or (None, why not)."""
        remote = self.remote_head()
        heads = [(m, m.head()) for m in self.machines]
        if remote is None:
            return None, "the remote has no branch"
        apart = [f"{m.name} at {(h or 'nothing')[:12]}" for m, h in heads if h != remote]
        if apart:
            return None, f"remote at {remote[:12]}, " + ", ".join(apart)
        entries = tree_entries(self.remote, remote)
        for m in self.machines:
            tree = worktree_entries(m.repo)
            if tree != entries:
                differ = sorted(p for p in set(tree) | set(entries) if tree.get(p) != entries.get(p))
                return None, f"{m.name}'s store differs from {remote[:12]} at {differ[:6]}"
            dirty = status_lines(m.repo)
            if dirty:
                return None, f"{m.name}: git status shows {dirty[:6]}"
        flat = tuple(sorted((p, mode, oid) for p, (mode, oid) in entries.items()))
        return Converged(remote, flat), ""

    def wait_converged(self, *, timeout: float = 60.0, ask: str = "status") -> Converged:
        """Wait until all converged and every daemon says it has nothing left to do, the same
        snapshot before and after asking them: `ask` "status" (`status --json`, the contract),
        "db" (a read-only look at each state.db: much cheaper, for the soak's rounds) or
        "none". Fails with the reason and the daemons' log tails; a daemon that died fails at
        once."""
        why = "never looked"
        self.trees_agreed_at = None

        def done() -> Converged | None:
            nonlocal why
            dead = [m.name for m in self.machines if m.daemon is not None and not m.running()]
            if dead:
                raise AssertionError(f"daemons exited: {dead}\n{self.logs()}")
            snap, why = self.convergence()
            if snap is not None and self.trees_agreed_at is None:
                self.trees_agreed_at = time.monotonic()
            if snap is None or ask == "none":
                return snap
            if ask == "db":
                problems = [(m, m.state_problem()) for m in self.machines]
            else:
                with ThreadPoolExecutor(len(self.machines)) as pool:  # one status --json each, at once
                    problems = list(zip(self.machines, pool.map(_status_problem, self.machines), strict=True))
            for m, problem in problems:
                if problem:
                    why = f"{m.name} not idle: {problem}"
                    return None
            again, why = self.convergence()
            if again != snap:
                why = f"moved while the daemons were asked: {why or again}"
                return None
            return snap

        try:
            return wait_until(done, timeout=timeout, interval=0.1, message=lambda: f"convergence: {why}")
        except WaitTimeout as exc:
            raise WaitTimeout(f"{exc}\n{self.logs()}") from None

    def logs(self) -> str:
        return "\n".join(f"--- {m.name} daemon log (tail):\n{m.log_tail()}" for m in self.machines)

    def check_round(self, converged: Converged) -> list[str]:
        """Nothing saved since the last round lost, no conflict markers, every machine's
        heads since then in the remote's history; then a new round starts from here."""
        files = self.remote_files(converged.commit)
        problems = self.ledger.lost(files)
        if self.last_remote and not is_ancestor(self.remote, self.last_remote, converged.commit):
            problems.append(f"the remote rewound: {self.last_remote[:12]} is not in {converged.commit[:12]}")
        for m in self.machines:
            for head in m.new_branch_positions():
                if not is_ancestor(self.remote, head, converged.commit):
                    problems.append(f"{m.name}'s commit {head[:12]} is not in the remote's history")
        self.last_remote = converged.commit
        self.ledger.restart(files)
        return problems


def _identity(repo: Path, name: str) -> None:
    run_git(repo, "config", "user.name", f"user on {name}")
    run_git(repo, "config", "user.email", f"user@{name}")


def _put(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)


def utc_stamp_near(stamp: str, *, since: float, slack: float = 5.0) -> bool:
    """A conflict copy's `yyyymmddThhmmssZ` lies between `since` (epoch) and now (+- slack)."""
    when = calendar.timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ"))
    return since - slack <= when <= time.time() + slack
