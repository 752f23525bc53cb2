"""The crash-safety invariants, checked with the git CLI and a read-only look at state.db.

Independent of the daemon's code on purpose: which paths belong to the store is
decided here from the contract (`**/*.md`, not an editor temp file), not with
`mdbackup.patterns`, and everything about git is read with the `git` binary, so a
bug in the daemon's own helpers cannot hide itself.

Use: `World.create(root)` builds a repository with a store, a staged file of the
user's outside the store, an unstaged edit outside the store and (with push) a
bare remote; `wait_idle(world)` waits until the daemon has nothing left to do;
`Checker(world).check()` returns the list of violations (empty: all hold).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.cli import mdbackup
from tests.support.daemon import Daemon, watch_config
from tests.support.git import init_repo
from tests.support.rules import STORE, Rules, check_ignore
from tests.support.wait import WaitTimeout, wait_until

BRANCH = "main"
REMOTE = "origin"
STAGED_PATH = "src/staged.txt"
STAGED_CONTENT = b"the user's own staged change, never ours to commit\n"
README_EDIT = b"an unstaged edit outside the store\n"
DEFAULT_RULES = Rules()


def is_store_file(path: str) -> bool:
    """`path` (repo-relative) is one the daemon must back up under the default config: under
    the store, `*.md`, not a temp file, not in `.git` (ignore files aside)."""
    return DEFAULT_RULES.config_wants(path)


def blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def run_git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    """The git CLI on `repo`, bytes out, with no repository-scoped variables from the caller
    and no optional locks (it must never take index.lock under the daemon's feet)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["GIT_OPTIONAL_LOCKS"] = "0"
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, env=env, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} in {repo} failed: {result.stderr.decode()}")
    return result


def git_text(repo: Path, *args: str, check: bool = True) -> str:
    return run_git(repo, *args, check=check).stdout.decode("utf-8", "surrogateescape")


@dataclass
class World:
    """A repository with a store folder, the user's own changes and maybe a bare remote."""

    root: Path
    repo: Path
    remote: Path | None
    home: Path
    staged_oid: str
    outside_tree: dict[str, str]  # HEAD's top-level entries other than the store: name -> oid

    @classmethod
    def create(cls, root: Path, *, push: bool = True) -> World:
        root.mkdir(parents=True, exist_ok=True)
        repo = init_repo(root / "repo")
        (repo / STORE).mkdir()
        home = root / "home"
        home.mkdir(exist_ok=True)
        remote = None
        if push:
            remote = root / "remote.git"
            run_git(root, "init", "-q", "--bare", "-b", BRANCH, str(remote))
            run_git(repo, "remote", "add", REMOTE, str(remote))
            run_git(repo, "push", "-q", REMOTE, f"{BRANCH}:{BRANCH}")
        staged = repo / STAGED_PATH
        staged.parent.mkdir(parents=True, exist_ok=True)
        staged.write_bytes(STAGED_CONTENT)
        run_git(repo, "add", STAGED_PATH)
        (repo / "README.txt").write_bytes(README_EDIT)
        world = cls(
            root=root,
            repo=repo,
            remote=remote,
            home=home,
            staged_oid=blob_id(STAGED_CONTENT),
            outside_tree={},
        )
        world.outside_tree = world.head_outside()
        return world

    @property
    def git_dir(self) -> Path:
        return self.repo / ".git"

    @property
    def db(self) -> Path:
        return self.git_dir / "mdbackup" / "state.db"

    def config(self, *, debounce: float = 0.15, max_delay: float = 2.0, extra: str = "") -> str:
        """The config body for `tests.support.daemon.Daemon` (store and log come from it)."""
        text = watch_config(debounce=debounce, max_delay=max_delay)
        if self.remote is not None:
            text += "[push]\nenabled = true\nretry_min = 1\nretry_max = 2\n"
        return text + extra

    def head(self) -> str | None:
        out = git_text(self.repo, "rev-parse", "--verify", "-q", f"refs/heads/{BRANCH}", check=False).strip()
        return out or None

    def remote_head(self) -> str | None:
        if self.remote is None:
            return None
        out = git_text(
            self.remote, "rev-parse", "--verify", "-q", f"refs/heads/{BRANCH}", check=False
        ).strip()
        return out or None

    def head_outside(self) -> dict[str, str]:
        entries = {}
        for line in git_text(self.repo, "ls-tree", "-z", "HEAD").split("\0"):
            if line:
                meta, name = line.split("\t", 1)
                if name != STORE:
                    entries[name] = meta.split()[2]
        return entries

    def head_store(self) -> dict[str, tuple[str, str]]:
        """HEAD's entries under the store: path -> (mode, oid)."""
        if self.head() is None:
            return {}
        entries = {}
        out = git_text(self.repo, "ls-tree", "-r", "-z", "HEAD", "--", STORE)
        for line in out.split("\0"):
            if line:
                meta, path = line.split("\t", 1)
                mode, _kind, oid = meta.split()
                entries[path] = (mode, oid)
        return entries

    def worktree_store(self, wanted: Callable[[str], bool] = is_store_file) -> dict[str, tuple[str, str]]:
        """The store's files that `wanted` accepts in the working tree, as git would store
        them: path -> (mode, oid)."""
        files = {}
        top = self.repo / STORE
        for folder, dirs, names in os.walk(top):
            dirs[:] = [d for d in dirs if d != ".git"]
            for d in list(dirs):  # a symlink to a folder is a file for git
                if os.path.islink(os.path.join(folder, d)):
                    names.append(d)
                    dirs.remove(d)
            for name in names:
                full = os.path.join(folder, name)
                rel = os.path.relpath(full, self.repo).replace(os.sep, "/")
                if not wanted(rel):
                    continue
                entry = _file_entry(full)
                if entry is not None:
                    files[rel] = entry
        return files

    def db_rows(self) -> list[tuple[str, str, str | None]]:
        """(path, status, last_error) of every row of state.db's `paths` (read-only)."""
        if not self.db.exists():
            return []
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute("SELECT path, status, last_error FROM paths").fetchall()
        finally:
            conn.close()

    def db_push(self) -> tuple[str, str | None] | None:
        """(push status, last error) from state.db, or None when there is no database yet."""
        if not self.db.exists():
            return None
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            row = conn.execute("SELECT push_status, push_last_error FROM repository").fetchone()
        finally:
            conn.close()
        return None if row is None else (row[0], row[1])


