"""mdbackup.git.repo on real repositories: finding and opening the working tree, busy and head state."""

from __future__ import annotations

from pathlib import Path

import pytest

from mdbackup.git.repo import (
    NotAWorkTree,
    busy_reason,
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


def test_excludes_file_setting_is_the_configured_value_or_none(repo: Path) -> None:
    from mdbackup.git.repo import excludes_file_setting, open_repository
    from tests.support.git import git

    assert excludes_file_setting(open_repository(repo)) is None
    git(repo, "config", "core.excludesFile", "~/my-ignores")
    assert excludes_file_setting(open_repository(repo)) == "~/my-ignores"
