"""git/trees.py on real repositories: every rewritten tree is the one the git CLI writes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pygit2
from pygit2.enums import FileMode

from mdbackup.git.objects import Entry
from mdbackup.git.repo import open_repository
from mdbackup.git.trees import Plan, file_folder_clashes, rewrite_tree, tree_entry
from tests.support.git import git

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


def raw_git(repo: Path, *args: str, input: bytes | None = None, env: dict[str, str] | None = None) -> bytes:
    """The git CLI with bytes in and out (names that are not UTF-8 survive)."""
    done = subprocess.run(
        ["git", "-C", str(repo), *args],
        input=input,
        capture_output=True,
        check=False,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


def head_tree(repo: pygit2.Repository) -> pygit2.Tree:
    return repo.head.peel(pygit2.Commit).tree


def blob(repo: pygit2.Repository, data: bytes, mode: FileMode = FileMode.BLOB) -> Entry:
    return Entry(repo.create_blob(data), mode)


def cli_tree(repo_path: Path, base: str, plan: Plan, scratch: Path) -> str:
    """`base` with the plan applied, written by the git CLI from a scratch index."""
    env = {"GIT_INDEX_FILE": str(scratch)}
    if base == EMPTY_TREE:
        raw_git(repo_path, "read-tree", "--empty", env=env)
    else:
        raw_git(repo_path, "read-tree", base, env=env)
    records = []
    for path, entry in plan.items():
        name = os.fsencode(path)
        if entry is None:
            records.append(b"0 " + b"0" * 40 + b"\t" + name)
        else:
            records.append(b"%o %s\t%s" % (int(entry.mode), str(entry.oid).encode(), name))
    raw_git(
        repo_path,
        "update-index",
        "-z",
        "--add",
        "--replace",
        "--index-info",
        input=b"\0".join(records) + b"\0",
        env=env,
    )
    return raw_git(repo_path, "write-tree", env=env).decode().strip()


def write(repo_path: Path, rel: str, text: str) -> None:
    path = repo_path / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_nested_new_file_gives_the_tree_of_git_add_and_write_tree(repo: Path) -> None:
    for rel in ("notes/a.md", "notes/deep/b.md", "other/c.md"):
        write(repo, rel, rel + "\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    r = open_repository(repo)
    base = head_tree(r)
    write(repo, "notes/deep/er/new.md", "new\n")
    plan = {"notes/deep/er/new.md": blob(r, b"new\n")}
    ours = rewrite_tree(r, base, plan)
    git(repo, "add", "notes/deep/er/new.md")
    assert str(ours) == git(repo, "write-tree").strip()
    # only the trees on the path were rewritten: the sibling subtree is the same object
    assert r[ours].peel(pygit2.Tree)["other"].id == base["other"].id


def test_modify_and_delete_match_git(repo: Path) -> None:
    for rel in ("notes/a.md", "notes/only/x.md", "notes/b.md"):
        write(repo, rel, rel + "\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    r = open_repository(repo)
    base = head_tree(r)
    plan: Plan = {"notes/a.md": blob(r, b"changed\n"), "notes/only/x.md": None}
    ours = rewrite_tree(r, base, plan)
    write(repo, "notes/a.md", "changed\n")
    git(repo, "rm", "-q", "--cached", "notes/only/x.md")
    git(repo, "add", "notes/a.md")
    assert str(ours) == git(repo, "write-tree").strip()
    assert git(repo, "ls-tree", "--name-only", str(ours), "notes/").split() == ["notes/a.md", "notes/b.md"]


def test_deleting_every_file_gives_the_empty_tree(repo: Path) -> None:
    r = open_repository(repo)
    assert str(rewrite_tree(r, head_tree(r), {"README.txt": None})) == EMPTY_TREE
    assert str(rewrite_tree(r, None, {})) == EMPTY_TREE


def test_no_base_builds_from_nothing(repo: Path, tmp_path: Path) -> None:
    r = open_repository(repo)
    plan: Plan = {"a.md": blob(r, b"a\n"), "d/e/f.md": blob(r, b"f\n", FileMode.BLOB_EXECUTABLE)}
    assert str(rewrite_tree(r, None, plan)) == cli_tree(repo, EMPTY_TREE, plan, tmp_path / "index")


def test_file_turned_into_a_folder_and_back(repo: Path, tmp_path: Path) -> None:
    write(repo, "a", "a file\n")
    write(repo, "b/inside.md", "in b\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    r = open_repository(repo)
    base = head_tree(r)
    plan: Plan = {
        "a": None,
        "a/now.md": blob(r, b"a is a folder\n"),  # the file `a` goes, the folder `a` comes
        "b": blob(r, b"b is a file\n"),  # the folder `b` goes
    }
    ours = rewrite_tree(r, base, plan)
    assert str(ours) == cli_tree(repo, str(base.id), plan, tmp_path / "index")
    assert git(repo, "ls-tree", "-r", "--name-only", str(ours)).split() == ["README.txt", "a/now.md", "b"]


def test_deleting_a_name_that_is_a_folder_leaves_the_folder(repo: Path) -> None:
    write(repo, "d/x.md", "x\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    r = open_repository(repo)
    base = head_tree(r)
    assert rewrite_tree(r, base, {"d": None}) == base.id


def test_links_and_names_that_are_not_utf8_sort_as_git_does(repo: Path, tmp_path: Path) -> None:
    write(repo, "notes/a/x.md", "x\n")  # the folder `a` sorts as `a/`, after `a-b` and `a.md`
    write(repo, "notes/a-b", "dash\n")
    write(repo, "notes/a.md", "dot\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    r = open_repository(repo)
    base = head_tree(r)
    odd = os.fsdecode(b"notes/caf\xe9.md")
    plan: Plan = {
        odd: blob(r, b"latin-1 name\n"),
        os.fsdecode(b"notes/\xff/deep.md"): blob(r, b"odd folder\n"),
        "notes/link.md": blob(r, b"a.md", FileMode.LINK),
        "notes/a-b": None,
    }
    ours = rewrite_tree(r, base, plan)
    assert str(ours) == cli_tree(repo, str(base.id), plan, tmp_path / "index")
    listing = raw_git(repo, "ls-tree", "-r", "-z", str(ours)).split(b"\0")
    assert any(line.endswith(b"\tnotes/caf\xe9.md") for line in listing)
    raw_git(repo, "fsck", "--strict", "--no-dangling")


def test_tree_entry(repo: Path) -> None:
    write(repo, "d/x.md", "x\n")
    os.symlink("x.md", repo / "d/link")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    r = open_repository(repo)
    base = head_tree(r)
    x = tree_entry(base, "d/x.md")
    assert x == Entry(pygit2.Oid(hex=git(repo, "rev-parse", "HEAD:d/x.md").strip()), FileMode.BLOB)
    link = tree_entry(base, "d/link")
    assert link is not None and link.mode == FileMode.LINK
    assert tree_entry(base, "d") is None  # a folder is no entry
    assert tree_entry(base, "missing.md") is None
    assert tree_entry(None, "d/x.md") is None


def test_file_folder_clashes() -> None:
    e = Entry(pygit2.Oid(hex="1" * 40), FileMode.BLOB)
    assert file_folder_clashes({"a": e, "a/b": e, "a/b/c": e, "x": e, "x-y/z": e}) == ["a", "a/b"]
    assert file_folder_clashes({"a": None, "a/b": e}) == []  # a deleted file makes room for a folder
    assert file_folder_clashes({}) == []
