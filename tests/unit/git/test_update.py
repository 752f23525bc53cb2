"""mdbackup.git.update on real clones: the working tree, the index and the branch follow
the synced commit, only where the user has no change of their own (git status is the
oracle)."""

from __future__ import annotations

import os
from pathlib import Path

import pygit2
import pytest

from mdbackup.git.index_lock import IndexFiles
from mdbackup.git.update import update_to
from mdbackup.git.workfiles import temp_folder
from tests.support.clones import Clones, commit_all, make_clones, write
from tests.support.git import git


@pytest.fixture
def clones(tmp_path: Path) -> Clones:
    return make_clones(tmp_path, files={"notes/a.md": "a\n", "notes/b.md": "b\n", "other/c.txt": "c\n"})


def fetched(clones: Clones) -> tuple[pygit2.Repository, pygit2.Oid, pygit2.Oid]:
    git(clones.a, "fetch", "-q", str(clones.b), "main:refs/remotes/b/main")
    repo = pygit2.Repository(str(clones.a))
    theirs = repo.references["refs/remotes/b/main"].target
    assert isinstance(theirs, pygit2.Oid)
    return repo, repo.head.target, theirs


def is_store(path: str) -> bool:
    return path.startswith("notes/") and path.endswith(".md")


def update(
    repo: pygit2.Repository,
    old: pygit2.Oid,
    new: pygit2.Oid,
    steps: list[str] | None = None,
    *,
    dirty_is_raced: bool = False,
):
    return update_to(
        repo,
        files=IndexFiles(Path(repo.path)),
        ref_name="refs/heads/main",
        old=old,
        new=new,
        is_store=is_store,
        step=(steps.append if steps is not None else lambda _s: None),
        dirty_is_raced=dirty_is_raced,
    )


def test_fast_forward_writes_files_index_and_branch(clones: Clones) -> None:
    write(clones.b, "notes/a.md", "a from b\n")
    write(clones.b, "notes/sub/new.md", "new\n")
    write(clones.b, "other/c.txt", "c from b\n")
    git(clones.b, "rm", "-q", "notes/b.md")
    commit_all(clones.b)
    repo, ours, theirs = fetched(clones)
    steps: list[str] = []
    result = update(repo, ours, theirs, steps)
    assert result.done and not result.raced
    assert sorted(result.written) == ["notes/a.md", "notes/b.md", "notes/sub/new.md", "other/c.txt"]
    assert steps == ["sync_tree_written", "sync_index_written", "sync_ref_moved"]
    assert git(clones.a, "rev-parse", "HEAD").strip() == str(theirs)
    assert git(clones.a, "status", "--porcelain") == ""
    assert (clones.a / "notes/a.md").read_text() == "a from b\n"
    assert not (clones.a / "notes/b.md").exists()
    assert not list(temp_folder(Path(repo.path)).iterdir())


def test_a_store_file_the_user_changed_is_dirty_and_nothing_is_written(clones: Clones) -> None:
    write(clones.b, "notes/a.md", "a from b\n")
    write(clones.b, "notes/b.md", "b from b\n")
    commit_all(clones.b)
    write(clones.a, "notes/a.md", "a edited on a\n")
    repo, ours, theirs = fetched(clones)
    result = update(repo, ours, theirs)
    assert not result.done and result.dirty == ("notes/a.md",)
    assert (clones.a / "notes/a.md").read_text() == "a edited on a\n"
    assert (clones.a / "notes/b.md").read_text() == "b\n"
    assert git(clones.a, "rev-parse", "HEAD").strip() == str(ours)


def test_a_file_that_keeps_changing_is_left_as_the_users_and_reported_raced(clones: Clones) -> None:
    """`dirty_is_raced` (an editor saved again after its save was committed first): the
    update goes on, the user's file stays, the index and branch take the new version, and
    the path is reported `raced` (committed next, on top)."""
    write(clones.b, "notes/a.md", "a from b\n")
    write(clones.b, "notes/b.md", "b from b\n")
    commit_all(clones.b)
    write(clones.a, "notes/a.md", "a edited on a\n")
    repo, _ours, theirs = fetched(clones)
    result = update(repo, repo.head.target, theirs, dirty_is_raced=True)
    assert result.done and result.raced == ("notes/a.md",), result
    assert (clones.a / "notes/a.md").read_text() == "a edited on a\n"
    assert (clones.a / "notes/b.md").read_text() == "b from b\n"
    assert git(clones.a, "rev-parse", "HEAD").strip() == str(theirs)
    assert git(clones.a, "show", ":notes/a.md") == "a from b\n"
    assert git(clones.a, "status", "--porcelain") == " M notes/a.md\n"


