"""Repository shapes: nested repositories, submodules, skip-worktree, sparse checkout,
core.fileMode and core.symlinks, committed through the Committer and checked with git."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from pygit2.enums import FileMode

from mdbackup.git.repo import open_repository
from mdbackup.git.shapes import (
    CoreSettings,
    IndexNames,
    SparseCone,
    core_settings,
    git_mode,
    index_entry_info,
)
from tests.support.committing import commit, write
from tests.support.git import git, head_files, init_repo


def ls_tree(repo: Path, path: str) -> str:
    return git(repo, "ls-tree", "HEAD", "--", path).strip()


def test_a_nested_repository_is_never_entered(repo: Path) -> None:
    inner = init_repo(repo / "notes" / "inner")
    write(inner, "x.md", "inner\n")
    write(repo, "notes/a.md", "a\n")
    result = commit(repo, ["notes/inner/x.md", "notes/inner/README.txt", "notes/a.md"])
    assert [c.path for c in result.changes] == ["notes/a.md"]
    assert set(result.skipped) == {"notes/inner/x.md", "notes/inner/README.txt"}
    assert set(head_files(repo)) == {"README.txt", "notes/a.md"}


def test_a_linked_worktree_folder_is_never_entered(repo: Path) -> None:
    git(repo, "worktree", "add", "-q", "notes/wt", "-b", "side")
    write(repo, "notes/wt/x.md", "in the linked worktree\n")
    result = commit(repo, ["notes/wt/x.md", "notes/wt/README.txt"])
    assert result.commit_id is None
    assert "notes/wt/x.md" not in head_files(repo)


@pytest.fixture
def with_submodule(repo: Path, tmp_path: Path) -> Path:
    upstream = init_repo(tmp_path / "upstream")
    write(upstream, "x.md", "sub\n")
    git(upstream, "add", "x.md")
    git(upstream, "commit", "-qm", "x")
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(upstream), "notes/sub")
    git(repo, "commit", "-qm", "submodule")
    return repo


def test_a_submodule_stays_a_gitlink_in_the_tree_and_the_index(with_submodule: Path) -> None:
    repo = with_submodule
    gitlink = ls_tree(repo, "notes/sub")
    assert gitlink.startswith("160000 commit")
    write(repo, "notes/sub/x.md", "changed inside the submodule\n")
    write(repo, "notes/sub/new.md", "new inside the submodule\n")
    write(repo, "notes/a.md", "a\n")
    result = commit(repo, ["notes/sub", "notes/sub/x.md", "notes/sub/new.md", "notes/a.md"])
    assert [c.path for c in result.changes] == ["notes/a.md"]
    assert ls_tree(repo, "notes/sub") == gitlink
    assert git(repo, "ls-files", "-s", "notes/sub").startswith("160000 ")
    assert git(repo, "status", "--porcelain=v2", "--ignore-submodules=all") == ""


def test_a_removed_submodule_checkout_is_not_committed_as_deleted(with_submodule: Path) -> None:
    repo = with_submodule
    gitlink = ls_tree(repo, "notes/sub")
    git(repo, "submodule", "deinit", "-q", "-f", "notes/sub")  # leaves an empty folder
    result = commit(repo, ["notes/sub", "notes/sub/x.md"])
    assert result.commit_id is None
    assert ls_tree(repo, "notes/sub") == gitlink


def test_a_skip_worktree_entry_is_not_committed_and_keeps_its_flag(repo: Path) -> None:
    write(repo, "notes/s.md", "committed\n")
    write(repo, "notes/gone.md", "committed\n")
    commit(repo, ["notes/s.md", "notes/gone.md"])
    git(repo, "update-index", "--skip-worktree", "notes/s.md", "notes/gone.md")
    write(repo, "notes/s.md", "local edit\n")
    (repo / "notes" / "gone.md").unlink()
    result = commit(repo, ["notes/s.md", "notes/gone.md"])
    assert result.commit_id is None
    assert head_files(repo)["notes/s.md"] == "committed\n"
    assert "notes/gone.md" in head_files(repo)
    assert git(repo, "ls-files", "-v", "notes").split("\n")[:2] == ["S notes/gone.md", "S notes/s.md"]


def test_paths_outside_the_sparse_cone_are_not_committed_as_deleted(repo: Path) -> None:
    write(repo, "notes/a.md", "a\n")
    write(repo, "other/b.md", "b\n")
    commit(repo, ["notes/a.md", "other/b.md"])
    git(repo, "update-index", "-q", "--refresh")  # our entries carry no stat data
    git(repo, "sparse-checkout", "set", "--cone", "other")
    assert not (repo / "notes" / "a.md").exists()
    write(repo, "other/b.md", "b2\n")
    result = commit(repo, ["notes/a.md", "other/b.md"])
    assert [c.path for c in result.changes] == ["other/b.md"]
    assert head_files(repo)["notes/a.md"] == "a\n"
    assert git(repo, "ls-files", "-v", "notes/a.md").strip() == "S notes/a.md"


def test_file_mode_false_never_commits_a_chmod(repo: Path) -> None:
    write(repo, "notes/a.md", "a\n")
    commit(repo, ["notes/a.md"])
    git(repo, "config", "core.fileMode", "false")
    os.chmod(repo / "notes" / "a.md", 0o755)
    new = write(repo, "notes/new.md", "new\n")
    os.chmod(new, 0o755)
    result = commit(repo, ["notes/a.md", "notes/new.md"])
    assert [c.path for c in result.changes] == ["notes/new.md"]
    assert ls_tree(repo, "notes/a.md").startswith("100644 ")
    assert ls_tree(repo, "notes/new.md").startswith("100644 ")
    assert git(repo, "status", "--porcelain") == ""


def test_symlinks_false_keeps_a_link_a_link(repo: Path) -> None:
    os.symlink("target", repo / "notes.md")
    commit(repo, ["notes.md"])
    git(repo, "config", "core.symlinks", "false")
    (repo / "notes.md").unlink()
    (repo / "notes.md").write_text("other-target")  # how git checks a link out without symlinks
    commit(repo, ["notes.md"])
    assert ls_tree(repo, "notes.md").startswith("120000 ")
    assert git(repo, "cat-file", "-p", "HEAD:notes.md") == "other-target"
    assert git(repo, "status", "--porcelain") == ""


def test_git_mode_is_ce_mode_from_stat() -> None:
    reg, exe, link = stat.S_IFREG | 0o644, stat.S_IFREG | 0o755, stat.S_IFLNK | 0o777
    default = CoreSettings()
    assert git_mode(exe, FileMode.BLOB, default) == FileMode.BLOB_EXECUTABLE
    assert git_mode(link, FileMode.BLOB, default) == FileMode.LINK
    no_mode = CoreSettings(file_mode=False)
    assert git_mode(exe, FileMode.BLOB, no_mode) == FileMode.BLOB
    assert git_mode(reg, FileMode.BLOB_EXECUTABLE, no_mode) == FileMode.BLOB_EXECUTABLE
    assert git_mode(exe, None, no_mode) == FileMode.BLOB
    no_links = CoreSettings(symlinks=False)
    assert git_mode(reg, FileMode.LINK, no_links) == FileMode.LINK
    assert git_mode(reg, FileMode.LINK, default) == FileMode.BLOB


def test_core_settings_and_index_flags(repo: Path) -> None:
    git(repo, "config", "core.fileMode", "false")
    git(repo, "config", "core.ignoreCase", "true")
    r = open_repository(repo)
    assert core_settings(r) == CoreSettings(file_mode=False, symlinks=True, ignore_case=True)
    git(repo, "update-index", "--skip-worktree", "README.txt")
    info = index_entry_info(r.index, "README.txt")
    assert info is not None and info.skip_worktree and info.mode == FileMode.BLOB
    assert index_entry_info(r.index, "nothing") is None


def test_a_new_file_outside_the_sparse_cone_is_not_added(repo: Path) -> None:
    write(repo, "notes/sub/a.md", "a\n")
    write(repo, "other/b.md", "b\n")
    commit(repo, ["notes/sub/a.md", "other/b.md"])
    git(repo, "update-index", "-q", "--refresh")
    git(repo, "sparse-checkout", "set", "--cone", "notes/sub")
    write(repo, "notes/top.md", "in: a parent folder's own file\n")
    write(repo, "notes/sub/deep/in.md", "in: under a cone folder\n")
    write(repo, "notes/ign/out.md", "out\n")
    write(repo, "other/c.md", "out\n")
    result = commit(repo, ["notes/top.md", "notes/sub/deep/in.md", "notes/ign/out.md", "other/c.md"])
    assert sorted(c.path for c in result.changes) == ["notes/sub/deep/in.md", "notes/top.md"]
    assert sorted(result.skipped) == ["notes/ign/out.md", "other/c.md"]


def test_a_link_to_a_repository_is_not_taken_for_a_nested_one(repo: Path) -> None:
    write(repo, "d/x.md", "committed\n")
    commit(repo, ["d/x.md"])
    (repo / "d" / "x.md").unlink()
    (repo / "d").rmdir()
    os.symlink(".", repo / "d")  # d/.git is the repository's own .git, through a link
    result = commit(repo, ["d/x.md", "d"])
    assert ls_tree(repo, "d").startswith("120000 ")
    assert sorted(c.path for c in result.changes) == ["d", "d/x.md"]


def test_in_a_sparse_checkout_a_file_back_in_the_working_tree_is_committed_as_git_does(repo: Path) -> None:
    """git 2.37+ clears the skip-worktree flag of a present file in a sparse checkout
    (sparse.expectFilesOutsideOfPatterns unset) and `git add` stages it."""
    write(repo, "notes/ign/f.md", "v1\n")
    write(repo, "notes/sub/a.md", "a\n")
    commit(repo, ["notes/ign/f.md", "notes/sub/a.md"])
    git(repo, "update-index", "-q", "--refresh")
    git(repo, "sparse-checkout", "set", "--cone", "notes/sub")
    write(repo, "notes/ign/f.md", "v2\n")
    result = commit(repo, ["notes/ign/f.md"])
    assert [c.path for c in result.changes] == ["notes/ign/f.md"]
    assert head_files(repo)["notes/ign/f.md"] == "v2\n"
    git(repo, "config", "sparse.expectFilesOutsideOfPatterns", "true")
    git(repo, "update-index", "--skip-worktree", "notes/ign/f.md")
    write(repo, "notes/ign/f.md", "v3\n")
    assert commit(repo, ["notes/ign/f.md"]).commit_id is None


def test_index_names_as_git_sees_them_with_ignore_case(repo: Path) -> None:
    """IndexNames: aliases by ASCII case only, folders spelled as the index spells them,
    and new aliases within one pass told apart (name-hash.c, read-cache.c)."""
    write(repo, "Notes/Sub/a.md", "a\n")
    write(repo, "Notes/é.md", "e\n")
    commit(repo, ["Notes/Sub/a.md", "Notes/é.md"])
    names = IndexNames(open_repository(repo).index)
    assert names.alias("notes/sub/A.MD") == "Notes/Sub/a.md"
    assert names.alias("Notes/Sub/a.md") is None  # itself
    assert names.alias("Notes/É.md") is None  # git folds ASCII letters only
    assert names.adjusted("notes/SUB/new.md") == "Notes/Sub/new.md"
    assert names.adjusted("notes/other/x.md") == "Notes/other/x.md"
    assert names.added_alias("Notes/New.md") is None
    names.note("Notes/New.md")
    assert names.added_alias("notes/new.MD") == "Notes/New.md"
    assert names.added_alias("Notes/New.md") is None
    names.note("Notes/Other/x.md")
    assert names.adjusted("notes/OTHER/y.md") == "Notes/Other/y.md"


def test_the_sparse_cone_ignores_case_with_ignore_case(repo: Path) -> None:
    cone = SparseCone(recursive=frozenset({"notes/sub"}), parents=frozenset(), ignore_case=True)
    assert cone.contains("Notes/SUB/a.md") and not cone.contains("notes/other/a.md")
    assert not SparseCone(recursive=frozenset({"notes/sub"}), parents=frozenset()).contains("Notes/SUB/a.md")
