"""Committing through the real `Committer` in tests, and writing working-tree files."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pygit2

from mdbackup.git.commit import CommitResult, Committer
from mdbackup.git.repo import open_repository

SIG = pygit2.Signature("mdbackup test", "t@example.com")


def commit(
    repo_path: Path, paths: Iterable[str], *, max_file_size: int = 10_000_000, message: str = "backup"
) -> CommitResult:
    """Commit `paths` of the repository at `repo_path` with a fresh Committer."""
    return Committer(open_repository(repo_path)).commit_paths(
        list(paths), message=lambda _changes: message, author=SIG, committer=SIG, max_file_size=max_file_size
    )


def write(repo: Path, rel: str, content: str | bytes) -> Path:
    """Write `content` at `rel` under `repo`, making its folders."""
    path = repo / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path
