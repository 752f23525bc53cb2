"""Crash safety: kill -9 at every named step of a batch, restart, and every invariant holds.

For each step in `mdbackup.crashpoints.STEPS` the daemon runs with push on and
`MDBACKUP_CRASH_AT=<step>`: it SIGKILLs itself there. Two ways to get there:
`start` (the changes were made while no daemon ran: the start-up scan reaches
every step before READY) and `running` (READY first, then the changes arrive
through the watcher). We check what the crash left (proof that it died where
asked), restart without the variable, wait until idle and check the invariants
of `tests.support.invariants`. The checker itself is shown to catch each broken invariant.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest

from mdbackup.crashpoints import BATCH_STEPS as STEPS  # a daemon without sync reaches these
from tests.support.cli import mdbackup
from tests.support.invariants import (
    BRANCH,
    STAGED_PATH,
    STORE,
    Checker,
    World,
    git_text,
    make_daemon,
    run_git,
    run_once,
    wait_idle,
)
from tests.support.wait import wait_until

BASELINE = {"a.md": "a v1\n", "b.md": "b v1\n", "sub/c.md": "c v1\n"}
# What the test changes, and what the store must hold in the end.
FINAL = {"a.md": "a v2\n", "sub/d.md": "c v1\n", "new.md": "new\n", "deep/x/y.md": "deep\n"}
PUSH_STEPS = ("push_started", "push_done")


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World.create(tmp_path / "world", push=True)


def store(world: World) -> Path:
    return world.repo / STORE


def write(world: World, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = store(world) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def baseline(world: World) -> str:
    """BASELINE committed and pushed by `mdbackup --once`; returns the commit."""
    write(world, BASELINE)
    config = make_daemon(world)  # writes the config file; never started
    try:
        result = mdbackup(
            "--once", cwd=world.repo, home=world.home, env={"MDBACKUP_CONFIG": str(config.config_path)}
        )
    finally:
        config.close()
    assert result.code == 0, result.err
    head = world.head()
    assert head is not None and world.remote_head() == head
    return head


def make_changes(world: World) -> None:
    """Modify, add, delete, rename, and a new nested folder: BASELINE becomes FINAL."""
    root = store(world)
    (root / "a.md").write_text(FINAL["a.md"])
    (root / "new.md").write_text(FINAL["new.md"])
    (root / "b.md").unlink()
    (root / "sub/c.md").rename(root / "sub/d.md")
    (root / "deep/x").mkdir(parents=True)
    (root / "deep/x/y.md").write_text(FINAL["deep/x/y.md"])


def db_statuses(world: World) -> set[str]:
    return {status for _p, status, _e in world.db_rows()}


def index_differs_in_store(world: World) -> bool:
    return bool(git_text(world.repo, "diff", "--cached", "--name-only", "--", STORE).strip())


def crash_evidence(world: World, step: str, base: str) -> list[str]:
    """What must be true right after dying at `step`: shows the step was really reached."""
    head, remote = world.head(), world.remote_head()
    statuses = db_statuses(world)
    push = world.db_push()
    expect: list[tuple[bool, str]] = []
    moved = head != base
    if step == "recorded":
        expect += [(not moved, "HEAD unmoved"), ("pending" in statuses, "a path pending")]
    elif step == "queued" or step in ("blobs_written", "tree_written"):
        expect += [
            (not moved, "HEAD unmoved"),
            ("queued" in statuses, "a path queued"),
            (not index_differs_in_store(world), "index untouched"),
        ]
    elif step in ("index_written", "commit_written"):
        expect += [
            (not moved, "HEAD unmoved"),
            ("queued" in statuses, "a path queued"),
            (not index_differs_in_store(world), "index in place untouched"),
            ((world.git_dir / "index.lock").exists(), "the new index still in index.lock"),
        ]
    elif step == "ref_moved":
        expect += [
            (moved, "HEAD moved"),
            ("queued" in statuses, "paths still queued"),
            (remote == base, "remote not pushed"),
            ((world.git_dir / "index.lock").exists(), "the new index still in index.lock"),
        ]
    elif step == "db_marked":
        expect += [
            (moved, "HEAD moved"),
            ("queued" not in statuses, "batch finished in db"),
            (remote == base, "remote not pushed"),
            (push is not None and push[0] == "pending", "push pending in db"),
        ]
    elif step == "push_started":
        expect += [(moved, "HEAD moved"), (remote == base, "remote not pushed yet")]
    elif step == "push_done":
        expect += [
            (moved, "HEAD moved"),
            (remote == head, "remote has the commit"),
            (push is not None and push[0] != "success", "push success not recorded"),
        ]
    else:
        raise AssertionError(f"no evidence known for new step {step!r}: add it here")
    return [
        f"after dying at {step}: expected {what} (head {head}, base {base}, remote "
        f"{remote}, db {statuses}, push {push})"
        for ok, what in expect
        if not ok
    ]


def recover_and_check(world: World, checker: Checker, *, expect: dict[str, str]) -> None:
    """Restart without the crash variable, wait until idle, check every invariant."""
    daemon = make_daemon(world).start(wait_ready=False)
    try:
        assert daemon.ready_or_exited(), f"restarted daemon died:\n{daemon.log()}"
        not_idle = wait_idle(
            world, timeout=30, config_path=daemon.config_path, alive=lambda: daemon.proc.poll() is None
        )
        problems = ([not_idle] if not_idle else []) + checker.check()
        assert not problems, "\n".join(problems) + f"\n--- daemon log:\n{daemon.log()}"
        files = {p.removeprefix(STORE + "/"): text for p, text in _head_texts(world).items()}
        assert files == expect
        assert daemon.stop() == 0
        assert checker.check() == []
    finally:
        daemon.close()


def _head_texts(world: World) -> dict[str, str]:
    return {path: git_text(world.repo, "show", f"HEAD:{path}") for path in world.head_store()}


@pytest.mark.parametrize("when", ["start", "running"])
@pytest.mark.parametrize("step", STEPS)
def test_kill_at_step_then_recover(world: World, step: str, when: str) -> None:
    base = baseline(world)
    checker = Checker(world)
    assert checker.check() == []
    if when == "start":
        make_changes(world)
        crash_at = step
    else:
        # The start-up push reaches the push steps once with nothing new: die at the next.
        crash_at = f"{step}:2" if step in PUSH_STEPS else step
    daemon = make_daemon(world, crash_at=crash_at).start(wait_ready=False)
    try:
        ready = daemon.ready_or_exited()
        if when == "running":
            assert ready, f"died before READY with {crash_at}:\n{daemon.log()}"
            make_changes(world)
        else:
            assert not ready, f"start-up did not reach {step}:\n{daemon.log()}"
        code = daemon.wait_exit(timeout=30)
        assert code is not None, f"never reached {crash_at}:\n{daemon.log()}"
        assert code == -signal.SIGKILL, f"exited {code}, not by SIGKILL:\n{daemon.log()}"
    finally:
        daemon.close()
    problems = crash_evidence(world, step, base)
    assert not problems, "\n".join(problems) + f"\n--- log:\n{daemon.log()}"
    recover_and_check(world, checker, expect=FINAL)


def test_kill_at_every_step_in_turn_on_one_repository(world: World) -> None:
    """The crashes pile up on one repository: each recovery starts from the last one's wreck."""
    baseline(world)
    checker = Checker(world)
    expect = dict(BASELINE)
    for i, step in enumerate(STEPS):
        name = f"turn{i}.md"
        (store(world) / name).write_text(f"{step}\n")
        (store(world) / "a.md").write_text(f"a after {step}\n")
        expect.update({name: f"{step}\n", "a.md": f"a after {step}\n"})
        daemon = make_daemon(world, crash_at=step).start(wait_ready=False)
        try:
            assert not daemon.ready_or_exited(), f"start-up did not reach {step}"
            assert daemon.wait_exit(timeout=30) == -signal.SIGKILL
        finally:
            daemon.close()
        recover_and_check(world, checker, expect=expect)