def test_a_path_under_a_filter_driver_blocks_and_is_never_written(clones: Clones) -> None:
    """git-crypt, LFS: the blob is what the driver's clean made; its smudge is not run here,
    so writing the blob would put ciphertext or a pointer in the note: the update stops."""
    for repo in (clones.a, clones.b):
        git(repo, "config", "filter.lock.clean", "cat")
        git(repo, "config", "filter.lock.smudge", "cat")
        (repo / ".git/info").mkdir(exist_ok=True)
        (repo / ".git/info/attributes").write_text("notes/a.md filter=lock\n")
    write(clones.b, "notes/a.md", "a from b\n")
    commit_all(clones.b)
    repo, ours, theirs = fetched(clones)
    result = update(repo, ours, theirs, dirty_is_raced=True)
    assert result.blocked_by == "notes/a.md" and not result.done, result
    assert (clones.a / "notes/a.md").read_text() == "a\n"
    assert git(clones.a, "rev-parse", "HEAD").strip() == str(ours)


@pytest.mark.parametrize("how", ["worktree", "index"])
def test_a_change_outside_the_store_blocks_and_is_untouched(clones: Clones, how: str) -> None:
    write(clones.b, "other/c.txt", "c from b\n")
    write(clones.b, "notes/a.md", "a from b\n")
    commit_all(clones.b)
    write(clones.a, "other/c.txt", "mine\n")
    if how == "index":
        git(clones.a, "add", "other/c.txt")
        write(clones.a, "other/c.txt", "c\n")
    repo, ours, theirs = fetched(clones)
    result = update(repo, ours, theirs)
    assert result.blocked_by == "other/c.txt" and not result.done
    assert (clones.a / "notes/a.md").read_text() == "a\n"
    assert git(clones.a, "rev-parse", "HEAD").strip() == str(ours)


def test_files_already_at_the_new_version_are_accepted(clones: Clones) -> None:
    """A kill after the files were written and before the branch moved: the next update
    finds them at the new version and goes on."""
    write(clones.b, "other/c.txt", "c from b\n")
    write(clones.b, "notes/a.md", "a from b\n")
    commit_all(clones.b)
    write(clones.a, "other/c.txt", "c from b\n")
    write(clones.a, "notes/a.md", "a from b\n")
    repo, ours, theirs = fetched(clones)
    result = update(repo, ours, theirs)
    assert result.done and result.written == ()
    assert git(clones.a, "status", "--porcelain") == ""


def test_a_held_index_lock_is_busy_and_kept(clones: Clones) -> None:
    write(clones.b, "notes/a.md", "a from b\n")
    commit_all(clones.b)
    repo, ours, theirs = fetched(clones)
    lock = clones.a / ".git" / "index.lock"
    lock.write_text("")
    result = update(repo, ours, theirs)
    assert result.busy and lock.exists()
    assert (clones.a / "notes/a.md").read_text() == "a\n"


def test_a_branch_that_moved_is_left_alone(clones: Clones) -> None:
    write(clones.b, "notes/a.md", "a from b\n")
    commit_all(clones.b)
    repo, ours, theirs = fetched(clones)
    write(clones.a, "other/d.txt", "d\n")
    moved = commit_all(clones.a)
    result = update(repo, ours, theirs)
    assert result.moved and git(clones.a, "rev-parse", "HEAD").strip() == moved


def test_an_unborn_branch_takes_the_whole_tree(clones: Clones, tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    git(tmp_path, "init", "-q", "-b", "main", "--template=", str(fresh))
    git(fresh, "fetch", "-q", str(clones.remote), "main:refs/remotes/origin/main")
    repo = pygit2.Repository(str(fresh))
    theirs = repo.references["refs/remotes/origin/main"].target
    assert isinstance(theirs, pygit2.Oid)
    write(fresh, "notes/a.md", "a\n")  # the same content as the remote's: accepted
    result = update_to(
        repo,
        files=IndexFiles(Path(repo.path)),
        ref_name="refs/heads/main",
        old=None,
        new=theirs,
        is_store=is_store,
        step=lambda _s: None,
    )
    assert result.done, result
    assert git(fresh, "rev-parse", "HEAD").strip() == str(theirs)
    assert git(fresh, "status", "--porcelain") == ""
    assert (fresh / "other/c.txt").read_text() == "c\n"


def test_links_and_executables_arrive_as_git_would_check_them_out(clones: Clones) -> None:
    (clones.b / "notes").joinpath("link.md").symlink_to("a.md")
    write(clones.b, "other/run.sh", "#!/bin/sh\n").chmod(0o755)
    commit_all(clones.b)
    repo, ours, theirs = fetched(clones)
    assert update(repo, ours, theirs).done
    assert os.readlink(clones.a / "notes/link.md") == "a.md"
    assert os.access(clones.a / "other/run.sh", os.X_OK)
    assert git(clones.a, "status", "--porcelain") == ""
