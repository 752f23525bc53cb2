"""mdbackup.git.fetch against a real bare remote given by path: the remote-tracking ref
moves, `peek_branch` moves none, and failures come back as results."""

from __future__ import annotations

from pathlib import Path

import pygit2
import pytest

from mdbackup.git import layout
from mdbackup.git.credentials import Credentials
from mdbackup.git.fetch import fetch_branch, peek_branch, tracking_ref
from tests.support.clones import Clones, commit_all, make_clones, push, write
from tests.support.git import git

NO_CREDS = Credentials(ssh_agent=False)


@pytest.fixture
def clones(tmp_path: Path) -> Clones:
    return make_clones(tmp_path)


def test_fetch_moves_the_tracking_ref_and_nothing_else(clones: Clones) -> None:
    write(clones.b, "notes/a.md", "from b\n")
    pushed = commit_all(clones.b)
    push(clones.b)
    repo = pygit2.Repository(str(clones.a))
    head = str(repo.head.target)
    result = fetch_branch(repo, remote_name="origin", remote_branch="main", credentials=NO_CREDS)
    assert result.ok and result.remote_oid == pushed, result
    assert git(clones.a, "rev-parse", "refs/remotes/origin/main").strip() == pushed
    assert git(clones.a, "rev-parse", "HEAD").strip() == head
    assert git(clones.a, "status", "--porcelain") == ""
    assert not (layout.state_dir(Path(repo.path)) / "writing").exists()
    assert tracking_ref("origin", "main") == result.tracking_ref


def test_peek_fetches_the_commit_without_moving_our_refs(clones: Clones) -> None:
    write(clones.b, "notes/a.md", "from b\n")
    pushed = commit_all(clones.b)
    push(clones.b)
    repo = pygit2.Repository(str(clones.a))
    before = git(clones.a, "rev-parse", "refs/remotes/origin/main").strip()
    daemons = layout.state_dir(Path(repo.path)) / "writing"  # a running daemon's marker
    daemons.parent.mkdir(parents=True, exist_ok=True)
    daemons.write_text("the daemon's\n")
    result = peek_branch(repo, remote_name="origin", remote_branch="main", credentials=NO_CREDS)
    assert daemons.read_text() == "the daemon's\n"
    assert result.ok and result.remote_oid == pushed
    assert pygit2.Oid(hex=pushed) in repo
    assert git(clones.a, "rev-parse", "refs/remotes/origin/main").strip() == before


def test_a_branch_missing_on_the_remote_is_none(clones: Clones) -> None:
    repo = pygit2.Repository(str(clones.a))
    result = fetch_branch(repo, remote_name="origin", remote_branch="nope", credentials=NO_CREDS)
    assert result.ok and result.remote_oid is None


def test_no_such_remote_and_an_unreachable_one_are_failures(clones: Clones, tmp_path: Path) -> None:
    repo = pygit2.Repository(str(clones.a))
    missing = fetch_branch(repo, remote_name="elsewhere", remote_branch="main", credentials=NO_CREDS)
    assert (missing.ok, missing.kind) == (False, "no-remote")
    git(clones.a, "remote", "add", "gone", str(tmp_path / "gone.git"))
    gone = fetch_branch(repo, remote_name="gone", remote_branch="main", credentials=NO_CREDS)
    assert not gone.ok and gone.error and "\n" not in gone.error


def test_a_fetch_head_lock_left_by_git_neither_stops_nor_fools_the_fetch(clones: Clones) -> None:
    """A killed `git fetch` left FETCH_HEAD.lock long ago: libgit2 then leaves FETCH_HEAD
    empty, but the fetch still knows the remote's commit; the lock is git's and stays."""
    write(clones.b, "notes/a.md", "from b\n")
    pushed = commit_all(clones.b)
    push(clones.b)
    lock = clones.a / ".git" / "FETCH_HEAD.lock"
    lock.write_text("")
    repo = pygit2.Repository(str(clones.a))
    for fetch in (fetch_branch, peek_branch):
        result = fetch(repo, remote_name="origin", remote_branch="main", credentials=NO_CREDS)
        assert result.ok and result.remote_oid == pushed, (fetch.__name__, result)
    assert lock.exists()
