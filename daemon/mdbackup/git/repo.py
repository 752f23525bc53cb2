"""Opening repositories and reading their state with libgit2 (reads no config, no environment).

`pygit2.Repository(path)` ignores `GIT_DIR`, `GIT_WORK_TREE`, `GIT_INDEX_FILE` and
`GIT_OBJECT_DIRECTORY`; `RepositoryOpenFlag.FROM_ENV` is never used here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pygit2
from pygit2.enums import RepositoryState

_STATE_NAMES: dict[RepositoryState, str] = {
    RepositoryState.MERGE: "a merge",
    RepositoryState.REVERT: "a revert",
    RepositoryState.REVERT_SEQUENCE: "a revert",
    RepositoryState.CHERRYPICK: "a cherry-pick",
    RepositoryState.CHERRYPICK_SEQUENCE: "a cherry-pick",
    RepositoryState.BISECT: "a bisect",
    RepositoryState.REBASE: "a rebase",
    RepositoryState.REBASE_INTERACTIVE: "a rebase",
    RepositoryState.REBASE_MERGE: "a rebase",
    RepositoryState.APPLY_MAILBOX: "git am",
    RepositoryState.APPLY_MAILBOX_OR_REBASE: "git am or a rebase",
}


class NotAWorkTree(Exception):
    """The path is not inside a git working tree (or the repository is bare)."""


@dataclass(frozen=True)
class HeadInfo:
    """The checked-out branch: `branch` is None on a detached HEAD; `commit` None when unborn."""

    branch: str | None
    commit: str | None
    detached: bool


def find_worktree(path: Path) -> Path | None:
    """Return the root of the git working tree containing `path`, or None."""
    try:
        git_dir = pygit2.discover_repository(str(path))
    except pygit2.GitError:
        return None
    if git_dir is None:
        return None
    try:
        repo = pygit2.Repository(git_dir)
    except pygit2.GitError:
        return None
    if repo.is_bare or repo.workdir is None:
        return None
    return Path(repo.workdir).resolve()


def open_repository(workdir: Path) -> pygit2.Repository:
    """Open the non-bare repository whose working tree is `workdir`.

    Raises NotAWorkTree when `workdir` is not the root of a git working tree.
    """
    try:
        repo = pygit2.Repository(str(workdir))
    except pygit2.GitError as exc:
        raise NotAWorkTree(f"{workdir}: not a git working tree ({exc})") from exc
    if repo.is_bare or repo.workdir is None:
        raise NotAWorkTree(f"{workdir}: a bare repository has no working tree")
    return repo


def git_dir(repo: pygit2.Repository) -> Path:
    """The repository's git directory (`.git`, or the worktree's own git dir)."""
    return Path(repo.path).resolve()


def busy_reason(repo: pygit2.Repository) -> str | None:
    """Why git is busy (an operation in progress or `index.lock` held), or None when free.

    Never removes or touches the lock.
    """
    state = repo.state()
    if state != RepositoryState.NONE:
        return f"{_STATE_NAMES.get(state, 'a git operation')} is in progress"
    if os.path.exists(os.path.join(repo.path, "index.lock")):
        return "another process holds index.lock"
    return None


def head_info(repo: pygit2.Repository) -> HeadInfo:
    """The checked-out branch and its commit (None when unborn); never raises on unborn/detached."""
    if repo.head_is_detached:
        return HeadInfo(branch=None, commit=str(repo.head.target), detached=True)
    ref_name = repo.references["HEAD"].target  # symbolic: refs/heads/NAME
    branch = ref_name.removeprefix("refs/heads/") if isinstance(ref_name, str) else None
    if repo.head_is_unborn:
        return HeadInfo(branch=branch, commit=None, detached=False)
    return HeadInfo(branch=branch, commit=str(repo.head.target), detached=False)


def identity(repo: pygit2.Repository) -> tuple[str | None, str | None]:
    """`user.name` and `user.email` from the repository's config (global included)."""
    config = repo.config

    def get(key: str) -> str | None:
        try:
            value = config[key]
        except (KeyError, pygit2.GitError):
            return None
        return value or None

    return get("user.name"), get("user.email")


def signature(repo: pygit2.Repository, *, name: str, email: str, hostname: str) -> pygit2.Signature:
    """The author and committer of a backup commit: `name`/`email` when given, else the
    repository's `user.name`/`user.email`, else `mdbackup` / `mdbackup@<hostname>`."""
    configured_name, configured_email = identity(repo)
    return pygit2.Signature(
        name or configured_name or "mdbackup", email or configured_email or f"mdbackup@{hostname}"
    )


def excludes_file_setting(repo: pygit2.Repository) -> str | None:
    """The repository's `core.excludesFile` as configured (unexpanded), or None."""
    try:
        value = repo.config["core.excludesFile"]
    except (KeyError, pygit2.GitError):
        return None
    return str(value) or None
