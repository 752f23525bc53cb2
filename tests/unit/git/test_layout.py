"""mdbackup.git.layout: where mdbackup's files and git's locks live in the git directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from mdbackup.git import layout
from tests.support.git import git

GIT_DIR = Path("/r/.git")


def test_mdbackup_keeps_its_files_in_its_own_folder_of_the_git_dir() -> None:
    assert layout.state_dir(GIT_DIR) == Path("/r/.git/mdbackup")
    assert layout.lock_path(GIT_DIR) == Path("/r/.git/mdbackup/lock")


def test_the_state_database_is_there_unless_configured() -> None:
    assert layout.db_path(GIT_DIR, "") == Path("/r/.git/mdbackup/state.db")
    assert layout.db_path(GIT_DIR, "/var/lib/m/state.db") == Path("/var/lib/m/state.db")


def test_gits_own_locks() -> None:
    assert layout.index_lock(GIT_DIR) == Path("/r/.git/index.lock")
    assert layout.ref_lock(GIT_DIR, "refs/heads/main") == Path("/r/.git/refs/heads/main.lock")
    assert layout.ref_lock(GIT_DIR, "refs/remotes/origin/main") == Path(
        "/r/.git/refs/remotes/origin/main.lock"
    )
    assert layout.fetch_head_lock(GIT_DIR) == Path("/r/.git/FETCH_HEAD.lock")


def test_sync_writes_its_temporary_files_in_our_folder() -> None:
    assert layout.sync_temp_dir(GIT_DIR) == Path("/r/.git/mdbackup/sync-tmp")


def test_the_index_lock_is_where_git_itself_takes_it(repo: Path) -> None:
    layout.index_lock(repo / ".git").write_text("")
    (repo / "README.txt").write_text("changed\n")
    with pytest.raises(AssertionError, match=r"index\.lock"):
        git(repo, "add", "README.txt")  # git refuses: the lock is held where layout says