def _file_entry(full: str) -> tuple[str, str] | None:
    try:
        st = os.lstat(full)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return "120000", blob_id(os.fsencode(os.readlink(full)))
    if not stat.S_ISREG(st.st_mode):
        return None
    with open(full, "rb") as fh:
        data = fh.read()
    return ("100755" if st.st_mode & stat.S_IXUSR else "100644"), blob_id(data)


# -- driving the daemon ---------------------------------------------------------------------


def make_daemon(world: World, *, config: str | None = None, crash_at: str | None = None) -> Daemon:
    """A `Daemon` (not started) on the world's store; `crash_at` sets MDBACKUP_CRASH_AT."""
    env = {"MDBACKUP_CRASH_AT": crash_at} if crash_at else {}
    return Daemon(repo=world.repo, home=world.home, config=config or world.config(), store=STORE, env=env)


def run_once(world: World) -> int:
    """`mdbackup --once` on the world with its daemon config; returns the exit code."""
    daemon = make_daemon(world)  # only for its config file
    try:
        return mdbackup(
            "--once", cwd=world.repo, home=world.home, env={"MDBACKUP_CONFIG": str(daemon.config_path)}
        ).code
    finally:
        daemon.close()


# -- waiting until the daemon has nothing left to do ---------------------------------------


def idle_state(world: World) -> tuple[bool, str]:
    """(idle?, what is still going on) from state.db: nothing pending or queued and,
    with push, the push recorded as done."""
    try:
        rows = world.db_rows()
        push = world.db_push()
    except sqlite3.Error as exc:
        return False, f"state.db unreadable: {exc}"
    busy = [(p, s) for p, s, _e in rows if s in ("pending", "queued")]
    if busy:
        return False, f"{len(busy)} paths pending/queued: {busy[:5]}"
    if world.remote is not None and (push is None or push[0] != "success"):
        return False, f"push state {push}"
    return True, "idle"


def status_json(world: World, config_path: Path) -> dict:
    """`mdbackup status --json`, run as a user would."""
    result = mdbackup(
        "status", "--json", cwd=world.repo, home=world.home, env={"MDBACKUP_CONFIG": str(config_path)}
    )
    if result.code not in (0, 1):
        raise AssertionError(f"status --json exited {result.code}: {result.err}")
    return result.json()


