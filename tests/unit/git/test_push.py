"""mdbackup.git.push against a bare repository on disk: fast-forward only, never forced
(SSH, smart HTTP, credentials and rejections: tests/e2e/test_push_git.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mdbackup.git.credentials import Credentials
from mdbackup.git.push import PushResult, check_remote, push_branch
from mdbackup.git.repo import open_repository
from tests.support.git import git, init_repo

NO_CREDS = Credentials(ssh_agent=False)


@pytest.fixture
def bare(repo: Path, tmp_path: Path) -> Path:
    path = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(path))
    git(repo, "remote", "add", "origin", str(path))
    return path


def push(repo: Path, *, remote: str = "origin", local: str = "main") -> PushResult:
    return push_branch(
        open_repository(repo),
        remote_name=remote,
        local_branch=local,
        remote_branch="main",
        credentials=NO_CREDS,
    )


def head(repo: Path, ref: str = "HEAD") -> str:
    return git(repo, "rev-parse", ref).strip()


def remote_head(bare: Path) -> str | None:
    return git(bare, "rev-parse", "--verify", "-q", "refs/heads/main", check=False).strip() or None


def new_commit(repo: Path, name: str) -> str:
    (repo / name).write_text(f"{name}\n")
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", name)
    return head(repo)


def test_first_push_creates_the_branch_then_nothing_is_left_to_push(repo: Path, bare: Path) -> None:
    first = push(repo)
    assert (first.ok, first.commits, first.remote_before, first.pushed_oid) == (True, 1, None, head(repo))
    assert remote_head(bare) == head(repo)
    again = push(repo)
    assert (again.ok, again.commits, again.remote_before) == (True, 0, head(repo))


def test_a_push_counts_the_commits_it_brings(repo: Path, bare: Path) -> None:
    push(repo)
    before = head(repo)
    new_commit(repo, "a.md")
    new_commit(repo, "b.md")
    result = push(repo)
    assert (result.ok, result.commits, result.remote_before) == (True, 2, before)
    assert remote_head(bare) == head(repo)
    assert head(repo, "refs/remotes/origin/main") == head(repo)  # the tracking ref follows


def test_a_diverged_remote_is_never_overwritten(repo: Path, bare: Path, tmp_path: Path) -> None:
    push(repo)
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(bare), str(other))
    git(other, "config", "user.name", "Other")
    git(other, "config", "user.email", "other@example.com")
    theirs = new_commit(other, "theirs.md")
    git(other, "push", "-q", "origin", "main")
    new_commit(repo, "ours.md")
    result = push(repo)
    assert (result.ok, result.kind, result.remote_before) == (False, "diverged", theirs)
    assert result.behind == -1  # their commit is not in our object database
    assert result.error and "diverged" in result.error
    assert remote_head(bare) == theirs


def test_no_such_remote_or_branch(repo: Path, tmp_path: Path) -> None:
    missing = push(repo, remote="nowhere")
    assert (missing.ok, missing.kind) == (False, "no-remote")
    unborn = init_repo(tmp_path / "unborn", commit=False)
    result = push(unborn, local="main")
    assert (result.ok, result.kind) == (False, "no-branch")


def test_check_remote_lists_without_pushing(repo: Path, bare: Path) -> None:
    r = open_repository(repo)
    before = check_remote(r, remote_name="origin", remote_branch="main", credentials=NO_CREDS)
    assert (before.ok, before.remote_before) == (True, None)
    assert remote_head(bare) is None
    push(repo)
    after = check_remote(r, remote_name="origin", remote_branch="main", credentials=NO_CREDS)
    assert (after.ok, after.remote_before) == (True, head(repo))


def test_a_remote_only_ahead_already_has_the_local_head(repo: Path, bare: Path, tmp_path: Path) -> None:
    """The local branch is an ancestor of the remote's (fetched): nothing to push, not a failure."""
    assert push(repo).ok
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(bare), str(other))
    git(other, "-c", "user.name=o", "-c", "user.email=o@e", "commit", "-q", "--allow-empty", "-m", "theirs")
    git(other, "push", "-q", "origin", "main")
    theirs = remote_head(bare)
    unfetched = push(repo)  # their commit is unknown here: diverged, as before
    assert (unfetched.ok, unfetched.kind) == (False, "diverged")
    git(repo, "fetch", "-q", "origin")
    result = push(repo)
    assert (result.ok, result.commits, result.remote_before) == (True, 0, theirs)
    assert remote_head(bare) == theirs
