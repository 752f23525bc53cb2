"""mdbackup.git.cache_tree against index files git writes: versions 2, 3 and 4, extended
flags, long names, EOIE, and a root git invalidated."""

from __future__ import annotations

from pathlib import Path

import pygit2
import pytest

from mdbackup.git.cache_tree import root_tree
from tests.support.git import git


def head_tree(repo: Path) -> pygit2.Oid:
    return pygit2.Oid(hex=git(repo, "rev-parse", "HEAD^{tree}").strip())


def populate(repo: Path) -> None:
    for rel in ("a.md", "sub/b.md", "sub/deep/c.md", "z.md"):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(f"{rel}\n")
    git(repo, "add", "-A")
    # A name over the 12-bit length field of an entry (only in the index and the tree).
    long_path = "sub/" + "/".join(["n" * 200] * 21) + ".md"
    blob = git(repo, "hash-object", "-w", "--stdin", "--path", "a.md").strip()
    git(repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},{long_path}")
    git(repo, "commit", "-qm", "files")


@pytest.mark.parametrize("version", [2, 3, 4])
def test_the_root_is_the_tree_git_recorded(repo: Path, version: int) -> None:
    populate(repo)
    git(repo, "update-index", "--index-version", str(version))
    git(repo, "update-index", "--skip-worktree", "sub/deep/c.md")  # an extended flag (v3+)
    git(repo, "read-tree", "HEAD")  # a whole cache-tree again
    assert root_tree(repo / ".git" / "index") == head_tree(repo)
    (repo / "a.md").write_text("changed\n")
    git(repo, "add", "a.md")  # invalidates the root
    assert root_tree(repo / ".git" / "index") is None


def test_a_checkout_records_the_tree_of_the_commit_it_checks_out(repo: Path) -> None:
    populate(repo)
    git(repo, "switch", "-q", "-c", "side")
    (repo / "side.txt").write_text("side\n")
    git(repo, "add", "side.txt")
    git(repo, "commit", "-qm", "side")
    side = head_tree(repo)
    git(repo, "switch", "-q", "main")
    assert root_tree(repo / ".git" / "index") == head_tree(repo) != side


def test_the_end_of_index_entries_extension_is_used(repo: Path) -> None:
    populate(repo)
    git(repo, "-c", "index.recordEndOfIndexEntries=true", "read-tree", "HEAD")
    data = (repo / ".git" / "index").read_bytes()
    assert data[-52:-48] == b"EOIE"
    assert root_tree(repo / ".git" / "index") == head_tree(repo)


def test_no_index_or_no_cache_tree_claims_nothing(tmp_path: Path) -> None:
    assert root_tree(tmp_path / "missing") is None
    (tmp_path / "junk").write_bytes(b"DIRC" + b"\0" * 40)
    assert root_tree(tmp_path / "junk") is None
    index = pygit2.Index()
    index.add(pygit2.IndexEntry("a.md", pygit2.Oid(hex="1" * 40), pygit2.enums.FileMode.BLOB))
    path = tmp_path / "index"
    written = pygit2.Index(str(path))
    written.add(pygit2.IndexEntry("a.md", pygit2.Oid(hex="1" * 40), pygit2.enums.FileMode.BLOB))
    written.write()
    assert root_tree(path) is None
