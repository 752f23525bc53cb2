"""git's name rules, checked against the cases git's own t/t1450-fsck.sh and
t/t7415-submodule-names.sh use, and against `git update-index --add` as the oracle."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pygit2.enums import FileMode

from mdbackup.git.names import refusal
from tests.support.git import git, init_repo

REFUSED = [
    ".git",
    ".GIT",
    ".Git/config",
    "notes/.git/a.md",
    "git~1/a.md",
    "GIT~1",
    ".git./a.md",
    ".git /a.md",
    ".git. . ./x",
    ".git::$INDEX_ALLOCATION/x",
    "a/.g\u200cit/b.md",
    "\u200e.git",
    ".gi\ufefft",
    "a\\.git\\b",
    "a//b",
    "a/./b",
    "a/../b",
    "",
]
ACCEPTED = [
    "notes/a.md",
    ".gitignore",
    ".gitattributes",
    ".gitmodules",
    ".github/workflows/x.yml",
    "git~2/a.md",
    ".gitx/a",
    "a.git",
    "gitmodules",
    "x/.g\udcc3it",
    "\u00e9.md",
]


@pytest.mark.parametrize("path", REFUSED)
def test_refused_names(path: str) -> None:
    assert refusal(path, FileMode.BLOB) is not None


@pytest.mark.parametrize("path", ACCEPTED)
def test_accepted_names(path: str) -> None:
    assert refusal(path, FileMode.BLOB) is None


@pytest.mark.parametrize(
    "path", [".gitmodules", "sub/.GITMODULES", ".gitmodules .", "GITMOD~1", "gi7eba~1", ".gitm\u200codules"]
)
def test_a_gitmodules_link_is_refused_a_gitmodules_file_is_not(path: str) -> None:
    assert refusal(path, FileMode.LINK) is not None
    if "~" not in path and " " not in path and "\u200c" not in path:
        assert refusal(path, FileMode.BLOB) is None


def test_other_links_are_accepted() -> None:
    assert refusal(".gitignore", FileMode.LINK) is None
    assert refusal("notes/a.md", FileMode.LINK) is None


@pytest.mark.parametrize("path", [p for p in REFUSED if p and "//" not in p] + ACCEPTED)
def test_git_agrees(tmp_path: Path, path: str) -> None:
    """git update-index --add --cacheinfo is git's verify_path (with core.protectHFS on,
    which macOS has by default, so the HFS+ names are checked too)."""
    repo = init_repo(tmp_path / "r", commit=False)
    git(repo, "config", "core.protectHFS", "true")
    git(repo, "config", "core.protectNTFS", "true")
    blob = "e69de29bb2d1d6434b8b29ae775a3d2c8d0c9a1b"
    git(repo, "hash-object", "-w", "/dev/null")
    result = subprocess.run(
        ["git", "-C", str(repo), "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}"],
        capture_output=True,
        check=False,
    )
    assert (result.returncode != 0) == (refusal(path, FileMode.BLOB) is not None), result.stderr
