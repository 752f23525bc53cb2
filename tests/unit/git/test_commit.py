"""The libgit2 commit layer against real repositories, inspected with the git CLI."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mdbackup.git.commit import Committer
from mdbackup.git.repo import open_repository
from tests.support.cli import ROOT
from tests.support.committing import SIG, commit, write
from tests.support.git import commit_count, git, head_files, init_repo


def test_commits_only_the_given_paths(repo: Path) -> None:
    write(repo, "notes/a.md", "a\n")
    write(repo, "notes/b.md", "b\n")
    result = commit(repo, ["notes/a.md"])
    assert result.commit_id == git(repo, "rev-parse", "HEAD").strip()
    assert [c.kind for c in result.changes] == ["added"]
    files = head_files(repo)
    assert files["notes/a.md"] == "a\n"
    assert "notes/b.md" not in files
    assert git(repo, "status", "--porcelain", "notes/a.md") == ""


def test_user_staged_change_stays_staged_and_out_of_the_commit(repo: Path) -> None:
    write(repo, "src.txt", "staged by the user\n")
    git(repo, "add", "src.txt")
    write(repo, "notes/a.md", "note\n")
    commit(repo, ["notes/a.md"])
    assert "src.txt" not in head_files(repo)
    assert git(repo, "diff", "--cached", "--name-only").split() == ["src.txt"]


def test_modification_deletion_and_rename(repo: Path) -> None:
    write(repo, "notes/a.md", "one\n")
    write(repo, "notes/old.md", "moving\n")
    commit(repo, ["notes/a.md", "notes/old.md"])
    write(repo, "notes/a.md", "two\n")
    (repo / "notes/old.md").rename(repo / "notes/new.md")
    result = commit(repo, ["notes/a.md", "notes/old.md", "notes/new.md"])
    kinds = {c.path: c.kind for c in result.changes}
    assert kinds == {"notes/a.md": "modified", "notes/old.md": "deleted", "notes/new.md": "added"}
    files = head_files(repo)
    assert files["notes/a.md"] == "two\n" and files["notes/new.md"] == "moving\n"
    assert "notes/old.md" not in files
    assert git(repo, "status", "--porcelain") == ""


def test_deleting_the_last_file_of_a_folder_removes_the_folder(repo: Path) -> None:
    write(repo, "notes/deep/x/only.md", "x\n")
    commit(repo, ["notes/deep/x/only.md"])
    (repo / "notes/deep/x/only.md").unlink()
    commit(repo, ["notes/deep/x/only.md"])
    assert git(repo, "ls-tree", "-r", "HEAD", "--name-only").split() == ["README.txt"]


def test_new_subfolders_and_odd_names(repo: Path) -> None:
    names = [
        "notes/new/sub/dir/a.md",
        "notes/with space.md",
        "notes/-leading.md",
        "notes/ünïcödé ✓.md",
        'notes/quote"s.md',
    ]
    for name in names:
        write(repo, name, name + "\n")
    commit(repo, names)
    files = head_files(repo)
    for name in names:
        assert files[name] == name + "\n"


def test_no_empty_commit(repo: Path) -> None:
    before = commit_count(repo)
    result = commit(repo, ["README.txt", "notes/never-existed.md"])
    assert result.commit_id is None
    assert set(result.unchanged) == {"README.txt", "notes/never-existed.md"}
    assert commit_count(repo) == before


def test_unborn_branch_gets_its_first_commit(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "fresh", commit=False)
    write(repo, "a.md", "first\n")
    result = commit(repo, ["a.md"])
    assert result.commit_id and commit_count(repo) == 1
    assert head_files(repo) == {"a.md": "first\n"}


def test_detached_head_is_refused(repo: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    write(repo, "a.md", "x\n")
    head = git(repo, "rev-parse", "HEAD")
    result = commit(repo, ["a.md"])
    assert result.refused is not None and "detached" in result.refused
    assert result.busy is None and result.commit_id is None and result.branch is None
    assert not (result.changes or result.unchanged or result.skipped or result.failed)
    assert git(repo, "rev-parse", "HEAD") == head


def test_held_index_lock_defers_and_is_never_removed(repo: Path) -> None:
    lock = repo / ".git/index.lock"
    lock.write_text("")
    write(repo, "a.md", "x\n")
    head = git(repo, "rev-parse", "HEAD")
    result = commit(repo, ["a.md"])
    assert result.busy is not None and "index.lock" in result.busy
    assert result.refused is None and result.commit_id is None and result.branch == "main"
    assert not (result.changes or result.unchanged or result.skipped or result.failed)
    assert lock.exists()
    assert git(repo, "rev-parse", "HEAD") == head


def test_held_branch_lock_defers_and_is_never_removed(repo: Path) -> None:
    lock = repo / ".git/refs/heads/main.lock"
    lock.write_text("")
    write(repo, "a.md", "x\n")
    head = git(repo, "rev-parse", "HEAD")
    result = commit(repo, ["a.md"])
    assert result.busy is not None and "locked" in result.busy, result
    assert result.commit_id is None and not result.changes
    assert lock.exists()
    assert git(repo, "rev-parse", "HEAD") == head
    lock.unlink()
    result = commit(repo, ["a.md"])
    assert result.busy is None and [c.path for c in result.changes] == ["a.md"]
    assert head_files(repo)["a.md"] == "x\n"
    assert git(repo, "status", "--porcelain") == ""


def test_branch_that_keeps_moving_is_busy(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Committer, "_move_branch", lambda self, *args: False)
    write(repo, "a.md", "x\n")
    head = git(repo, "rev-parse", "HEAD")
    result = commit(repo, ["a.md"])
    assert result.busy is not None and "kept moving" in result.busy
    assert result.commit_id is None and git(repo, "rev-parse", "HEAD") == head


def test_steps_are_reported_in_order_and_the_lock_is_held_from_index_to_rename(repo: Path) -> None:
    """The step callback sees each step. From the index write to the branch move,
    index.lock is held and is our claimed file (recorded before it existed), the index in
    place is untouched (git's order: new index in the lock, commit, branch, rename)."""
    git_dir = (repo / ".git").resolve()
    lock, own = git_dir / "index.lock", git_dir / "mdbackup/claims/index.lock"
    seen: list[tuple[str, bool, bool, str]] = []

    def step(name: str) -> None:
        ours = lock.exists() and own.exists() and os.path.samefile(lock, own)
        staged = git(repo, "ls-files", "--", "a.md").strip()
        seen.append((name, lock.exists(), ours, staged))

    committer = Committer(open_repository(repo), step=step)
    write(repo, "a.md", "x\n")
    head = git(repo, "rev-parse", "HEAD").strip()
    moved: list[str] = []
    original = step

    def step_and_head(name: str) -> None:
        original(name)
        moved.append(git(repo, "rev-parse", "HEAD").strip())

    committer._step = step_and_head
    committer.commit_paths(["a.md"], message=lambda c: "m", author=SIG, committer=SIG, max_file_size=10**6)
    assert seen == [
        ("blobs_written", False, False, ""),
        ("tree_written", False, False, ""),
        ("index_written", True, True, ""),
        ("commit_written", True, True, ""),
        ("ref_moved", True, True, ""),
    ]
    assert moved[:4] == [head] * 4 and moved[4] != head
    assert not lock.exists() and not own.exists()
    assert git(repo, "status", "--porcelain") == ""
    seen.clear()
    committer.commit_paths(["a.md"], message=lambda c: "m", author=SIG, committer=SIG, max_file_size=10**6)
    assert seen == []  # nothing to commit: no step, no write
    assert not (git_dir / "mdbackup/writing").exists()


def test_message_gets_the_changes(repo: Path) -> None:
    write(repo, "a.md", "a\n")
    write(repo, "b.md", "b\n")
    commit(repo, ["b.md"])
    write(repo, "b.md", "b2\n")
    got: list[list[tuple[str, str]]] = []

    def message(changes) -> str:
        got.append([(c.path, c.kind) for c in changes])
        return "two files"

    committer = Committer(open_repository(repo))
    committer.commit_paths(["a.md", "b.md"], message=message, author=SIG, committer=SIG, max_file_size=10**6)
    assert got == [[("a.md", "added"), ("b.md", "modified")]]
    assert git(repo, "log", "-1", "--format=%B").strip() == "two files"


def test_merge_in_progress_defers(repo: Path) -> None:
    write(repo, "a.md", "base\n")
    git(repo, "add", "a.md")
    git(repo, "commit", "-qm", "base")
    git(repo, "checkout", "-qb", "other")
    write(repo, "a.md", "other\n")
    git(repo, "commit", "-qam", "other")
    git(repo, "checkout", "-q", "main")
    write(repo, "a.md", "main\n")
    git(repo, "commit", "-qam", "main")
    git(repo, "merge", "other", check=False)
    result = commit(repo, ["a.md"])
    assert result.busy is not None and "merge" in result.busy
    assert result.commit_id is None


def test_symlink_committed_as_link_and_target_never_read(repo: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT\n")
    (repo / "notes").mkdir()
    os.symlink(secret, repo / "notes/link.md")
    commit(repo, ["notes/link.md"])
    line = git(repo, "ls-tree", "HEAD", "notes/link.md")
    assert line.startswith("120000 blob")
    assert git(repo, "cat-file", "-p", "HEAD:notes/link.md") == str(secret)
    objects = subprocess.run(
        ["git", "-C", str(repo), "cat-file", "--batch-all-objects", "--batch"],
        capture_output=True,
        check=True,
    ).stdout
    assert b"TOP-SECRET-CONTENT" not in objects


def test_executable_bit_kept(repo: Path) -> None:
    path = write(repo, "run.md", "#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    commit(repo, ["run.md"])
    assert git(repo, "ls-tree", "HEAD", "run.md").startswith("100755")


def test_file_over_max_size_fails_with_reason_others_committed(repo: Path) -> None:
    write(repo, "big.md", "x" * 2000)
    write(repo, "small.md", "ok\n")
    result = commit(repo, ["big.md", "small.md"], max_file_size=1000)
    assert "max_file_size" in result.failed["big.md"]
    files = head_files(repo)
    assert "small.md" in files and "big.md" not in files


def test_gitignored_untracked_file_is_skipped_but_tracked_one_stays_tracked(repo: Path) -> None:
    write(repo, ".gitignore", "*.secret.md\n")
    write(repo, "tracked.secret.md", "v1\n")
    git(repo, "add", "-f", ".gitignore", "tracked.secret.md")
    git(repo, "commit", "-qm", "tracked despite ignore")
    write(repo, "tracked.secret.md", "v2\n")
    write(repo, "new.secret.md", "ignored\n")
    result = commit(repo, ["tracked.secret.md", "new.secret.md"])
    assert result.skipped == ("new.secret.md",)
    files = head_files(repo)
    assert files["tracked.secret.md"] == "v2\n" and "new.secret.md" not in files


def test_git_environment_variables_are_ignored(repo: Path, tmp_path: Path) -> None:
    decoy = init_repo(tmp_path / "decoy")
    write(repo, "a.md", "real\n")
    env = {
        "GIT_DIR": str(decoy / ".git"),
        "GIT_WORK_TREE": str(decoy),
        "GIT_INDEX_FILE": str(tmp_path / "decoy-index"),
    }
    code = (
        "import pygit2, pathlib;"
        "from mdbackup.git.commit import Committer;"
        "from mdbackup.git.repo import open_repository;"
        "s=pygit2.Signature('t','t@e');"
        f"Committer(open_repository(pathlib.Path({str(repo)!r}))).commit_paths(['a.md'],"
        "message=lambda c:'m',author=s,committer=s,max_file_size=10**6)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, **env}, cwd=ROOT)
    assert head_files(repo)["a.md"] == "real\n"
    assert commit_count(decoy) == 1
    assert not (tmp_path / "decoy-index").exists()


def test_branch_moved_by_someone_else_is_not_rolled_back(repo: Path) -> None:
    """The compare-and-swap path: a commit made by the user between passes stays."""
    committer = Committer(open_repository(repo))
    write(repo, "a.md", "1\n")
    committer.commit_paths(["a.md"], message=lambda c: "m", author=SIG, committer=SIG, max_file_size=10**6)
    write(repo, "user.txt", "user\n")
    git(repo, "add", "user.txt")
    git(repo, "commit", "-qm", "user commit")
    write(repo, "a.md", "2\n")
    committer.commit_paths(["a.md"], message=lambda c: "m", author=SIG, committer=SIG, max_file_size=10**6)
    files = head_files(repo)
    assert files["user.txt"] == "user\n" and files["a.md"] == "2\n"
    assert git(repo, "log", "--format=%s", "-3").split("\n")[:3] == ["m", "user commit", "m"]


def test_store_file_staged_v2_with_v1_in_the_worktree_stays_staged(repo: Path) -> None:
    """A save that leaves the file as HEAD has it commits nothing and leaves the index
    alone: the user's staged v2 stays staged (no "repair" to HEAD)."""
    write(repo, "notes/a.md", "v1\n")
    commit(repo, ["notes/a.md"])
    write(repo, "notes/a.md", "v2\n")
    git(repo, "add", "notes/a.md")
    write(repo, "notes/a.md", "v1\n")  # the editor saves v1 again
    result = commit(repo, ["notes/a.md"])
    assert result.commit_id is None and result.unchanged == ("notes/a.md",)
    assert git(repo, "show", ":notes/a.md") == "v2\n"
    assert git(repo, "status", "--porcelain", "notes/a.md") == "MM notes/a.md\n"


def test_rm_cached_then_a_save_does_not_re_add_it(repo: Path) -> None:
    write(repo, "notes/secret.md", "s\n")
    commit(repo, ["notes/secret.md"])
    git(repo, "rm", "-q", "--cached", "notes/secret.md")
    write(repo, "notes/secret.md", "s\n")  # saved again, same content
    result = commit(repo, ["notes/secret.md"])
    assert result.commit_id is None
    assert git(repo, "ls-files", "notes/secret.md") == ""
    assert git(repo, "status", "--porcelain", "notes/secret.md") == "D  notes/secret.md\n?? notes/secret.md\n"


def test_rm_cached_and_ignored_then_an_edit_is_not_committed_nor_re_added(repo: Path) -> None:
    """As `git add -- notes/secret.md` would: untracked (not in the index) and ignored,
    so skipped; HEAD keeps what it had, the staged deletion stays the user's."""
    write(repo, "notes/secret.md", "s\n")
    commit(repo, ["notes/secret.md"])
    git(repo, "rm", "-q", "--cached", "notes/secret.md")
    write(repo, ".gitignore", "secret.md\n")
    write(repo, "notes/secret.md", "new secret\n")
    result = commit(repo, ["notes/secret.md"])
    assert result.skipped == ("notes/secret.md",) and result.commit_id is None
    assert head_files(repo)["notes/secret.md"] == "s\n"
    assert git(repo, "ls-files", "notes/secret.md") == ""