def wait_idle(
    world: World,
    *,
    timeout: float = 30.0,
    config_path: Path | None = None,
    alive: Callable[[], bool] | None = None,
) -> str | None:
    """Poll (bounded) until the daemon is idle. Returns None when idle, else why not.

    With `config_path`, idleness is confirmed by `mdbackup status --json` as well
    (0 pending, 0 queued, push not pending). `alive`: a daemon that died while we
    waited is reported at once.
    """
    why = "never looked"
    died = False

    def settled() -> bool:
        nonlocal why, died
        if alive is not None and not alive():
            died = True
            return True
        idle, why = idle_state(world)
        if idle and config_path is not None:
            doc = status_json(world, config_path)
            counts, push = doc["counts"], doc["push"]
            if counts["pending"] or counts["queued"]:
                idle, why = False, f"status --json: {counts}"
            elif push["enabled"] and push["status"] != "success":
                idle, why = False, f"status --json push: {push}"
        return idle

    try:
        wait_until(settled, timeout=timeout, interval=0.05)
    except WaitTimeout:
        return f"not idle after {timeout}s: {why}"
    return f"the daemon exited while we waited for idle ({why})" if died else None


# -- the invariants ----------------------------------------------------------------------------


@dataclass
class Checker:
    """Checks every invariant of a recovered, idle repository; remembers the remote's
    history between checks to see it never rewinds."""

    world: World
    fsck: bool = True
    remote_seen: list[str] = field(default_factory=list)
    rules: Rules = DEFAULT_RULES
    """The config's globs and the ignore files in force now (the soak changes them)."""
    earlier_rules: list[Rules] = field(default_factory=list)
    """Rules in force before: HEAD may keep a path committed while one of them wanted it."""

    def __post_init__(self) -> None:
        first = self.world.remote_head()
        if first:
            self.remote_seen.append(first)

    def use_rules(self, rules: Rules) -> None:
        """From now on `rules` decide what is wanted (the old ones are remembered)."""
        if rules != self.rules:
            self.earlier_rules.append(self.rules)
            self.rules = rules

    def check(self) -> list[str]:
        """Every violated invariant, one line each (empty: all hold)."""
        problems: list[str] = []
        for check in (
            self.branch_checked_out,
            self.store_equals_head,
            self.git_status_clean,
            self.no_empty_commits,
            self.user_changes_kept,
            self.no_locks_left,
            self.database_agrees,
            self.remote_follows,
            self.objects_sound,
        ):
            try:
                problems.extend(check())
            except AssertionError as exc:  # a git command failed: that is a finding too
                problems.append(f"{check.__name__}: {exc}")
        return problems

    def branch_checked_out(self) -> list[str]:
        ref = git_text(self.world.repo, "symbolic-ref", "-q", "HEAD", check=False).strip()
        if ref != f"refs/heads/{BRANCH}":
            return [f"HEAD is not on {BRANCH}: {ref or 'detached'}"]
        return []

    def store_equals_head(self) -> list[str]:
        """Nothing lost: every wanted store file's content (and mode) in HEAD is the working
        tree's; nothing else under the store (temp files) was ever committed.

        Wanted: the config in force wants it (`Rules.config_wants`), and it is tracked (in
        HEAD) or git does not ignore it (`git check-ignore` on the repository: .gitignore
        and .git/info/exclude as they are now). A path the config no longer wants may stay
        in HEAD as it was committed while wanted (the soak checks each commit for that)."""
        rules = self.rules
        head = self.world.head_store()
        tree = self.world.worktree_store(rules.config_wants)
        ignored = check_ignore(self.world.repo, sorted(p for p in tree if p not in head))
        problems = []
        for path in sorted(set(head) | set(tree)):
            if not rules.config_wants(path):
                if not any(r.config_wants(path) for r in self.earlier_rules):
                    problems.append(f"HEAD holds a path that is not a store file: {path}")
            elif path not in head:
                if path not in ignored:
                    problems.append(f"lost: {path} is in the working tree but not in HEAD")
            elif path not in tree:
                problems.append(f"lost: {path} was deleted but HEAD still has it")
            elif head[path] != tree[path]:
                problems.append(f"lost: {path} in HEAD is {head[path]}, working tree {tree[path]}")
        return problems

    def git_status_clean(self) -> list[str]:
        """`git status` shows no store path as changed, staged or untracked."""
        out = git_text(
            self.world.repo, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", STORE
        )
        problems = []
        entries = out.split("\0")
        i = 0
        while i < len(entries):
            entry = entries[i]
            i += 1
            if not entry:
                continue
            code, path = entry[:2], entry[3:]
            if code[0] in "RC":
                i += 1  # the rename's source follows
            if self.rules.config_wants(path):
                problems.append(f"git status shows {code!r} for {path}")
        return problems

    def no_empty_commits(self) -> list[str]:
        """No commit whose tree is its parent's (an empty or doubled commit)."""
        trees: dict[str, str] = {}
        parents: dict[str, list[str]] = {}
        for line in git_text(self.world.repo, "log", "--format=%H %T %P", BRANCH).splitlines():
            commit, tree, *ps = line.split()
            trees[commit] = tree
            parents[commit] = ps
        return [
            f"empty commit {c[:12]}: its tree is its parent's"
            for c, ps in parents.items()
            if len(ps) == 1 and trees.get(ps[0]) == trees[c]
        ]

    def user_changes_kept(self) -> list[str]:
        """The user's staged file is still staged, unchanged and not committed; nothing
        outside the store was committed."""
        problems = []
        staged = git_text(self.world.repo, "ls-files", "-s", "--", STAGED_PATH).split()
        if len(staged) < 2 or staged[1] != self.world.staged_oid:
            problems.append(f"the user's staged {STAGED_PATH} changed in the index: {staged}")
        if run_git(self.world.repo, "cat-file", "-e", f"HEAD:{STAGED_PATH}", check=False).returncode == 0:
            problems.append(f"the user's staged {STAGED_PATH} was committed")
        outside = self.world.head_outside()
        if outside != self.world.outside_tree:
            problems.append(f"HEAD changed outside the store: {self.world.outside_tree} -> {outside}")
        if (self.world.repo / "README.txt").read_bytes() != README_EDIT:
            problems.append("the user's unstaged edit of README.txt changed")
        return problems

    def no_locks_left(self) -> list[str]:
        """No git lock file left behind in the repository or the remote."""
        problems = []
        for git_dir in (self.world.git_dir, self.world.remote):
            if git_dir is None:
                continue
            for name in ("index.lock", "HEAD.lock", "packed-refs.lock", "config.lock"):
                if (git_dir / name).exists():
                    problems.append(f"lock left: {git_dir / name}")
            for lock in (git_dir / "refs").rglob("*.lock"):
                problems.append(f"lock left: {lock}")
        return problems

    def database_agrees(self) -> list[str]:
        """state.db agrees with git: nothing pending, queued or failed once idle, and no
        path `success` whose working-tree content differs from HEAD."""
        head = self.world.head_store()
        problems = []
        for path, status, error in self.world.db_rows():
            if status in ("pending", "queued"):
                problems.append(f"db: {path} still {status} when idle")
            elif status == "failed":
                problems.append(f"db: {path} failed: {error}")
            elif status == "success":
                now = _file_entry(str(self.world.repo / path))
                if now != head.get(path):
                    problems.append(
                        f"db: {path} is success but HEAD has {head.get(path)}, working tree {now}"
                    )
        push = self.world.db_push()
        if self.world.remote is not None and (push is None or push[0] != "success"):
            problems.append(f"db: push state {push} when idle")
        return problems

    def remote_follows(self) -> list[str]:
        """With push: the remote branch is the local branch, and it only ever moved forward."""
        if self.world.remote is None:
            return []
        remote, local = self.world.remote_head(), self.world.head()
        problems = []
        if remote != local:
            problems.append(f"remote {BRANCH} is {remote}, local is {local}")
        if remote is not None:
            if self.remote_seen and self.remote_seen[-1] != remote:
                previous = self.remote_seen[-1]
                ancestor = run_git(
                    self.world.remote, "merge-base", "--is-ancestor", previous, remote, check=False
                ).returncode
                if ancestor != 0:
                    problems.append(f"remote rewound: {previous[:12]} is not an ancestor of {remote[:12]}")
            if not self.remote_seen or self.remote_seen[-1] != remote:
                self.remote_seen.append(remote)
        return problems

    def objects_sound(self) -> list[str]:
        """`git fsck`: every object and ref readable (dangling objects are expected)."""
        if not self.fsck:
            return []
        result = run_git(self.world.repo, "fsck", "--no-dangling", "--no-progress", check=False)
        if result.returncode != 0:
            return [f"git fsck: {result.stdout.decode()} {result.stderr.decode()}".strip()]
        return []
