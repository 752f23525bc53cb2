"""Who may import whom: git/ stays below the orchestration, its leaves below the committer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.cli import ROOT

PACKAGE = ROOT / "daemon" / "mdbackup"


def imports(path: Path) -> set[str]:
    """Every module `path` imports (`from a import b` counts as `a` and `a.b`)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize("path", sorted((PACKAGE / "git").glob("*.py")), ids=lambda p: p.name)
def test_git_modules_get_crash_points_injected_not_imported(path: Path) -> None:
    found = imports(path)
    assert "mdbackup.crashpoints" not in found and "mdbackup.backup" not in found, found


@pytest.mark.parametrize("leaf", ["snapshot.py", "trees.py", "objects.py"])
def test_leaves_do_not_import_the_committer(leaf: str) -> None:
    assert "mdbackup.git.commit" not in imports(PACKAGE / "git" / leaf)


def test_trees_does_not_read_the_working_tree() -> None:
    assert "mdbackup.git.snapshot" not in imports(PACKAGE / "git" / "trees.py")


def test_message_does_not_import_git() -> None:
    assert not any(name.startswith(("mdbackup.git", "pygit2")) for name in imports(PACKAGE / "message.py"))
