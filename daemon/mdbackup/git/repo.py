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

from mdbackup.git import layout

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


class UnsupportedRepository(Exception):
    """libgit2 cannot use this repository; the message names the feature and how to turn it off."""


_INDEX_EXTENSIONS: dict[str, str] = {
    "link": "a split index (core.splitIndex), which libgit2 cannot read; turn it off with: "
    "git update-index --no-split-index && git config core.splitIndex false",
    "sdir": "a sparse index, which libgit2 cannot read; turn it off with: "
    "git sparse-checkout init --no-sparse-index (or git sparse-checkout disable)",
}
_SHA256 = (
    "the sha256 object format (extensions.objectFormat), which libgit2 cannot read; "
    "there is no command that converts it in place: back up a SHA-1 clone instead"
)


def _unsupported(exc: Exception, where: Path | str) -> UnsupportedRepository | None:
    """The UnsupportedRepository that libgit2's error `exc` stands for, or None."""
    text = str(exc)
    if "object format" in text:
        return UnsupportedRepository(f"{where}: the repository uses {_SHA256}")
    if "unsupported mandatory extension" in text:
        name = text.rsplit(":", 1)[-1].strip().strip("'\"")
        feature = _INDEX_EXTENSIONS.get(name, f"the index extension '{name}', which libgit2 cannot read")
        return UnsupportedRepository(f"{where}: the repository's index uses {feature}")
    if "unsupported extension" in text or "unsupported repository version" in text:
        return UnsupportedRepository(f"{where}: libgit2 cannot use this repository ({text})")
    return None


def check_supported(repo: pygit2.Repository) -> None:
    """Raise UnsupportedRepository when libgit2 cannot use `repo` (its index above all)."""
    try:
        pygit2.Repository(repo.path).index.read(force=False)  # a throwaway: repo.index stays unread
    except (pygit2.GitError, ValueError) as exc:
        problem = _unsupported(exc, Path(repo.workdir or repo.path))
        if problem is not None:
            raise problem from exc


@dataclass(frozen=True)
class HeadInfo:
    """The checked-out branch: `branch` is None on a detached HEAD; `commit` None when unborn."""

    branch: str | None
    commit: str | None
    detached: bool


def find_worktree(path: Path) -> Path | None:
    """Return the root of the git working tree containing `path`, or None.

    Raises UnsupportedRepository when there is one but libgit2 cannot use it."""
    try:
        git_dir = pygit2.discover_repository(str(path))
    except pygit2.GitError:
        return None
    if git_dir is None:
        return None
    try:
        repo = pygit2.Repository(git_dir)
    except (pygit2.GitError, ValueError) as exc:
        problem = _unsupported(exc, Path(git_dir).parent if Path(git_dir).name == ".git" else git_dir)
        if problem is not None:
            raise problem from exc
        return None
    if repo.is_bare or repo.workdir is None:
        return None
    check_supported(repo)
    return Path(repo.workdir).resolve()


def open_repository(workdir: Path) -> pygit2.Repository:
    """Open the non-bare repository whose working tree is `workdir`.

    Raises NotAWorkTree when `workdir` is not the root of a git working tree, and
    UnsupportedRepository when libgit2 cannot use it (see `check_supported`).
    """
    try:
        repo = pygit2.Repository(str(workdir))
    except (pygit2.GitError, ValueError) as exc:
        problem = _unsupported(exc, workdir)
        if problem is not None:
            raise problem from exc
        raise NotAWorkTree(f"{workdir}: not a git working tree ({exc})") from exc
    if repo.is_bare or repo.workdir is None:
        raise NotAWorkTree(f"{workdir}: a bare repository has no working tree")
    check_supported(repo)
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


COMMIT_HOOKS = ("pre-commit", "prepare-commit-msg", "commit-msg", "post-commit")
"""The hooks `git commit` runs; a libgit2 commit runs none of them."""


def commit_hooks(repo: pygit2.Repository) -> tuple[str, ...]:
    """The commit hooks the user has installed (executable files in `core.hooksPath`, else
    `<common git dir>/hooks`), which mdbackup's commits do not run."""
    try:
        configured = repo.config["core.hooksPath"]
    except (KeyError, pygit2.GitError):
        configured = None
    if configured:
        home = pygit2.settings.homedir
        folder = Path(home) / configured[2:] if configured.startswith("~/") and home else Path(configured)
        if not folder.is_absolute():
            folder = Path(repo.workdir or repo.path) / folder
    else:
        folder = layout.common_dir(Path(repo.path)) / "hooks"
    return tuple(
        name for name in COMMIT_HOOKS if os.access(folder / name, os.X_OK) and (folder / name).is_file()
    )


def excludes_file_setting(repo: pygit2.Repository) -> str | None:
    """The repository's `core.excludesFile` as configured (unexpanded), or None."""
    try:
        value = repo.config["core.excludesFile"]
    except (KeyError, pygit2.GitError):
        return None
    return str(value) or None