def _edit(root: Path) -> None:
    (root / "a.md").write_text("an edit undone while the daemon was down\n")


def _undo_edit(root: Path) -> None:
    (root / "a.md").write_text(BASELINE["a.md"])


def _add(root: Path) -> None:
    (root / "ghost.md").write_text("created, then deleted while the daemon was down\n")


def _undo_add(root: Path) -> None:
    (root / "ghost.md").unlink()


def _delete(root: Path) -> None:
    (root / "b.md").unlink()


def _undo_delete(root: Path) -> None:
    (root / "b.md").write_text(BASELINE["b.md"])


UNDONE = {"edit": (_edit, _undo_edit), "addition": (_add, _undo_add), "deletion": (_delete, _undo_delete)}


@pytest.mark.parametrize("undone", list(UNDONE))
@pytest.mark.parametrize("step", ["index_written", "commit_written"])
def test_kill_after_index_written_then_change_undone_while_down(world: World, step: str, undone: str) -> None:
    baseline(world)
    checker = Checker(world)
    change, undo = UNDONE[undone]
    change(store(world))
    daemon = make_daemon(world, crash_at=step).start(wait_ready=False)
    try:
        assert not daemon.ready_or_exited()
        assert daemon.wait_exit(timeout=30) == -signal.SIGKILL
    finally:
        daemon.close()
    assert (world.git_dir / "index.lock").exists() and not index_differs_in_store(world)
    undo(store(world))  # the user undoes the change before the daemon is back
    recover_and_check(world, checker, expect=BASELINE)


