"""Real git commands racing a long batch (20 files x 1 MB) lose nothing of the user's.

Each round writes new content into the batch's files, starts `Committer.commit_paths`
on a thread (retrying while git is busy, as the daemon does) and runs the git command
at once from the test (retrying while mdbackup holds index.lock, as a user would),
then checks the invariant. Rounds repeat so that the command lands before, inside and
after the batch's read, lock and branch move.
"""

from __future__ import annotations

import os
import random
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pygit2
import pytest

from mdbackup.git.commit import CommitResult, Committer
from mdbackup.git.repo import open_repository
from tests.support.git import git, head_files
from tests.support.invariants import run_git
from tests.support.wait import wait_until

SIG = pygit2.Signature("mdbackup test", "t@example.com")
FILES = 20
SIZE = 1 << 20
ROUNDS = int(os.environ.get("MDBACKUP_RACE_ROUNDS", "10"))
PATHS = [f"notes/f{i:02}.md" for i in range(FILES)]


def write_batch(repo: Path, round_no: int) -> dict[str, bytes]:
    contents = {}
    for i, path in enumerate(PATHS):
        line = f"round {round_no} file {i} ".encode()
        data = (line * (SIZE // len(line) + 1))[:SIZE]
        (repo / path).write_bytes(data)
        contents[path] = data
    return contents


def commit_until_done(committer: Committer, out: list[CommitResult]) -> None:
    deadline = time.monotonic() + 60
    while True:
        result = committer.commit_paths(
            PATHS, message=lambda c: "backup", author=SIG, committer=SIG, max_file_size=10 * SIZE
        )
        if result.busy is None or time.monotonic() > deadline:
            out.append(result)
            return
        time.sleep(0.02)


def git_until_done(repo: Path, *args: str) -> None:
    """Run a git command, again while index.lock is held (by us: git says so and stops)
    or the branch moved under it."""
    deadline = time.monotonic() + 60
    while True:
        done = run_git(repo, *args, check=False)
        if done.returncode == 0:
            return
        # git's own compare-and-swap on the branch ("cannot lock ref ... but expected"): the
        # branch moved under the command; git changed nothing, the user runs it again.
        # `git stash` fails SILENTLY (exit 255, no message) when it cannot take index.lock
        # for its first refresh, before it saved anything.
        silent_busy = args[0] == "stash" and not done.stderr.strip()
        retry = b"index.lock" in done.stderr or b"cannot lock ref" in done.stderr or silent_busy
        if not retry or time.monotonic() > deadline:
            raise AssertionError(f"git {' '.join(args)}: {done.stderr.decode(errors='replace')[:300]}")
        time.sleep(0.01)


def race(repo: Path, committer: Committer, command: Callable[[], None], seed: int) -> CommitResult:
    out: list[CommitResult] = []
    worker = threading.Thread(target=commit_until_done, args=(committer, out))
    worker.start()
    time.sleep(random.Random(seed).uniform(0, 0.08))  # land anywhere in the batch
    try:
        command()
    finally:
        worker.join(timeout=120)
    assert out and out[0].busy is None and out[0].refused is None, out
    assert not out[0].failed, out[0].failed
    return out[0]


def blob(repo: Path, spec: str) -> bytes:
    return run_git(repo, "cat-file", "blob", spec).stdout


def assert_consistent(repo: Path) -> None:
    """`git status` agrees with itself: the index has exactly HEAD's store entries, the
    store files equal HEAD, no lock is left."""
    assert git(repo, "status", "--porcelain", "--", "notes") == ""
    assert not (repo / ".git/index.lock").exists()
    assert not list((repo / ".git/refs").rglob("*.lock"))


@pytest.fixture
def big(repo: Path) -> Path:
    (repo / "notes").mkdir()
    write_batch(repo, -1)
    git(repo, "add", "notes")
    git(repo, "commit", "-qm", "store")
    return repo


def test_git_add_racing_a_batch_stays_staged(big: Path) -> None:
    committer = Committer(open_repository(big))
    for n in range(ROUNDS):
        contents = write_batch(big, n)
        mine = f"print({n})\n".encode()
        (big / "other.py").write_bytes(mine)
        race(big, committer, lambda: git_until_done(big, "add", "other.py"), n)
        assert blob(big, ":other.py") == mine, f"round {n}: the user's staged other.py was lost"
        assert "other.py" not in head_files(big)
        assert all(blob(big, f"HEAD:{p}") == c for p, c in contents.items()), f"round {n}"
        assert git(big, "diff", "--cached", "--name-only").split() == ["other.py"]
        assert_consistent(big)


def test_git_switch_racing_a_batch_puts_the_backup_on_the_branch_checked_out(big: Path) -> None:
    committer = Committer(open_repository(big))
    for n in range(ROUNDS):
        old = git(big, "symbolic-ref", "--short", "HEAD").strip()
        new = f"b{n}"
        git(big, "branch", new)
        tips = {old: git(big, "rev-parse", old).strip(), new: git(big, "rev-parse", new).strip()}
        contents = write_batch(big, n)
        result = race(big, committer, lambda new=new: git_until_done(big, "switch", "-q", new), n)
        assert git(big, "symbolic-ref", "--short", "HEAD").strip() == new
        assert result.commit_id is not None and result.branch in (old, new)
        other = old if result.branch == new else new
        assert git(big, "rev-parse", result.branch).strip() == result.commit_id
        assert git(big, "rev-parse", other).strip() == tips[other], f"round {n}: a backup on {other}"
        assert all(blob(big, f"{result.commit_id}:{p}") == c for p, c in contents.items())
        assert git(big, "diff", "--cached", "--name-only") == "", f"round {n}: index is not {new}'s"
        assert_consistent(big)


def test_git_commit_racing_a_batch_keeps_both_commits(big: Path) -> None:
    committer = Committer(open_repository(big))
    for n in range(ROUNDS):
        contents = write_batch(big, n)
        (big / f"user{n}.txt").write_text(f"user {n}\n")
        git(big, "add", f"user{n}.txt")
        result = race(big, committer, lambda n=n: git_until_done(big, "commit", "-qm", f"user {n}"), n)
        log = git(big, "log", "--format=%s", "-2").split("\n")[:2]
        assert sorted(log) == sorted(["backup", f"user {n}"]), f"round {n}: {log}"
        assert result.commit_id in git(big, "rev-list", "-2", "HEAD")
        assert blob(big, f"HEAD:user{n}.txt") == f"user {n}\n".encode()
        assert all(blob(big, f"HEAD:{p}") == c for p, c in contents.items()), f"round {n}"
        assert git(big, "status", "--porcelain") == ""
        assert_consistent(big)


def test_git_stash_racing_a_batch_loses_nothing(big: Path) -> None:
    (big / "src.py").write_text("x = 0\n")
    git(big, "add", "src.py")
    git(big, "commit", "-qm", "src")
    committer = Committer(open_repository(big))
    for n in range(ROUNDS):
        contents = write_batch(big, n)
        (big / "src.py").write_text(f"x = {n + 1}\n")  # the user's own unstaged work
        race(big, committer, lambda: git_until_done(big, "stash", "-q"), n)
        git_until_done(big, "stash", "pop", "-q")  # the user takes their work back
        assert (big / "src.py").read_text() == f"x = {n + 1}\n", f"round {n}: the user's work was lost"
        assert all((big / p).read_bytes() == c for p, c in contents.items()), f"round {n}"
        done: list[CommitResult] = []
        commit_until_done(committer, done)  # what the stash held is committed next time
        assert all(blob(big, f"HEAD:{p}") == c for p, c in contents.items()), f"round {n}"
        assert git(big, "status", "--porcelain") == " M src.py\n"
        assert_consistent(big)


def test_git_pull_racing_a_batch_merges_and_loses_nothing(big: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    run_git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    git(big, "remote", "add", "origin", str(remote))
    git(big, "push", "-q", "origin", "main")
    git(big, "branch", "-u", "origin/main")
    git(big, "config", "pull.rebase", "false")
    other = tmp_path / "other"
    run_git(tmp_path, "clone", "-q", str(remote), str(other))
    git(other, "config", "user.name", "Other")
    git(other, "config", "user.email", "other@example.com")
    committer = Committer(open_repository(big))
    own_races: list[int] = []
    for n in range(ROUNDS):
        (other / f"remote{n}.txt").write_text(f"remote {n}\n")
        git(other, "add", f"remote{n}.txt")
        git(other, "commit", "-qm", f"remote {n}")
        git(other, "push", "-q", "origin", "main")
        contents = write_batch(big, n)
        race(big, committer, lambda n=n: pull(big, n, own_races), n)
        assert all((big / p).read_bytes() == c for p, c in contents.items()), f"round {n}"
        files = head_files(big)
        assert files[f"remote{n}.txt"] == f"remote {n}\n", f"round {n}"
        assert all(blob(big, f"HEAD:{p}") == c for p, c in contents.items()), f"round {n}"
        assert git(big, "status", "--porcelain") == ""
        assert_consistent(big)
        git(big, "push", "-q", "origin", "main")
        git(other, "pull", "-q", "--no-edit", "origin", "main")
    print(f"git's own pull/commit race hit in rounds {own_races}")


def pull(repo: Path, n: int, own_races: list[int]) -> None:
    """`git pull`, as a user would run it while a backup commit may land.

    git's merge reads HEAD and the index BEFORE it takes index.lock. A commit landing in
    between (ours, or the user's own `git commit` from another terminal) is then
    overwritten in the index by git's stale copy, and git's fast-forward fails its own
    compare-and-swap on HEAD ("cannot lock ref 'HEAD': is at X but expected Y"), leaving
    the remote's new files staged. That is git's race, not ours (no lock can stop a
    read made without one): the commit is in HEAD and the files in the working tree,
    and the user puts the index back (`git reset -- notes`, the half-done files out)
    and pulls again.
    """
    deadline = time.monotonic() + 60
    while True:
        done = run_git(repo, "pull", "-q", "--no-edit", "origin", "main", check=False)
        if done.returncode == 0:
            return
        assert time.monotonic() < deadline, done.stderr.decode(errors="replace")[:300]
        if b"index.lock" in done.stderr:
            time.sleep(0.01)
            continue
        # git's own race: nothing is lost (the working tree has every store file, HEAD
        # or the remote each commit); the user puts the index back and pulls again.
        own_races.append(n)
        added = git(repo, "diff", "--cached", "--name-only", "--diff-filter=A").split()
        assert set(added) <= {f"remote{n}.txt"}, added  # nothing of ours or the user's involved
        if added:
            git(repo, "rm", "-q", "--cached", *added)
            for name in added:
                (repo / name).unlink()
        git(repo, "reset", "-q", "--", "notes")


def test_a_batch_in_the_tail_of_a_git_switch_waits_for_head_to_move(big: Path) -> None:
    """`git switch -c NEW START` writes START's index, releases index.lock, runs the
    reference-transaction hook for NEW, and only then moves HEAD (builtin/checkout.c:
    merge_working_tree, then update_refs_for_switch). A hook that blocks holds git in that
    window: a batch committed there must not land on the branch being left, nor put its
    entries into NEW's index; once HEAD moved, it lands on NEW."""
    git(big, "switch", "-q", "-c", "start")
    (big / "start.txt").write_text("start\n")
    git(big, "add", "start.txt")
    git(big, "commit", "-qm", "start")
    git(big, "switch", "-q", "main")
    gate = big.parent / "gate"
    gate.mkdir()
    hook = big / ".git" / "hooks" / "reference-transaction"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text(
        "#!/bin/sh\n"
        "ref=$(cat | awk '{print $3}' | sed \"s#refs/heads/##\")\n"
        f'if [ "$1" = committed ] && [ -n "$ref" ] && [ ! -e {gate}/pass ]; then\n'
        f'  touch "{gate}/held-$ref"; n=0\n'
        f'  while [ ! -e "{gate}/go-$ref" ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n+1)); done\n'
        "fi\n"
    )
    hook.chmod(0o755)
    committer = Committer(open_repository(big))
    for n in range(3):
        new = f"s{n}"
        contents = write_batch(big, n)
        tips = {"main": git(big, "rev-parse", "main").strip()}
        switching = subprocess.Popen(["git", "-C", str(big), "switch", "-q", "-c", new, "start"])
        try:
            wait_until(lambda new=new: (gate / f"held-{new}").exists(), timeout=30, message="git held")
            assert git(big, "symbolic-ref", "HEAD").strip() == "refs/heads/main"  # the window
            index = (big / ".git" / "index").read_bytes()
            for _attempt in range(3):
                held = committer.commit_paths(
                    PATHS, message=lambda c: "backup", author=SIG, committer=SIG, max_file_size=10 * SIZE
                )
                assert held.busy and held.commit_id is None, f"round {n}: committed in the window: {held}"
            assert git(big, "rev-parse", "main").strip() == tips["main"], f"round {n}: a backup on main"
            assert (big / ".git" / "index").read_bytes() == index, f"round {n}: {new}'s index was changed"
        finally:
            (gate / f"go-{new}").touch()
            assert switching.wait(timeout=60) == 0
        assert git(big, "symbolic-ref", "--short", "HEAD").strip() == new
        done: list[CommitResult] = []
        commit_until_done(committer, done)
        result = done[0]
        assert result.branch == new and result.commit_id == git(big, "rev-parse", new).strip(), result
        assert git(big, "rev-parse", "main").strip() == tips["main"]
        assert all(blob(big, f"{result.commit_id}:{p}") == c for p, c in contents.items())
        assert blob(big, f"{result.commit_id}:start.txt") == b"start\n"
        assert_consistent(big)
        (gate / "pass").touch()  # back to main without holding git
        git(big, "switch", "-q", "main")
        (gate / "pass").unlink()


def test_a_batch_in_the_tail_of_a_git_merge_waits_for_the_merge_commit(big: Path) -> None:
    """A clean `git merge` writes the merged index, releases index.lock, runs the
    pre-merge-commit hook (no MERGE_HEAD: git looks idle), and only then writes the merge
    commit and moves HEAD. A batch committed there would move the branch under git (its
    HEAD update fails) and leave the merged entries in the index: it must wait instead."""
    git(big, "switch", "-q", "-c", "side")
    (big / "side.txt").write_text("side\n")
    git(big, "add", "side.txt")
    git(big, "commit", "-qm", "side")
    git(big, "switch", "-q", "main")
    gate = big.parent / "gate"
    gate.mkdir()
    hook = big / ".git" / "hooks" / "pre-merge-commit"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text(
        f"#!/bin/sh\ntouch {gate}/held; n=0\n"
        f"while [ ! -e {gate}/go ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n+1)); done\n"
    )
    hook.chmod(0o755)
    (big / "main.txt").write_text("main\n")
    git(big, "add", "main.txt")
    git(big, "commit", "-qm", "main moves on")  # so the merge is a real merge, not a fast-forward
    committer = Committer(open_repository(big))
    contents = write_batch(big, 0)
    tip = git(big, "rev-parse", "main").strip()
    merging = subprocess.Popen(["git", "-C", str(big), "merge", "-q", "--no-edit", "side"])
    try:
        wait_until(lambda: (gate / "held").exists(), timeout=30, message="git held")
        for _attempt in range(3):
            held = committer.commit_paths(
                PATHS, message=lambda c: "backup", author=SIG, committer=SIG, max_file_size=10 * SIZE
            )
            assert held.busy and held.commit_id is None, f"committed in the merge's tail: {held}"
        assert git(big, "rev-parse", "main").strip() == tip
    finally:
        (gate / "go").touch()
        assert merging.wait(timeout=60) == 0, "git merge failed: the branch moved under it"
    merge = git(big, "rev-parse", "main").strip()
    assert git(big, "rev-parse", "main^1").strip() == tip
    done: list[CommitResult] = []
    commit_until_done(committer, done)
    assert git(big, "rev-parse", f"{done[0].commit_id}^").strip() == merge
    assert all(blob(big, f"HEAD:{p}") == c for p, c in contents.items())
    assert blob(big, "HEAD:side.txt") == b"side\n"
    assert_consistent(big)
