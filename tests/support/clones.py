"""Two working clones of one bare remote, driven with the git CLI (tests only)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.support.git import git, init_repo


@dataclass(frozen=True)
class Clones:
    """`remote` (bare), and clones `a` and `b` of it, both on main at the same commit."""

    remote: Path
    a: Path
    b: Path


def make_clones(root: Path, *, files: dict[str, str] | None = None) -> Clones:
    """A bare remote whose main holds README.txt and `files`, and two clones of it."""
    remote = root / "remote.git"
    git(root, "init", "-q", "--bare", "-b", "main", str(remote))
    a = init_repo(root / "a", hooks=False)
    for name, text in (files or {"notes/a.md": "one\ntwo\nthree\n"}).items():
        write(a, name, text)
    git(a, "add", "-A")
    git(a, "commit", "-q", "-m", "notes")
    git(a, "remote", "add", "origin", str(remote))
    git(a, "push", "-q", "origin", "main")
    git(a, "fetch", "-q", "origin")
    b = root / "b"
    git(root, "clone", "-q", "--template=", str(remote), str(b))
    git(b, "config", "user.name", "Test User B")
    git(b, "config", "user.email", "b@example.com")
    return Clones(remote=remote, a=a, b=b)


def write(repo: Path, rel: str, text: str) -> Path:
    path = repo / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def commit_all(repo: Path, message: str = "change") -> str:
    """Stage everything and commit with the git CLI; the new commit id."""
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


def push(repo: Path) -> None:
    git(repo, "push", "-q", "origin", "main")
