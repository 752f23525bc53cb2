"""mdbackup.git.repo on real repositories: finding and opening the working tree, busy and head state."""

from __future__ import annotations

from pathlib import Path

import pytest

from mdbackup.git.repo import (
    NotAWorkTree,
    UnsupportedRepository,
    busy_reason,
    commit_hooks,
    find_worktree,
    git_dir,
    head_info,
    identity,
    open_repository,
)
from tests.support.git import git, init_repo


def test_find_worktree_from_anywhere_inside(repo: Path, store: Path, tmp_path: Path) -> None:
    (store / "deep/er").mkdir(parents=True)
    assert find_worktree(store / "deep/er") == repo.resolve()
    assert find_worktree(repo) == repo.resolve()
    (tmp_path / "plain").mkdir()
    assert find_worktree(tmp_path / "plain") is None


def test_a_bare_repository_has_no_worktree(tmp_path: Path) -> None:
    bare = tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    assert find_worktree(bare) is None
    with pytest.raises(NotAWorkTree, match="bare"):
        open_repository(bare)


def test_open_repository_refuses_a_plain_folder(tmp_path: Path) -> None:
    with pytest.raises(NotAWorkTree, match="not a git working tree"):
        open_repository(tmp_path)


def test_open_repository_ignores_git_environment(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = init_repo(tmp_path / "other")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(other))
    r = open_repository(repo)
    assert Path(r.workdir).resolve() == repo.resolve()
    assert git_dir(r) == (repo / ".git").resolve()


def test_busy_reason(repo: Path) -> None:
    r = open_repository(repo)
    assert busy_reason(r) is None
    lock = repo / ".git/index.lock"
    lock.write_text("")
    assert busy_reason(r) == "another process holds index.lock"
    assert lock.exists()  # looked at, never removed
    lock.unlink()
    head = git(repo, "rev-parse", "HEAD").strip()
    (repo / ".git/MERGE_HEAD").write_text(head + "\n")  # what `git merge` leaves while it waits
    assert busy_reason(r) == "a merge is in progress"


def test_head_info_on_a_branch_detached_and_unborn(repo: Path, tmp_path: Path) -> None:
    head = git(repo, "rev-parse", "HEAD").strip()
    assert head_info(open_repository(repo)).__dict__ == {"branch": "main", "commit": head, "detached": False}
    git(repo, "checkout", "-q", "--detach")
    info = head_info(open_repository(repo))
    assert (info.branch, info.commit, info.detached) == (None, head, True)
    unborn = init_repo(tmp_path / "unborn", commit=False)
    info = head_info(open_repository(unborn))
    assert (info.branch, info.commit, info.detached) == ("main", None, False)


def test_identity_from_the_repository_config(repo: Path) -> None:
    assert identity(open_repository(repo)) == ("Test User", "test@example.com")
    git(repo, "config", "user.name", "")
    git(repo, "config", "--unset", "user.email")
    name, email = identity(open_repository(repo))
    assert name is None  # empty is no name
    assert email is None or "@" in email  # unset here; a global one may exist


# -- repositories libgit2 cannot use, and hooks it does not run ---------------------------------


def _split_index(repo: Path) -> None:
    git(repo, "update-index", "--split-index")


def _sparse_index(repo: Path) -> None:
    git(repo, "sparse-checkout", "init", "--cone", "--sparse-index")


@pytest.mark.parametrize(
    ("make", "feature", "fix"),
    [
        (_split_index, "split index", "git update-index --no-split-index"),
        (_sparse_index, "sparse index", "git sparse-checkout init --no-sparse-index"),
    ],
)
def test_an_index_libgit2_cannot_read_is_named_with_the_command_that_turns_it_off(
    repo: Path, make: object, feature: str, fix: str
) -> None:
    """Split and sparse indexes once killed run, --once and status with a traceback."""
    assert callable(make)
    make(repo)
    for attempt in (lambda: open_repository(repo), lambda: find_worktree(repo)):
        with pytest.raises(UnsupportedRepository) as refused:
            attempt()
        assert feature in str(refused.value) and fix in str(refused.value)
        assert "\n" not in str(refused.value)


def test_a_sha256_repository_is_named_not_called_missing(tmp_path: Path) -> None:
    repo = tmp_path / "sha256"
    repo.mkdir()
    git(repo, "init", "-q", "--object-format=sha256")
    with pytest.raises(UnsupportedRepository, match="sha256 object format"):
        find_worktree(repo)
    with pytest.raises(UnsupportedRepository, match="sha256 object format"):
        open_repository(repo)


def test_turning_the_feature_off_makes_the_repository_usable(repo: Path) -> None:
    _split_index(repo)
    git(repo, "update-index", "--no-split-index")
    git(repo, "config", "core.splitIndex", "false")
    assert open_repository(repo).workdir is not None


def test_commit_hooks_are_found_where_git_looks(repo: Path, tmp_path: Path) -> None:
    hooks = repo / ".git" / "hooks"
    hooks.mkdir(exist_ok=True)
    (hooks / "pre-commit.sample").write_text("#!/bin/sh\n")
    (hooks / "pre-commit.sample").chmod(0o755)
    assert commit_hooks(open_repository(repo)) == ()
    (hooks / "pre-commit").write_text("#!/bin/sh\nexit 1\n")
    (hooks / "pre-commit").chmod(0o755)
    (hooks / "commit-msg").write_text("#!/bin/sh\n")  # not executable: git does not run it either
    assert commit_hooks(open_repository(repo)) == ("pre-commit",)
    elsewhere = tmp_path / "my-hooks"
    elsewhere.mkdir()
    (elsewhere / "post-commit").write_text("#!/bin/sh\n")
    (elsewhere / "post-commit").chmod(0o755)
    git(repo, "config", "core.hooksPath", str(elsewhere))
    assert commit_hooks(open_repository(repo)) == ("post-commit",)


def test_excludes_file_setting_is_the_configured_value_or_none(repo: Path) -> None:
    from mdbackup.git.repo import excludes_file_setting, open_repository
    from tests.support.git import git

    assert excludes_file_setting(open_repository(repo)) is None
    git(repo, "config", "core.excludesFile", "~/my-ignores")
    assert excludes_file_setting(open_repository(repo)) == "~/my-ignores"
