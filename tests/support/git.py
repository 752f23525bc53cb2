"""Real git repositories driven with the git CLI (tests and benchmarks only; the daemon never runs git)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path


def git(repo: Path, *args: str, check: bool = True, env: Mapping[str, str] | None = None) -> str:
    """Run the git CLI in `repo` (tests only; the daemon never does) and return stdout."""
    result = subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
    return result.stdout


def init_repo(path: Path, *, commit: bool = True, hooks: bool = True) -> Path:
    """A new repository on branch main with an identity, and a first commit unless told not.

    `hooks=False` leaves out git's template (the sample hooks): a smaller .git, quicker
    to copy."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main", *(() if hooks else ("--template=",)))
    git(path, "config", "user.name", "Test User")
    git(path, "config", "user.email", "test@example.com")
    if commit:
        (path / "README.txt").write_text("outside the store\n")
        git(path, "add", "README.txt")
        git(path, "commit", "-q", "-m", "initial")
    return path


def head_files(repo: Path, ref: str = "HEAD") -> dict[str, str]:
    """Path -> content of every blob in `ref`'s tree ({} when `ref` does not exist yet)."""
    commit = git(repo, "rev-parse", "--verify", "-q", ref, check=False).strip()
    if not commit:
        return {}
    names = git(repo, "ls-tree", "-r", "-z", "--name-only", commit).split("\0")
    return {n: git(repo, "show", f"{commit}:{n}") for n in names if n}


def head_paths(repo: Path, ref: str = "HEAD") -> set[str]:
    """The paths in `ref`'s tree (cheap: one git call, no contents)."""
    out = git(repo, "ls-tree", "-r", "-z", "--name-only", ref, check=False)
    return {name for name in out.split("\0") if name}


def commit_count(repo: Path, ref: str = "HEAD") -> int:
    out = git(repo, "rev-list", "--count", ref, check=False).strip()
    return int(out) if out.isdigit() else 0
