"""Paths inside a repository's git directory: git's own lock files and mdbackup's files.

Every path under `<git dir>` that mdbackup names is computed here, so nothing
outside `mdbackup.git` knows git's on-disk layout.
"""

from __future__ import annotations

from pathlib import Path


def state_dir(git_dir: Path) -> Path:
    """`<git dir>/mdbackup`: never committed, never seen by the watcher of the work tree."""
    return git_dir / "mdbackup"


def db_path(git_dir: Path, configured: str) -> Path:
    """The state database: `state.db` in the config, else `<git dir>/mdbackup/state.db`."""
    return Path(configured) if configured else state_dir(git_dir) / "state.db"


def lock_path(git_dir: Path) -> Path:
    """The lock file that makes one mdbackup process per repository."""
    return state_dir(git_dir) / "lock"


def index_file(git_dir: Path) -> Path:
    """git's index (`<git dir>/index`)."""
    return git_dir / "index"


def index_copy(git_dir: Path) -> Path:
    """mdbackup's working copy of the index (`<git dir>/mdbackup/index.next`): read from
    the index, changed and written by libgit2, renamed over the index while we hold
    `index.lock`."""
    return state_dir(git_dir) / "index.next"


def sync_temp_dir(git_dir: Path) -> Path:
    """Where a sync writes new file versions before renaming them into the working tree
    (`<git dir>/mdbackup/sync-tmp`): never seen by the watcher, emptied at start."""
    return state_dir(git_dir) / "sync-tmp"


def index_lock(git_dir: Path) -> Path:
    """git's lock on the index (`<git dir>/index.lock`)."""
    return git_dir / "index.lock"


def ref_lock(git_dir: Path, ref_name: str) -> Path:
    """git's lock on a loose reference, e.g. `refs/heads/main` -> `<git dir>/refs/heads/main.lock`."""
    return git_dir / f"{ref_name}.lock"


def fetch_head_lock(git_dir: Path) -> Path:
    """git's lock on FETCH_HEAD, which every fetch rewrites (`<git dir>/FETCH_HEAD.lock`)."""
    return git_dir / "FETCH_HEAD.lock"


def sparse_checkout(git_dir: Path) -> Path:
    """git's sparse-checkout patterns (`<git dir>/info/sparse-checkout`)."""
    return git_dir / "info" / "sparse-checkout"


def common_dir(git_dir: Path) -> Path:
    """The repository's common git directory: `git_dir` itself, or for a linked worktree the
    main repository's (named by the `commondir` file), where refs and hooks live."""
    try:
        named = (git_dir / "commondir").read_text().strip()
    except OSError:
        return git_dir
    return (git_dir / named).resolve() if named else git_dir
