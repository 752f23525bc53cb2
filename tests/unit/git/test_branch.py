"""The branch compare-and-swap against real repositories."""

from __future__ import annotations

from pathlib import Path

import pygit2
import pytest

from mdbackup.git import branch
from mdbackup.git.repo import open_repository
from tests.support.git import git


def test_checked_out_names_the_branch_and_its_commit(repo: Path) -> None:
    name, commit = branch.checked_out(open_repository(repo))
    assert name == "refs/heads/main" and commit is not None
    assert str(commit.id) == git(repo, "rev-parse", "HEAD").strip()
    git(repo, "switch", "-q", "--detach")
    with pytest.raises(branch.Detached):
        branch.checked_out(open_repository(repo))


def test_move_is_a_compare_and_swap(repo: Path) -> None:
    r = open_repository(repo)
    head = r.head.target
    tree = r.head.peel(pygit2.Commit).tree.id
    sig = pygit2.Signature("t", "t@example.com")
    new = r.create_commit(None, sig, sig, "m", tree, [head])
    other = r.create_commit(None, sig, sig, "o", tree, [head])
    assert branch.move(r, Path(r.path), "refs/heads/main", old=other, new=new) is False
    assert r.references["refs/heads/main"].target == head
    assert branch.move(r, Path(r.path), "refs/heads/main", old=head, new=new) is True
    assert git(repo, "rev-parse", "main").strip() == str(new)
    assert not (repo / ".git/mdbackup/writing").exists()


def test_a_held_branch_lock_is_busy_and_kept(repo: Path) -> None:
    r = open_repository(repo)
    lock = repo / ".git/refs/heads/main.lock"
    lock.write_text("")
    head = r.head.target
    with pytest.raises(branch.BranchLocked):
        branch.move(r, Path(r.path), "refs/heads/main", old=head, new=head)
    assert lock.exists()
