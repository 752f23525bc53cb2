"""The index under git's own index.lock discipline, against real repositories and real git.

The races are made deterministic with the committer's step callback: the git command
runs at `blobs_written`, i.e. after the index was first read and while the batch is
being hashed (the slow part, done without the lock).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pygit2

from mdbackup.git.commit import CommitResult, Committer
from mdbackup.git.index_lock import IndexBusy, IndexFiles
from mdbackup.git.repo import open_repository
from tests.support.committing import SIG, write
from tests.support.git import git, head_files


def commit_racing(repo: Path, paths: list[str], during: Callable[[], None]) -> CommitResult:
    """Commit `paths`; `during` runs (once) after the index was read, while hashing."""
    ran: list[bool] = []

    def step(name: str) -> None:
        if name == "blobs_written" and not ran:
            ran.append(True)
            during()

    committer = Committer(open_repository(repo), step=step)
    return committer.commit_paths(
        paths, message=lambda c: "backup", author=SIG, committer=SIG, max_file_size=10**7
    )


def staged(repo: Path) -> list[str]:
    return git(repo, "diff", "--cached", "--name-only").split()


def test_git_add_while_the_batch_is_hashed_stays_staged(repo: Path) -> None:
    write(repo, "notes/a.md", "a\n")
    write(repo, "other.py", "print('mine')\n")
    result = commit_racing(repo, ["notes/a.md"], lambda: git(repo, "add", "other.py"))
    assert result.commit_id is not None
    assert staged(repo) == ["other.py"]  # the user's `git add`, not undone
    assert "other.py" not in head_files(repo)
    assert head_files(repo)["notes/a.md"] == "a\n"


def test_git_switch_while_the_batch_is_hashed_commits_on_the_branch_checked_out(repo: Path) -> None:
    git(repo, "branch", "other")
    write(repo, "notes/a.md", "a\n")
    main_before = git(repo, "rev-parse", "main").strip()
    result = commit_racing(repo, ["notes/a.md"], lambda: git(repo, "switch", "-q", "other"))
    assert result.commit_id is not None and result.branch == "other"
    assert git(repo, "rev-parse", "main").strip() == main_before  # nothing left on main
    assert git(repo, "symbolic-ref", "HEAD").strip() == "refs/heads/other"
    assert head_files(repo, "other")["notes/a.md"] == "a\n"
    assert git(repo, "status", "--porcelain") == ""


def test_git_commit_while_the_batch_is_hashed_is_kept_and_built_on(repo: Path) -> None:
    write(repo, "notes/a.md", "a\n")
    write(repo, "src.py", "x = 1\n")

    def user_commit() -> None:
        git(repo, "add", "src.py")
        git(repo, "commit", "-qm", "user work")

    result = commit_racing(repo, ["notes/a.md"], user_commit)
    assert result.commit_id is not None
    assert git(repo, "log", "--format=%s", "-2").split("\n")[:2] == ["backup", "user work"]
    files = head_files(repo)
    assert files["src.py"] == "x = 1\n" and files["notes/a.md"] == "a\n"
    assert git(repo, "status", "--porcelain") == ""


def test_index_lock_taken_while_hashing_is_busy_and_never_removed(repo: Path) -> None:
    write(repo, "notes/a.md", "a\n")
    lock = repo / ".git/index.lock"
    head = git(repo, "rev-parse", "HEAD")
    result = commit_racing(repo, ["notes/a.md"], lambda: lock.write_text(""))
    assert result.busy is not None and "index.lock" in result.busy
    assert result.commit_id is None and git(repo, "rev-parse", "HEAD") == head
    assert lock.exists()
    assert not (repo / ".git/mdbackup/claims/index.lock").exists()


def test_skip_worktree_flag_of_an_entry_we_do_not_change_survives(repo: Path) -> None:
    write(repo, "docs/big.txt", "big\n")
    git(repo, "add", "docs/big.txt")
    git(repo, "commit", "-qm", "docs")
    git(repo, "update-index", "--skip-worktree", "docs/big.txt")
    write(repo, "notes/a.md", "a\n")
    result = commit_racing(repo, ["notes/a.md"], lambda: None)
    assert result.commit_id is not None
    assert "S docs/big.txt" in git(repo, "ls-files", "-v").splitlines()


def test_lock_is_exclusive_and_rolled_back_without_touching_the_index(repo: Path) -> None:
    git_dir = repo / ".git"
    files = IndexFiles(git_dir)
    before = (git_dir / "index").read_bytes()
    held = files.lock()
    try:
        assert (git_dir / "index.lock").exists()
        try:
            IndexFiles(git_dir).lock()
            raise AssertionError("a second lock was granted")
        except IndexBusy:
            pass
        held.index.add(pygit2.IndexEntry("x.md", pygit2.Oid(hex="1" * 40), pygit2.enums.FileMode.BLOB))
        held.write()
    finally:
        held.roll_back()
    assert not (git_dir / "index.lock").exists()
    assert (git_dir / "index").read_bytes() == before
    assert "x.md" not in files.current()  # our unwritten edit is forgotten


def test_unchanged_index_is_not_read_again_but_a_changed_one_is(repo: Path) -> None:
    files = IndexFiles(repo / ".git")
    first = files.current()
    assert files.current() is first  # same file on disk: no read
    write(repo, "new.txt", "n\n")
    git(repo, "add", "new.txt")
    second = files.current()
    assert second is not first and "new.txt" in second


def test_an_index_written_by_us_is_the_one_known(repo: Path) -> None:
    git_dir = repo / ".git"
    files = IndexFiles(git_dir)
    write(repo, "n.md", "n\n")
    oid = pygit2.Repository(str(repo)).create_blob(b"n\n")
    with files.lock() as held:
        held.index.add(pygit2.IndexEntry("n.md", oid, pygit2.enums.FileMode.BLOB))
        held.write()
        held.put_in_place()
    assert not (git_dir / "index.lock").exists()
    assert "n.md" in git(repo, "ls-files")
    assert files.current() is held.index  # what we wrote is what is there: no re-read
    assert os.stat(git_dir / "index").st_nlink == 1  # our claim link is gone


def test_a_fresh_index_of_another_commit_is_told_apart(repo: Path) -> None:
    """`is_another_commits`: a checkout's index (another process, moments ago, its whole
    cache-tree naming another tree) is; our own index, an old one, or one whose
    cache-tree a `git add` invalidated is not."""
    head_tree = pygit2.Oid(hex=git(repo, "rev-parse", "HEAD^{tree}").strip())
    git(repo, "switch", "-q", "-c", "side")
    write(repo, "side.txt", "side\n")
    git(repo, "add", "side.txt")
    git(repo, "commit", "-qm", "side")
    git(repo, "switch", "-q", "main")
    git(repo, "read-tree", "side")  # the index is side's, HEAD still main's
    files = IndexFiles(repo / ".git")
    with files.lock() as held:
        assert held.is_another_commits(head_tree)
        assert not held.is_another_commits(pygit2.Oid(hex=git(repo, "rev-parse", "side^{tree}").strip()))
    index_path = repo / ".git" / "index"
    os.utime(index_path, ns=(0, 0))  # written long ago: a `git reset --soft` user's index, say
    with files.lock() as held:
        assert not held.is_another_commits(head_tree)
    git(repo, "read-tree", "HEAD")
    write(repo, "README.txt", "staged\n")
    git(repo, "add", "README.txt")  # invalidates the root of the cache-tree
    with files.lock() as held:
        assert not held.is_another_commits(pygit2.Oid(hex="1" * 40))
    committer = Committer(open_repository(repo))
    git(repo, "reset", "-q")
    (repo / "notes").mkdir()
    write(repo, "notes/a.md", "a\n")
    git(repo, "read-tree", "side")
    assert committer.commit_paths(
        ["notes/a.md"], message=lambda c: "b", author=SIG, committer=SIG, max_file_size=99
    ).busy
    git(repo, "read-tree", "HEAD")
    done = committer.commit_paths(
        ["notes/a.md"], message=lambda c: "b", author=SIG, committer=SIG, max_file_size=99
    )
    assert done.commit_id is not None


def test_a_lock_on_our_index_copy_left_by_a_kill_does_not_stop_later_commits(repo: Path) -> None:
    """libgit2 writes our copy (`mdbackup/index.next`) through `index.next.lock`; a kill -9
    during that write left it behind and every later commit failed with "the index is
    locked" (found by the soak). Under `index.lock` we are its only writer: it goes."""
    write(repo, "notes/a.md", "a\n")
    assert commit_racing(repo, ["notes/a.md"], during=lambda: None).commit_id
    copy_lock = repo / ".git" / "mdbackup" / "index.next.lock"
    copy_lock.write_bytes(b"DIRC half an index")  # what the kill left
    write(repo, "notes/b.md", "b\n")
    result = commit_racing(repo, ["notes/b.md"], during=lambda: None)
    assert result.commit_id and head_files(repo)["notes/b.md"] == "b\n", result
    assert not copy_lock.exists()
    assert "notes/b.md" in git(repo, "ls-files") and not staged(repo)
