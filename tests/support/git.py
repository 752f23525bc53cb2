"""Test helpers: real git repositories driven with the git CLI, the CLI as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYTHONPATH = f"{ROOT / 'daemon'}{os.pathsep}{ROOT}"  # the package (src layout) and `tests`


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


def init_repo(path: Path, *, commit: bool = True) -> Path:
    """A new repository on branch main with an identity, and a first commit unless told not."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
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


def wait_until(
    predicate: Callable[[], object],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str = "condition",
) -> object:
    """Poll until `predicate()` is truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def json(self) -> dict:
        return json.loads(self.out)


def test_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment with its own HOME and no config from the user's machine."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GIT_", "MDBACKUP_", "NOTIFY_SOCKET", "WATCHDOG_"))
    }
    env.update(
        {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "PYTHONPATH": PYTHONPATH,
        }
    )
    env.update(extra or {})
    return env


def mdbackup(
    *args: str, cwd: Path, home: Path, env: Mapping[str, str] | None = None, timeout: float = 60.0
) -> Result:
    """Run `python -m mdbackup ARGS` as a user would, and capture its output."""
    proc = subprocess.run(
        [sys.executable, "-m", "mdbackup", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=test_env(home, env),
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)
