"""mdbackup.git.local_push: fast-forward a path remote by compare-and-swap, on real bare repos."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pygit2
import pytest

from mdbackup.git import local_push
from mdbackup.git.local_push import fast_forward, push_local
from tests.support.git import git, init_repo
from tests.support.servers import init_bare, remote_ref


def commit_file(repo: Path, name: str, text: str) -> pygit2.Oid:
    (repo / name).write_text(text)
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", name)
    return pygit2.Oid(hex=git(repo, "rev-parse", "HEAD").strip())


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Path, pygit2.Repository]:
    """(bare remote with core.logAllRefUpdates, a clone of it, the clone opened with pygit2)."""
    bare = init_bare(tmp_path / "remote.git")
    git(bare, "config", "core.logAllRefUpdates", "true")
    work = init_repo(tmp_path / "work")
    return bare, work, pygit2.Repository(str(work))


def fsck(bare: Path) -> None:
    subprocess.run(
        ["git", "-C", str(bare), "fsck", "--strict", "--no-dangling"], check=True, capture_output=True
    )


def test_creates_the_branch_then_fast_forwards_with_every_object(world) -> None:
    bare, work, repo = world
    tip = repo.head.target
    first = fast_forward(repo, remote_path=str(bare), ref_name="refs/heads/main", tip=tip)
    assert first.ok and first.before is None and first.commits == 1
    assert remote_ref(bare) == str(tip)
    commit_file(work, "a.md", "a\n")
    tip2 = commit_file(work, "b.md", "b\n")
    repo = pygit2.Repository(str(work))
    second = fast_forward(repo, remote_path=str(bare), ref_name="refs/heads/main", tip=tip2)
    assert second.ok and second.before == str(tip) and second.commits == 2
    assert remote_ref(bare) == str(tip2)
    fsck(bare)
    reflog = (bare / "logs/refs/heads/main").read_text().splitlines()
    assert [line.split()[1] for line in reflog] == [str(tip), str(tip2)]
    again = fast_forward(repo, remote_path=str(bare), ref_name="refs/heads/main", tip=tip2)
    assert again.ok and again.commits == 0


def test_a_diverged_remote_is_refused_and_kept(world, tmp_path: Path) -> None:
    bare, work, repo = world
    assert fast_forward(repo, remote_path=str(bare), ref_name="refs/heads/main", tip=repo.head.target).ok
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", str(bare), str(other)], check=True)
    git(other, "config", "user.name", "o")
    git(other, "config", "user.email", "o@x")
    commit_file(other, "theirs.md", "theirs\n")
    git(other, "push", "-q", "origin", "main")
    theirs = remote_ref(bare)
    mine = commit_file(work, "mine.md", "mine\n")
    result = fast_forward(
        pygit2.Repository(str(work)), remote_path=str(bare), ref_name="refs/heads/main", tip=mine
    )
    assert not result.ok and result.problem == "diverged"
    assert remote_ref(bare) == theirs


def test_a_branch_that_moves_after_the_check_is_never_overwritten(world, tmp_path: Path, monkeypatch) -> None:
    bare, work, repo = world
    assert fast_forward(repo, remote_path=str(bare), ref_name="refs/heads/main", tip=repo.head.target).ok
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", str(bare), str(other)], check=True)
    git(other, "config", "user.name", "o")
    git(other, "config", "user.email", "o@x")
    commit_file(other, "theirs.md", "theirs\n")
    real = local_push._write_objects

    def another_push_lands_meanwhile(*args: object) -> None:
        real(*args)  # type: ignore[arg-type]
        git(other, "push", "-q", "origin", "main")  # a real concurrent push, between check and move

    monkeypatch.setattr(local_push, "_write_objects", another_push_lands_meanwhile)
    mine = commit_file(work, "mine.md", "mine\n")
    result = fast_forward(
        pygit2.Repository(str(work)), remote_path=str(bare), ref_name="refs/heads/main", tip=mine
    )
    assert not result.ok and result.problem == "moved"
    assert remote_ref(bare) == git(other, "rev-parse", "HEAD").strip()


def test_a_held_ref_lock_is_a_retry_and_is_left_alone(world) -> None:
    bare, work, repo = world
    assert fast_forward(repo, remote_path=str(bare), ref_name="refs/heads/main", tip=repo.head.target).ok
    before = remote_ref(bare)
    lock = bare / "refs/heads/main.lock"
    lock.write_text("someone else\n")
    tip = commit_file(work, "a.md", "a\n")
    result = fast_forward(
        pygit2.Repository(str(work)), remote_path=str(bare), ref_name="refs/heads/main", tip=tip
    )
    assert not result.ok and result.problem == "moved" and "locked" in (result.message or "")
    assert lock.read_text() == "someone else\n" and remote_ref(bare) == before


def test_the_checked_out_branch_of_a_non_bare_remote_is_refused(world, tmp_path: Path) -> None:
    _, _, repo = world
    target = init_repo(tmp_path / "nonbare")
    before = git(target, "rev-parse", "main").strip()
    result = fast_forward(repo, remote_path=str(target), ref_name="refs/heads/main", tip=repo.head.target)
    assert not result.ok and result.problem == "not-bare"
    assert git(target, "rev-parse", "main").strip() == before


def test_push_local_moves_the_tracking_ref(world) -> None:
    bare, work, repo = world
    done = push_local(
        repo,
        remote_path=str(bare),
        ref_name="refs/heads/main",
        tip=repo.head.target,
        tracking_ref="refs/remotes/origin/main",
    )
    assert done.ok and done.tracking_error is None
    assert git(work, "rev-parse", "refs/remotes/origin/main").strip() == remote_ref(bare)


def test_a_missing_remote_is_an_error(world, tmp_path: Path) -> None:
    _, _, repo = world
    result = fast_forward(
        repo, remote_path=str(tmp_path / "nowhere"), ref_name="refs/heads/main", tip=repo.head.target
    )
    assert not result.ok and result.problem == "error" and "cannot open" in (result.message or "")
