"""Planning a commit path by path: git's name rules and one path's failure staying its own,
through the Committer against real repositories."""

from __future__ import annotations

import os
from pathlib import Path

import pygit2
import pytest

from tests.support.committing import commit, write
from tests.support.git import git, head_files


@pytest.mark.parametrize("folder", [".GIT", ".Git", "git~1", ".git.", ".git ", ".g\u200cit"])
def test_a_name_git_refuses_fails_alone_and_the_rest_commits(repo: Path, folder: str) -> None:
    write(repo, f"notes/{folder}/x.md", "bad\n")
    write(repo, "notes/good.md", "good\n")
    result = commit(repo, [f"notes/{folder}/x.md", "notes/good.md"])
    assert [c.path for c in result.changes] == ["notes/good.md"]
    assert "git would refuse" in result.failed[f"notes/{folder}/x.md"]
    assert set(head_files(repo)) == {"README.txt", "notes/good.md"}
    git(repo, "fsck", "--strict")


def test_a_symlinked_gitmodules_fails_alone(repo: Path) -> None:
    os.symlink("elsewhere", repo / ".gitmodules")
    write(repo, "notes/good.md", "good\n")
    result = commit(repo, [".gitmodules", "notes/good.md"])
    assert "symbolic link" in result.failed[".gitmodules"]
    assert set(head_files(repo)) == {"README.txt", "notes/good.md"}


@pytest.mark.parametrize(
    "error", [pygit2.GitError("injected"), OSError(5, "injected"), ValueError("injected")]
)
def test_one_paths_failure_never_fails_the_others(
    repo: Path, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    import mdbackup.git.planning as planning

    real = planning.snapshot

    def failing(repo_: pygit2.Repository, path: str, **kwargs: object):  # type: ignore[no-untyped-def]
        if path.endswith("bad.md"):
            raise error
        return real(repo_, path, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(planning, "snapshot", failing)
    for name in ("a.md", "bad.md", "b.md"):
        write(repo, f"notes/{name}", name)
    result = commit(repo, ["notes/a.md", "notes/bad.md", "notes/b.md"])
    assert "injected" in result.failed["notes/bad.md"]
    assert sorted(c.path for c in result.changes) == ["notes/a.md", "notes/b.md"]
    assert git(repo, "status", "--porcelain", "notes/a.md", "notes/b.md") == ""