# -- the checker catches what it is there to catch --------------------------------------------


def _commit_tree(world: World, tree: str, message: str) -> None:
    """A commit of `tree` on the branch, made with plumbing (the user's index untouched)."""
    new = git_text(world.repo, "commit-tree", tree, "-p", "HEAD", "-m", message).strip()
    run_git(world.repo, "update-ref", f"refs/heads/{BRANCH}", new)


def _empty_commit(world: World) -> None:
    _commit_tree(world, git_text(world.repo, "rev-parse", "HEAD^{tree}").strip(), "empty")


def _allow_empty_commit(world: World) -> None:
    # --only with no paths: an empty commit that leaves the user's staged file alone.
    run_git(world.repo, "commit", "-q", "--allow-empty", "--only", "-m", "empty")


def _tree_with(world: World, path: str, content: bytes) -> str:
    """HEAD's tree with `path` set to `content`, built in a scratch index."""
    blob = (
        subprocess.run(
            ["git", "-C", str(world.repo), "hash-object", "-w", "--stdin"],
            input=content,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    env = {**os.environ, "GIT_INDEX_FILE": str(world.root / "scratch-index")}
    for args in (["read-tree", "HEAD"], ["update-index", "--add", "--cacheinfo", f"100644,{blob},{path}"]):
        subprocess.run(["git", "-C", str(world.repo), *args], check=True, env=env)
    return subprocess.run(
        ["git", "-C", str(world.repo), "write-tree"], check=True, env=env, capture_output=True, text=True
    ).stdout.strip()


def _temp_file_committed(world: World) -> None:
    _commit_tree(world, _tree_with(world, f"{STORE}/.a.md.swp", b"swap\n"), "a temp file")


def _edit_uncommitted(world: World) -> None:
    (store(world) / "a.md").write_text("never committed\n")


def _stage_store_file(world: World) -> None:
    (store(world) / "a.md").write_text("staged by hand, then changed back\n")
    run_git(world.repo, "add", f"{STORE}/a.md")
    (store(world) / "a.md").write_text("a v2\n")


def _unstage_users_file(world: World) -> None:
    run_git(world.repo, "rm", "-q", "--cached", STAGED_PATH)


def _leave_index_lock(world: World) -> None:
    (world.git_dir / "index.lock").write_bytes(b"")


def _leave_remote_ref_lock(world: World) -> None:
    assert world.remote is not None
    (world.remote / "refs/heads/main.lock").write_bytes(b"")


def _db_pending(world: World) -> None:
    with sqlite3.connect(world.db) as conn:
        conn.execute("UPDATE paths SET status = 'pending' WHERE path = ?", (f"{STORE}/b.md",))


def _db_success_but_differs(world: World) -> None:
    """The file changed and the database still calls it backed up (HEAD untouched)."""
    (store(world) / "b.md").write_text("changed behind the database's back\n")


def _remote_rewound(world: World) -> None:
    assert world.remote is not None
    run_git(
        world.remote,
        "update-ref",
        f"refs/heads/{BRANCH}",
        git_text(world.remote, "rev-parse", f"{BRANCH}~1").strip(),
    )


def _remote_behind(world: World) -> None:
    text = b"committed, never pushed\n"
    (store(world) / "a.md").write_bytes(text)
    _commit_tree(world, _tree_with(world, f"{STORE}/a.md", text), "local only")


def _detached(world: World) -> None:
    run_git(world.repo, "checkout", "-q", "--detach")


def _object_lost(world: World) -> None:
    oid = git_text(world.repo, "rev-parse", f"HEAD:{STORE}/b.md").strip()
    os.remove(world.git_dir / "objects" / oid[:2] / oid[2:])


BREAKERS = {
    "empty commit (plumbing)": (_empty_commit, "empty commit"),
    "empty commit (git commit --allow-empty)": (_allow_empty_commit, "empty commit"),
    "temp file committed": (_temp_file_committed, "not a store file"),
    "edit never committed": (_edit_uncommitted, "lost: notes/a.md"),
    "store path staged": (_stage_store_file, "git status shows"),
    "user's staged file unstaged": (_unstage_users_file, "staged src/staged.txt"),
    "index.lock left": (_leave_index_lock, "index.lock"),
    "remote ref lock left": (_leave_remote_ref_lock, "main.lock"),
    "db pending when idle": (_db_pending, "still pending"),
    "db success but content differs": (_db_success_but_differs, "db: notes/b.md is success"),
    "remote rewound": (_remote_rewound, "remote rewound"),
    "remote behind": (_remote_behind, "remote main is"),
    "detached HEAD": (_detached, "HEAD is not on main"),
    "object lost": (_object_lost, "git fsck"),
}


@pytest.mark.parametrize("breaker", list(BREAKERS))
def test_checker_catches_a_broken_invariant(world: World, breaker: str) -> None:
    baseline(world)
    checker = Checker(world)
    assert checker.check() == []  # a healthy repository passes
    # A second commit pushed, so the remote's history has something to rewind.
    (store(world) / "a.md").write_text("a v2\n")
    assert run_once(world) == 0
    assert checker.check() == []
    breaks, expected = BREAKERS[breaker]
    breaks(world)
    problems = checker.check()
    assert any(expected in p for p in problems), problems


def test_wait_idle_reports_pending_work(world: World) -> None:
    baseline(world)
    _db_pending(world)
    why = wait_idle(world, timeout=0.3)
    assert why is not None and "pending" in why


def test_checker_is_silent_on_a_healthy_repository_without_push(tmp_path: Path) -> None:
    world = World.create(tmp_path / "nopush", push=False)
    write(world, BASELINE)
    assert run_once(world) == 0
    assert Checker(world).check() == []
    shutil.rmtree(store(world) / "sub")
    assert any("lost: notes/sub/c.md" in p for p in Checker(world).check())


def test_stale_tracking_ref_lock_from_a_killed_push_does_not_fail_pushes(world: World) -> None:
    """What a kill -9 during libgit2's update of the remote-tracking ref leaves behind."""
    baseline(world)
    lock = world.git_dir / "refs/remotes/origin/main.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_bytes(b"")
    config = world.config().replace("retry_min = 1\nretry_max = 2", "retry_min = 600\nretry_max = 600")
    daemon = make_daemon(world, config=config).start(wait_ready=False)
    try:
        assert daemon.ready_or_exited()
        (store(world) / "a.md").write_text("pushed despite the stale lock\n")

        def pushed() -> bool:
            # One read of the remote's branch, then that commit's content: HEAD may move
            # between two reads, so each check must name the same commit.
            remote = world.remote_head()
            saved = git_text(world.repo, "show", f"{remote}:notes/a.md", check=False) if remote else ""
            return saved == "pushed despite the stale lock\n" and remote == world.head()

        wait_until(pushed, timeout=15, message="the remote has the commit")
        outcome = wait_until(
            lambda: state if (state := world.db_push()) is not None and state[0] != "pending" else None,
            timeout=15,
            message=lambda: f"push outcome recorded (state {world.db_push()})\n{daemon.log()}",
        )
        assert outcome[0] == "success", (
            f"the remote has the commit, yet the push state is {outcome}\n{daemon.log()}"
        )
        assert daemon.events("push_warning"), daemon.log()
    finally:
        daemon.close()
