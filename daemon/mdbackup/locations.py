"""Where mdbackup keeps its own files: beside the repository's git directory."""

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
